"""One model's folder in a Triton model repository, and the rules that keep it consistent.

    triton_models/scorer/
        config.pbtxt          version_policy latest { num_versions: 1 }: the highest serves
        1/ 2/ 5/              published versions; the highest is the one Triton serves
        .staging/<tmp>/       versions being written and validated (Triton ignores
                              folders whose names are not integers)
        .retired/<N>/         versions taken out of service (rolled back or rejected),
                              each with RETIRED.json saying why
        .lock                 serialises publishers (trainer, CLI) on this folder

The folder itself says which version serves, so a restarted Triton serves the same one:
publishing renames a validated staging folder to the next number (one ``rename``, so
Triton never sees a half-written version), and rolling back moves the highest number
out to ``.retired``. Version numbers are never reused, so a ``model_version`` in a
recommendation names exactly one model for ever.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STAGING, RETIRED, LOCK, RETIRED_NOTE = ".staging", ".retired", ".lock", "RETIRED.json"
# A model name is one folder of the repository: letters, digits, "_", "-" and ".", not
# starting with "." (so never "..", nor one of the hidden folders above).
MODEL_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")


class LayoutError(RuntimeError):
    """The model folder is missing or cannot hold the requested change."""


def _is_version(name: str) -> bool:
    # Triton's rule: a version folder is a positive integer without leading zeros.
    return name.isdigit() and not name.startswith("0")


def check_model_name(model: str) -> str:
    """``model`` if it names one folder inside a repository; :class:`LayoutError` otherwise.

    The name comes from users (``streamrec deploy --model``) and settings, and every
    change is made under ``<repository>/<model>``: "../x", "/abs" or "a/b" would move
    and delete folders outside the repository.
    """
    if not isinstance(model, str) or not MODEL_NAME.fullmatch(model):
        raise LayoutError(
            f"model name {model!r} is not a plain folder name inside the repository "
            "(letters, digits, '_', '-', '.', not starting with '.'; no '/', no '..')"
        )
    return model


def check_version(version: int) -> int:
    """``version`` if it is a version number (a positive int); :class:`LayoutError` otherwise."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise LayoutError(f"version {version!r} is not a positive integer")
    return version


class ModelFolder:
    """Versions of one model on disk; every change goes through :meth:`lock`."""

    def __init__(self, repository: Path, model: str) -> None:
        self.repository, self.model = Path(repository), check_model_name(model)
        self.path = self.repository / model
        if not (self.path / "config.pbtxt").is_file():
            raise LayoutError(f"{self.path} is not a Triton model folder (no config.pbtxt)")

    @property
    def config_path(self) -> Path:
        return self.path / "config.pbtxt"

    def version_path(self, version: int) -> Path:
        return self.path / str(check_version(version))

    def versions(self) -> list[int]:
        """Published versions, oldest first."""
        return sorted(
            int(p.name) for p in self.path.iterdir() if p.is_dir() and _is_version(p.name)
        )

    def serving(self) -> int | None:
        """The version Triton serves under ``latest { num_versions: 1 }``."""
        versions = self.versions()
        return versions[-1] if versions else None

    def retired(self) -> list[int]:
        folder = self.path / RETIRED
        if not folder.is_dir():
            return []
        return sorted(int(p.name) for p in folder.iterdir() if _is_version(p.name))

    def retired_note(self, version: int) -> dict[str, object]:
        note = self.path / RETIRED / str(check_version(version)) / RETIRED_NOTE
        return json.loads(note.read_text()) if note.is_file() else {}

    def next_version(self) -> int:
        return max([0, *self.versions(), *self.retired()]) + 1

    @contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock across processes (the trainer and a user's CLI)."""
        with (self.path / LOCK).open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _staging(self) -> Path:
        staging = self.path / STAGING
        staging.mkdir(exist_ok=True)
        return staging

    def stage(self) -> Path:
        """An empty folder on the same filesystem, so publishing can be one rename."""
        return Path(tempfile.mkdtemp(prefix="v-", dir=self._staging()))

    def publish(self, staged: Path) -> int:
        """Rename ``staged`` to the next version number; returns it. Hold :meth:`lock`."""
        # Resolved, so ".staging/.." (the model folder itself) or a link out of staging
        # is not taken for a staged version.
        staging = (self.path / STAGING).resolve()
        if staged.parent != self.path / STAGING or staged.resolve().parent != staging:
            raise LayoutError(f"{staged} was not staged in {self.path / STAGING}")
        version = self.next_version()
        _fsync_tree(staged)
        os.rename(staged, self.version_path(version))
        _fsync_dir(self.path)
        return version

    def retire(self, version: int, reason: str) -> Path:
        """Move a published version out of Triton's sight, noting why. Hold :meth:`lock`."""
        source = self.version_path(version)
        if not source.is_dir():
            raise LayoutError(f"{self.model} has no version {version}")
        target = self.path / RETIRED / str(version)
        target.parent.mkdir(exist_ok=True)
        if target.exists():  # cannot happen with never-reused numbers, but never lose a model
            target = target.with_name(f"{version}-{int(time.time())}")
        os.rename(source, target)
        _fsync_dir(self.path)
        note = {"version": version, "reason": reason, "retired_at": time.time()}
        (target / RETIRED_NOTE).write_text(json.dumps(note, indent=2) + "\n")
        return target

    def restore(self, version: int) -> None:
        """Undo :meth:`retire` (used when taking a version out could not be completed)."""
        source = self.path / RETIRED / str(check_version(version))
        (source / RETIRED_NOTE).unlink(missing_ok=True)
        os.rename(source, self.version_path(version))
        _fsync_dir(self.path)

    def prune(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` published and ``keep`` retired versions.

        The serving version is always among the kept ones. Returns what was deleted.
        """
        if keep < 1:
            raise LayoutError("keep at least one version")
        gone: list[Path] = []
        for version in self.versions()[:-keep]:
            path = self.version_path(version)
            # Out of sight in one rename, then deleted: no reader (Triton, a listing)
            # ever finds a version folder half-deleted.
            doomed = Path(tempfile.mkdtemp(prefix=f"pruned-{version}-", dir=self._staging()))
            os.rename(path, doomed / "version")
            shutil.rmtree(doomed)
            gone.append(path)
        for version in self.retired()[:-keep]:
            path = self.path / RETIRED / str(version)
            shutil.rmtree(path)
            gone.append(path)
        stale = self.path / STAGING
        if stale.is_dir():
            # Staging folders older than an hour are left-overs of a crashed publisher.
            for path in stale.iterdir():
                if time.time() - path.stat().st_mtime > 3600:
                    shutil.rmtree(path, ignore_errors=True)
                    gone.append(path)
        return gone


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush every file of a staged version before it becomes visible under its number."""
    for root, _dirs, files in os.walk(path):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))
