"""Deploy, promote and roll back model versions without Triton ever serving a bad one.

A release of a candidate version goes:

    stage ─▶ validate (scratch onnxruntime session + probes) ─▶ canary (Triton, scratch
    name) ─▶ publish (one rename to the next number) ─▶ load (Triton reloads; the old
    version serves until the new one is ready) ─▶ wait until ready ─▶ prune old versions

Any failure before publishing leaves the repository and Triton as they were and raises
:class:`ModelRejected` with the reason. A failure after publishing retires the new
version and reloads, so the folder and Triton agree again on the previous version.
Every outcome is appended to ``<model>/.releases.jsonl``.

A version folder that no release published (copied straight into the repository, maybe
half-way) is validated like a candidate before each release and rollback, and set aside
to ``.retired`` if it fails: otherwise a rollback, or a restarted Triton, would load it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import NoReturn

from services.trainer.layout import LayoutError, ModelFolder
from services.trainer.triton import ModelControl, TritonControlError
from services.trainer.validate import ModelRejected, read_config, validate_version

log = logging.getLogger(__name__)

RELEASE_LOG = ".releases.jsonl"
# What ``deploy PATH`` copies from a user's folder: model files, never code. The Python
# backend executes ``model.py``, so it always comes from the version serving now.
MODEL_FILES = ("model.onnx", "model.plan", "ranker.safetensors", "export.json")
CODE_FILES = ("model.py",)


@dataclass
class Release:
    """What happened to one candidate; ``outcome`` is serving, rejected, rolled-back, or
    set-aside (a version folder no release published, found unservable)."""

    model: str
    outcome: str
    version: int | None
    previous: int | None
    reason: str = ""
    source: str = ""
    seconds: float = 0.0
    details: dict[str, object] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class Releaser:
    """Releases versions of one model in one repository through one Triton."""

    def __init__(
        self,
        folder: ModelFolder,
        control: ModelControl,
        keep: int = 3,
        ready_timeout_s: float = 120.0,
    ) -> None:
        self.folder, self.control, self.keep = folder, control, keep
        self.ready_timeout_s = ready_timeout_s

    @property
    def model(self) -> str:
        return self.folder.model

    # -- entry points --------------------------------------------------------------

    def deploy(self, source: Path, details: dict[str, object] | None = None) -> Release:
        """Release model files from ``source`` (a version folder, or one ``.onnx`` file)."""
        started = time.perf_counter()
        with self.folder.lock():
            self._set_aside_unservable()
            previous = self.folder.serving()
            staged = self.folder.stage()
            try:
                self._copy_model_files(source, staged, previous)
                return self._release(staged, previous, str(source), details or {}, started)
            finally:
                shutil.rmtree(staged, ignore_errors=True)  # gone after a publish, else rejected

    def promote(
        self, staged: Path, source: str, details: dict[str, object] | None = None
    ) -> Release:
        """Release a version already written into :meth:`ModelFolder.stage` (the trainer)."""
        started = time.perf_counter()
        with self.folder.lock():
            self._set_aside_unservable()
            previous = self.folder.serving()
            try:
                self._fill_code(staged, previous)
                return self._release(staged, previous, source, details or {}, started)
            finally:
                shutil.rmtree(staged, ignore_errors=True)

    def rollback(self, reason: str = "rolled back by the operator") -> Release:
        """Retire the serving version; the previous published one serves again."""
        started = time.perf_counter()
        with self.folder.lock():
            # The version rolled back to must be one Triton can load: not a folder an
            # operator copied in by hand and never finished.
            self._set_aside_unservable()
            versions = self.folder.versions()
            if len(versions) < 2:
                raise LayoutError(
                    f"{self.model} has {len(versions)} published version(s); "
                    "nothing to roll back to"
                )
            current, previous = versions[-1], versions[-2]
            self.folder.retire(current, reason)
            try:
                self.control.load(self.model)
                self.control.wait_ready(self.model, previous, self.ready_timeout_s)
            except TritonControlError:
                # Triton kept ``current`` (a failed reload leaves the loaded model as it was):
                # put it back so the folder says what is serving.
                self.folder.restore(current)
                raise
            release = Release(
                self.model,
                "rolled-back",
                previous,
                current,
                reason=reason,
                seconds=time.perf_counter() - started,
            )
            self._record(release)
            return release

    @contextlib.contextmanager
    def shadow(self, staged: Path, label: str) -> Iterator[str]:
        """Serve ``staged`` as ``<model>-shadow`` while the block runs; yields that name.

        The workers find it, rank a share of users with it too and keep its lists
        unpublished (services/recommender/shadow.py); ``label`` is the version their
        verdicts carry. Loaded from a scratch copy through the load API's file override,
        so the repository is untouched; unloaded however the block ends. Raises
        :class:`ModelRejected` if Triton cannot load it.
        """
        from services.recommender.shadow import VERSION_PARAMETER, shadow_model

        name = shadow_model(self.model)
        config = read_config(self.folder.config_path)
        with tempfile.TemporaryDirectory(prefix="streamrec-shadow-") as tmp:
            scratch = Path(tmp) / "1"
            shutil.copytree(staged, scratch, ignore=shutil.ignore_patterns("__pycache__"))
            self._fill_code(scratch, self.folder.serving())
            try:
                self.control.load_files(name, scratch, config, {VERSION_PARAMETER: label})
            except TritonControlError as exc:
                raise ModelRejected(f"Triton cannot load the shadow: {exc}") from exc
        try:
            yield name
        finally:
            try:
                self.control.unload(name)
            except TritonControlError:
                log.exception("unloading %s", name)  # costs memory, not correctness

    def clear_shadow(self) -> None:
        """Unload a shadow a stopped trainer may have left loaded (workers would go on
        ranking a share of users with it); nothing if there is none."""
        from services.recommender.shadow import shadow_model

        try:
            self.control.unload(shadow_model(self.model))
        except TritonControlError as exc:
            log.debug("no shadow to unload: %s", exc)

    def set_aside_unservable(self) -> list[int]:
        """Retire the versions no release vouches for that fail validation (see
        :meth:`_set_aside_unservable`); the stack calls it before Triton starts."""
        with self.folder.lock():
            return self._set_aside_unservable()

    # -- the common path -----------------------------------------------------------

    def _trusted(self) -> set[int]:
        """Versions known to serve: ones a release made serve, and the one Triton serves."""
        trusted = {
            int(str(entry["version"]))
            for entry in self.history(last=None)
            if entry.get("outcome") in ("serving", "rolled-back") and entry.get("version")
        }
        try:
            ready = self.control.ready_version(self.model)
        except TritonControlError as exc:
            log.debug("Triton's serving version unknown (%s); validating every version", exc)
            ready = None
        if ready is not None:
            trusted.add(ready)
        return trusted

    def _set_aside_unservable(self) -> list[int]:
        """Retire published-looking version folders that no release vouches for and that
        fail validation; returns them. Hold the lock.

        Triton takes any integer folder for a version, and with ``latest`` the highest
        serves on its next load (a rollback, a restart). A folder written straight into
        the repository (a careless ``cp``, one that died half-way) must not be that one.
        """
        trusted = self._trusted()
        unknown = [v for v in self.folder.versions() if v not in trusted]
        if not unknown:
            return []
        try:
            config = read_config(self.folder.config_path)
        except ModelRejected:
            return []  # every release validates with this config and will say what is wrong
        set_aside = []
        for version in unknown:
            try:
                validate_version(self.folder.version_path(version), config, self.model)
            except ModelRejected as exc:
                reason = f"set aside: not published by a release, and not servable: {exc}"
                self.folder.retire(version, reason)
                set_aside.append(version)
                self._record(Release(self.model, "set-aside", version, None, reason))
        return set_aside

    def _release(
        self,
        staged: Path,
        previous: int | None,
        source: str,
        details: dict[str, object],
        started: float,
    ) -> Release:
        try:
            config = read_config(self.folder.config_path)
            validate_version(staged, config, self.model)
            self.control.canary(self.model, staged, config)
        except ModelRejected as exc:
            self._rejected(None, previous, exc, source, started, details)
            raise

        version = self.folder.publish(staged)
        try:
            self.control.load(self.model)
            self.control.wait_ready(self.model, version, self.ready_timeout_s)
        except TritonControlError as exc:
            self.folder.retire(version, f"rejected: {exc}")
            try:
                self.control.load(self.model)  # back to the previous version, if it moved
            except TritonControlError:
                log.exception("reloading %s after a failed release", self.model)
            self._rejected(version, previous, exc, source, started, details)
            raise ModelRejected(f"{self.model} version {version} did not serve: {exc}") from exc

        pruned = self.folder.prune(self.keep)
        release = Release(
            self.model,
            "serving",
            version,
            previous,
            source=source,
            seconds=time.perf_counter() - started,
            details={**details, "pruned": [p.name for p in pruned]},
        )
        self._record(release)
        return release

    def _rejected(
        self,
        version: int | None,
        previous: int | None,
        exc: Exception,
        source: str,
        started: float,
        details: dict[str, object],
    ) -> None:
        seconds = time.perf_counter() - started
        self._record(
            Release(self.model, "rejected", version, previous, str(exc), source, seconds, details)
        )

    def _copy_model_files(self, source: Path, staged: Path, previous: int | None) -> None:
        if source.is_file():
            if source.suffix != ".onnx":
                raise ModelRejected(f"{source}: deploy takes a version folder or an .onnx file")
            shutil.copy2(source, staged / "model.onnx")
        elif source.is_dir():
            found = [name for name in MODEL_FILES if (source / name).is_file()]
            if not found:
                raise ModelRejected(f"{source} holds none of {', '.join(MODEL_FILES)}")
            for name in found:
                shutil.copy2(source / name, staged / name)
            ignored = sorted(
                p.name
                for p in source.iterdir()
                if p.name not in MODEL_FILES and p.name != "__pycache__"
            )
            if ignored:
                log.info(
                    "deploy %s: not copied (code comes from the serving version): %s",
                    source,
                    ", ".join(ignored),
                )
        else:
            raise ModelRejected(f"{source} does not exist")
        self._fill_code(staged, previous)

    def _fill_code(self, staged: Path, previous: int | None) -> None:
        """The serving version's ``model.py`` (or the oldest kept one's)."""
        candidates = [previous] if previous is not None else []
        candidates += list(reversed(self.folder.versions()))
        for name in CODE_FILES:
            for version in candidates:
                code = self.folder.version_path(version) / name
                if code.is_file():
                    shutil.copy2(code, staged / name)
                    break

    def _record(self, release: Release) -> None:
        line = json.dumps(asdict(release), default=str)
        with (self.folder.path / RELEASE_LOG).open("a") as fh:
            fh.write(line + "\n")
        level = logging.WARNING if release.outcome in ("rejected", "set-aside") else logging.INFO
        log.log(level, "release %s: %s", self.model, line)

    def history(self, last: int | None = 20) -> list[dict[str, object]]:
        """The last ``last`` releases (all of them if None), oldest first."""
        path = self.folder.path / RELEASE_LOG
        if not path.is_file():
            return []
        lines = path.read_text().splitlines()
        if last is not None:
            lines = lines[-last:]
        return [json.loads(line) for line in lines if line.strip()]


class NoServer:
    """Triton before it starts: every request fails, so only the release history vouches
    for a version (:meth:`Releaser._trusted`)."""

    def _down(self, *args: object, **kwargs: object) -> NoReturn:
        raise TritonControlError("Triton is not running")

    load = ready_version = wait_ready = canary = load_files = unload = _down


def set_aside_before_start(repository: Path, model: str) -> list[int]:
    """Retire ``model``'s unvouched, unservable versions before Triton starts.

    Triton loads the highest version at start. A folder copied in by hand that is cut
    short or broken would be that version, and Triton would fail to load the model, so
    `up` would fail. Releases retire such folders before they deploy; this does the same
    at `up`. Versions releases made serve are trusted without a check; the others are
    validated as a release validates them.
    """
    if not (repository / model).is_dir():
        return []
    return Releaser(ModelFolder(repository, model), NoServer()).set_aside_unservable()
