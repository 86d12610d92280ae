"""A model repository whose ranker learned from the replay's warm-up clicks only.

The committed ``scorer`` was trained on all of ml-100k (RecBole's leave-one-out split), so
it has seen most of a time-ordered replay's judged period. Until the trainer service
retrains during the replay, ``--train-on-warmup`` trains a fresh ranker on the warm-up
clicks (``models.train_ranker --clicks``), puts it in a copy of ``triton_models/`` and
starts the stack on that copy: the judged clicks are then unseen by every model, as they
are by the in-process baselines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from services.contract import codec
from services.eval.stream import ReplayStream

SCORER_VERSION = "1"


def write_jsonl(path: Path, events: object) -> None:
    with path.open("wb") as fh:
        for event in events:  # type: ignore[attr-defined]
            fh.write(codec.encode(event) + b"\n")


def train_on_warmup(
    stream: ReplayStream,
    source_repository: Path,
    work_dir: Path,
    echo: Callable[[str], None] = print,
    epochs: int | None = None,
) -> Path:
    """Train the ranker on ``stream``'s warm-up clicks; returns the new model repository.

    The copy keeps every other model as it is (the item encoder's files are linked, not
    copied); only ``scorer/1`` is replaced. Raises ``RuntimeError`` if training fails.
    """
    data = work_dir / "warmup"
    data.mkdir(parents=True, exist_ok=True)
    clicks, items = data / "clicks.jsonl", data / "items.jsonl"
    write_jsonl(clicks, stream.clicks[: stream.split])
    write_jsonl(items, stream.items)

    repository = work_dir / "model_repository"
    if repository.exists():
        shutil.rmtree(repository)
    shutil.copytree(
        source_repository,
        repository,
        copy_function=_link_or_copy,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    version = repository / "scorer" / SCORER_VERSION
    for stale in ("model.onnx", "ranker.safetensors", "export.json"):
        (version / stale).unlink(missing_ok=True)
    echo(
        f"training the ranker on the {stream.split} warm-up clicks only "
        "(several minutes on 2 cores)"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "models.train_ranker",
            "--clicks",
            str(clicks),
            "--items",
            str(items),
            "--out",
            str(version),
            *(["--epochs", str(epochs)] if epochs else []),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    (work_dir / "train.log").write_text(done.stdout + done.stderr)
    if done.returncode != 0 or not (version / "model.onnx").exists():
        raise RuntimeError(
            f"training on the warm-up failed (exit {done.returncode}); see {work_dir / 'train.log'}"
        )
    output = (done.stdout + done.stderr).splitlines()
    summary = [line for line in output if line.startswith("trained on")]
    if summary:
        echo(summary[-1])
    return repository


def _link_or_copy(src: str, dst: str) -> object:
    """Hard-link big read-only model files where the filesystem allows, else copy."""
    try:
        Path(dst).hardlink_to(src)
        return dst
    except OSError:
        return shutil.copy2(src, dst)
