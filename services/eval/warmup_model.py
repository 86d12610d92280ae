"""Model repositories for a replay: private copies whose ranker has not seen the judged
clicks.

The committed ``scorer`` was trained on all of ml-100k (RecBole's leave-one-out split), so
it has seen most of a time-ordered replay's judged period. ``--train-on-warmup`` trains a
fresh ranker on the warm-up clicks (``models.train_ranker --clicks``) and
``--initial-synthetic`` one on the synthetic data set only (the retraining replay's
starting point); either goes into a copy of ``triton_models/`` that the stack then serves,
so the judged clicks are unseen by every model, as they are by the in-process baselines.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from services.contract import codec
from services.contract.events import ClickEvent, ItemEvent
from services.eval.stream import ReplayStream

SCORER_VERSION = "1"


def write_jsonl(path: Path, events: object) -> None:
    with path.open("wb") as fh:
        for event in events:  # type: ignore[attr-defined]
            fh.write(codec.encode(event) + b"\n")


def copy_repository(source_repository: Path, work_dir: Path) -> Path:
    """A private copy of the model repository for one replay (big files hard-linked).

    A replay that retrains writes new scorer versions: into this copy, never into the
    repository the user serves from.
    """
    repository = work_dir / "model_repository"
    if repository.exists():
        shutil.rmtree(repository)
    shutil.copytree(
        source_repository,
        repository,
        copy_function=_link_or_copy,
        ignore=shutil.ignore_patterns("__pycache__", ".staging", ".retired", ".lock"),
    )
    return repository


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
    echo(
        f"training the ranker on the {stream.split} warm-up clicks only "
        "(several minutes on 2 cores)"
    )
    return _train_scorer_copy(
        stream.clicks[: stream.split], stream.items, source_repository, work_dir, echo, epochs
    )


def train_on_synthetic(
    source_repository: Path,
    work_dir: Path,
    echo: Callable[[str], None] = print,
    epochs: int | None = None,
    seed: int = 0,
) -> Path:
    """Serve a ranker trained on the synthetic data set only: a model that has never seen
    the replayed data, as a team would ship before its own clicks exist. The retraining
    replay starts from it, so what retraining adds is measured against it."""
    from services.data.synthetic import generate

    data = generate(seed=seed)
    echo(
        f"training the initial ranker on the synthetic data set only "
        f"({len(data.clicks)} clicks, {len(data.items)} items)"
    )
    return _train_scorer_copy(data.clicks, data.items, source_repository, work_dir, echo, epochs)


def _train_scorer_copy(
    clicks: Sequence[ClickEvent],
    items: Sequence[ItemEvent],
    source_repository: Path,
    work_dir: Path,
    echo: Callable[[str], None],
    epochs: int | None,
) -> Path:
    data = work_dir / "initial"
    data.mkdir(parents=True, exist_ok=True)
    clicks_file, items_file = data / "clicks.jsonl", data / "items.jsonl"
    write_jsonl(clicks_file, clicks)
    write_jsonl(items_file, items)
    repository = copy_repository(source_repository, work_dir)
    scorer = repository / "scorer"
    # Only version 1 stays: the copy serves the model trained here, whatever the source
    # repository had published since.
    for other in scorer.iterdir():
        if other.is_dir() and other.name.isdigit() and other.name != SCORER_VERSION:
            shutil.rmtree(other)
    version = scorer / SCORER_VERSION
    for stale in ("model.onnx", "ranker.safetensors", "export.json"):
        (version / stale).unlink(missing_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "models.train_ranker",
            "--clicks",
            str(clicks_file),
            "--items",
            str(items_file),
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
            f"training the initial ranker failed (exit {done.returncode}); "
            f"see {work_dir / 'train.log'}"
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
