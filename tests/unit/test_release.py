"""Releasing scorer versions: the folder layout, validation and the release flow.

Real files, real onnxruntime validation; Triton is a fake here that follows the folder as
Triton's explicit mode does (tests/integration/test_release_triton.py runs the same
flows against the real tritonserver).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from services.trainer.layout import LayoutError, ModelFolder
from services.trainer.release import Releaser
from services.trainer.triton import TritonControlError
from services.trainer.validate import ModelRejected, read_config, validate_version
from tests.support.scorer_models import write_scorer

REPO = Path(__file__).resolve().parents[2]


class FakeTriton:
    """Serves the folder's highest version after each load, like latest { num_versions: 1 }."""

    def __init__(self, folder: ModelFolder) -> None:
        self.folder = folder
        self.loaded = folder.serving()
        self.calls: list[str] = []
        self.fail_next_load: str | None = None
        self.canary_error: str | None = None

    def load(self, model: str) -> None:
        self.calls.append("load")
        if self.fail_next_load:
            reason, self.fail_next_load = self.fail_next_load, None
            raise TritonControlError(reason)  # Triton keeps what it had loaded
        self.loaded = self.folder.serving()

    def ready_version(self, model: str) -> int | None:
        return self.loaded

    def wait_ready(self, model: str, version: int, timeout_s: float) -> None:
        if self.loaded != version:
            raise TritonControlError(f"version {version} not ready")

    def canary(self, model: str, folder: Path, config: object) -> None:
        self.calls.append("canary")
        if self.canary_error:
            raise ModelRejected(self.canary_error)


@pytest.fixture
def folder(tmp_path: Path) -> ModelFolder:
    """A scorer folder: the committed config and model.py, a tiny model as version 1."""
    model = tmp_path / "scorer"
    model.mkdir()
    shutil.copy(REPO / "triton_models/scorer/config.pbtxt", model / "config.pbtxt")
    write_scorer(model / "1")
    shutil.copy(REPO / "triton_models/scorer/1/model.py", model / "1" / "model.py")
    return ModelFolder(tmp_path, "scorer")


@pytest.fixture
def triton(folder: ModelFolder) -> FakeTriton:
    return FakeTriton(folder)


@pytest.fixture
def releaser(folder: ModelFolder, triton: FakeTriton) -> Releaser:
    return Releaser(folder, triton, keep=3)


def release_log(folder: ModelFolder) -> list[dict[str, object]]:
    return [json.loads(line) for line in (folder.path / ".releases.jsonl").read_text().splitlines()]


# -- layout ------------------------------------------------------------------------------


def test_only_integer_folders_are_versions(folder: ModelFolder) -> None:
    for name in ("07", "latest", ".staging", "3"):
        (folder.path / name).mkdir()
    assert folder.versions() == [1, 3]
    assert folder.serving() == 3
    assert folder.next_version() == 4


def test_version_numbers_are_never_reused(folder: ModelFolder) -> None:
    staged = folder.stage()
    write_scorer(staged)
    with folder.lock():
        assert folder.publish(staged) == 2
        folder.retire(2, "test")
    assert folder.versions() == [1]
    assert folder.retired() == [2]
    assert folder.retired_note(2)["reason"] == "test"
    assert folder.next_version() == 3


def test_publish_takes_only_staged_folders(folder: ModelFolder, tmp_path: Path) -> None:
    with pytest.raises(LayoutError, match="not staged"):
        folder.publish(write_scorer(tmp_path / "elsewhere"))


def test_prune_keeps_the_newest_versions(folder: ModelFolder) -> None:
    for _ in range(4):
        staged = folder.stage()
        write_scorer(staged)
        folder.publish(staged)
    gone = folder.prune(keep=2)
    assert folder.versions() == [4, 5]
    assert sorted(p.name for p in gone) == ["1", "2", "3"]


def test_prune_takes_a_version_out_of_sight_before_deleting_it(
    folder: ModelFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rmtree deletes file by file: run on a version folder, a reader (Triton, a listing)
    could find it half-deleted. It must only ever run on something already moved out."""
    for _ in range(2):
        staged = folder.stage()
        write_scorer(staged)
        folder.publish(staged)
    deleted: list[tuple[Path, list[int]]] = []
    rmtree = shutil.rmtree

    def watched(path: Path, *args: object, **kwargs: object) -> None:
        deleted.append((Path(path), folder.versions()))
        rmtree(path)

    monkeypatch.setattr("services.trainer.layout.shutil.rmtree", watched)
    folder.prune(keep=1)
    assert folder.versions() == [3]
    # Each deleted from .staging, after it was gone from the versions Triton can see.
    assert [path.parent for path, _ in deleted] == [folder.path / ".staging"] * 2
    assert [versions for _, versions in deleted] == [[2, 3], [3]]


def test_a_folder_without_config_is_refused(tmp_path: Path) -> None:
    (tmp_path / "scorer").mkdir()
    with pytest.raises(LayoutError, match=r"no config\.pbtxt"):
        ModelFolder(tmp_path, "scorer")


@pytest.mark.parametrize(
    "name", ["../x", "..", ".", "", "/etc", "a/b", "scorer/../../x", ".staging", "a\\b", "x\n"]
)
def test_model_names_that_leave_the_repository_are_refused(
    folder: ModelFolder, tmp_path: Path, name: str
) -> None:
    # A config.pbtxt where "../x" would point, so only the name check can refuse it.
    outside = tmp_path.parent / "x"
    outside.mkdir(exist_ok=True)
    (outside / "config.pbtxt").write_text("name: 'x'\n")
    with pytest.raises(LayoutError, match="not a plain folder name inside the repository"):
        ModelFolder(tmp_path, name)


def test_plain_model_names_are_taken(tmp_path: Path) -> None:
    for name in ("scorer", "item_encoder", "scorer-shadow", "ranker.v2"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.pbtxt").write_text(f"name: '{name}'\n")
        assert ModelFolder(tmp_path, name).path == tmp_path / name


@pytest.mark.parametrize("version", [0, -1, True, "../1", 1.5])
def test_version_numbers_must_be_positive_integers(folder: ModelFolder, version: object) -> None:
    with pytest.raises(LayoutError, match="not a positive integer"):
        folder.version_path(version)  # type: ignore[arg-type]  # what a bad caller passes
    with pytest.raises(LayoutError, match="not a positive integer"):
        folder.retire(version, "test")  # type: ignore[arg-type]
    assert folder.versions() == [1]


def test_publish_refuses_paths_that_only_look_staged(folder: ModelFolder, tmp_path: Path) -> None:
    staging = folder.stage().parent
    # ".staging/.." is the model folder itself: renaming it would unpublish every version.
    with pytest.raises(LayoutError, match="not staged"):
        folder.publish(staging / "..")
    elsewhere = write_scorer(tmp_path / "elsewhere")
    (staging / "link").symlink_to(elsewhere)
    with pytest.raises(LayoutError, match="not staged"):
        folder.publish(staging / "link")
    assert folder.versions() == [1] and elsewhere.is_dir()


def test_deploy_refuses_a_model_name_outside_the_repository(
    folder: ModelFolder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from services.cli import main

    outside = tmp_path.parent / "escaped"
    (outside / "1").mkdir(parents=True, exist_ok=True)
    shutil.copy(folder.config_path, outside / "config.pbtxt")
    monkeypatch.setenv("STREAMREC_MODEL_REPOSITORY", str(folder.repository))
    monkeypatch.delenv("STREAMREC_TRAINER_MODEL_REPOSITORY", raising=False)
    source = write_scorer(tmp_path / "mine")
    for name in ("../escaped", str(outside), "scorer/../../escaped"):
        result = CliRunner().invoke(main, ["deploy", str(source), "--model", name])
        assert result.exit_code == 1, result.output
        assert "is not a plain folder name inside the repository" in result.output
    assert sorted(p.name for p in outside.iterdir()) == ["1", "config.pbtxt"]
    assert folder.versions() == [1]


# -- validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("garbage", "cannot load .* as ONNX"),
        ("nan", "non-finite scores"),
        ("wrong_shape", r"returned shape \[3\], expected \[3, 10\]"),
    ],
)
def test_broken_models_are_rejected_with_the_reason(
    folder: ModelFolder, tmp_path: Path, kind: str, message: str
) -> None:
    version = write_scorer(tmp_path / kind, kind)
    shutil.copy(folder.version_path(1) / "model.py", version)
    with pytest.raises(ModelRejected, match=message):
        validate_version(version, read_config(folder.config_path), "scorer")


def test_a_model_whose_inputs_differ_is_rejected(folder: ModelFolder, tmp_path: Path) -> None:
    version = tmp_path / "other"
    version.mkdir()
    shutil.copy(REPO / "triton_models/item_encoder/config.pbtxt", tmp_path / "unused.pbtxt")
    # The item encoder's graph is valid ONNX with other inputs: the scorer must refuse it.
    encoder = next((REPO / "triton_models/item_encoder/1").glob("*.onnx"), None)
    if encoder is None:
        pytest.skip("the item encoder is not exported (make install builds it)")
    shutil.copy(encoder, version / "model.onnx")
    shutil.copy(folder.version_path(1) / "model.py", version)
    with pytest.raises(ModelRejected, match="expected inputs"):
        validate_version(version, read_config(folder.config_path), "scorer")


def test_a_version_without_its_backend_code_is_rejected(
    folder: ModelFolder, tmp_path: Path
) -> None:
    version = write_scorer(tmp_path / "v")
    with pytest.raises(ModelRejected, match=r"no model\.py"):
        validate_version(version, read_config(folder.config_path), "scorer")


def test_a_config_without_latest_one_policy_is_refused(folder: ModelFolder) -> None:
    text = folder.config_path.read_text().replace(
        "version_policy: { latest: { num_versions: 1 } }", "version_policy: { all: {} }"
    )
    folder.config_path.write_text(text)
    with pytest.raises(ModelRejected, match="latest"):
        read_config(folder.config_path)


def test_an_unparseable_config_is_refused(folder: ModelFolder) -> None:
    folder.config_path.write_text("name: 'scorer'\ninput [ { name: ")
    with pytest.raises(ModelRejected, match="not a valid Triton model config"):
        read_config(folder.config_path)


# -- releases ----------------------------------------------------------------------------


def test_deploy_publishes_the_next_version_and_loads_it(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    source = write_scorer(tmp_path / "mine", scale=2.0)
    (source / "model.py").write_text("raise SystemExit('user code must not be deployed')\n")
    release = releaser.deploy(source, {"note": "by hand"})
    assert (release.outcome, release.version, release.previous) == ("serving", 2, 1)
    assert folder.versions() == [1, 2] and triton.loaded == 2
    # The canary ran before Triton loaded the version under its own name.
    assert triton.calls == ["canary", "load"]
    served = folder.version_path(2)
    assert (served / "model.onnx").read_bytes() == (source / "model.onnx").read_bytes()
    assert (served / "model.py").read_text() == (folder.version_path(1) / "model.py").read_text()
    assert not list((folder.path / ".staging").iterdir())
    assert release_log(folder)[-1]["outcome"] == "serving"


def test_deploy_takes_a_single_onnx_file(
    releaser: Releaser, folder: ModelFolder, tmp_path: Path
) -> None:
    source = write_scorer(tmp_path / "mine") / "model.onnx"
    assert releaser.deploy(source).version == 2
    assert (folder.version_path(2) / "model.onnx").is_file()


@pytest.mark.parametrize("kind", ["garbage", "nan", "wrong_shape"])
def test_a_broken_deploy_changes_nothing(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path, kind: str
) -> None:
    with pytest.raises(ModelRejected):
        releaser.deploy(write_scorer(tmp_path / kind, kind))
    assert folder.versions() == [1] and triton.loaded == 1
    assert triton.calls == []  # never shown to Triton, not even as a canary
    assert not list((folder.path / ".staging").iterdir())
    entry = release_log(folder)[-1]
    assert entry["outcome"] == "rejected" and entry["reason"]


def test_a_failed_canary_is_not_published(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    triton.canary_error = "Triton canary scorer-canary: probe 0 returned non-finite scores"
    with pytest.raises(ModelRejected, match="non-finite"):
        releaser.deploy(write_scorer(tmp_path / "mine"))
    assert folder.versions() == [1] and triton.calls == ["canary"]


def test_a_version_triton_cannot_load_is_retired(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    triton.fail_next_load = "failed to load 'scorer' version 2: out of memory"
    with pytest.raises(ModelRejected, match="out of memory"):
        releaser.deploy(write_scorer(tmp_path / "mine"))
    assert folder.versions() == [1] and folder.retired() == [2]
    assert triton.loaded == 1
    assert "out of memory" in str(folder.retired_note(2)["reason"])


def test_rollback_serves_the_previous_version(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    releaser.deploy(write_scorer(tmp_path / "v2"))
    release = releaser.rollback("v2 hurt the hit rate")
    assert (release.outcome, release.version, release.previous) == ("rolled-back", 1, 2)
    assert folder.versions() == [1] and triton.loaded == 1
    assert folder.retired_note(2)["reason"] == "v2 hurt the hit rate"
    # The next release gets a fresh number: "scorer:2" keeps meaning the rolled-back model.
    assert releaser.deploy(write_scorer(tmp_path / "v3")).version == 3


def test_rollback_needs_an_earlier_version(releaser: Releaser) -> None:
    with pytest.raises(LayoutError, match="nothing to roll back to"):
        releaser.rollback()


def test_a_rollback_triton_refuses_leaves_the_folder_as_served(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    releaser.deploy(write_scorer(tmp_path / "v2"))
    triton.fail_next_load = "Triton is down"
    with pytest.raises(TritonControlError):
        releaser.rollback()
    assert folder.versions() == [1, 2] and triton.loaded == 2


def half_copied(folder: ModelFolder, version: int, missing: bool = False) -> Path:
    """``<version>/`` written straight into the repository by a copy that stopped half-way:
    the model file cut short (or not there yet), the backend code already copied."""
    path = folder.version_path(version)
    path.mkdir()
    shutil.copy(folder.version_path(1) / "model.py", path)
    if not missing:
        whole = (folder.version_path(1) / "model.onnx").read_bytes()
        (path / "model.onnx").write_bytes(whole[: len(whole) // 2])
    return path


@pytest.mark.parametrize("missing", [False, True], ids=["truncated", "missing"])
def test_a_half_copied_version_is_set_aside_and_never_served(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path, missing: bool
) -> None:
    half_copied(folder, 2, missing)
    release = releaser.deploy(write_scorer(tmp_path / "v3", scale=3.0))
    assert (release.version, release.previous) == (3, 1)
    assert folder.versions() == [1, 3] and folder.retired() == [2] and triton.loaded == 3
    note = str(folder.retired_note(2)["reason"])
    assert "not published by a release" in note and "model.onnx" in note
    # The rollback goes back to the version that served before, not to the copy.
    assert releaser.rollback("test").version == 1
    assert triton.loaded == 1
    outcomes = [(e["outcome"], e["version"]) for e in release_log(folder)]
    assert outcomes == [("set-aside", 2), ("serving", 3), ("rolled-back", 1)]


def test_a_rollback_never_falls_back_to_a_half_copied_version(
    releaser: Releaser, folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    releaser.deploy(write_scorer(tmp_path / "v2"))
    # Version 3 copied in by hand over the served 2, and stopped half-way.
    half_copied(folder, 3)
    assert releaser.rollback("test").version == 1
    assert folder.versions() == [1] and folder.retired() == [2, 3] and triton.loaded == 1


def test_a_version_copied_in_whole_is_kept(
    releaser: Releaser, folder: ModelFolder, tmp_path: Path
) -> None:
    """Validation, not provenance, decides: a complete copy stays a version."""
    shutil.copytree(folder.version_path(1), folder.version_path(2))
    assert releaser.deploy(write_scorer(tmp_path / "v3")).version == 3
    assert folder.versions() == [1, 2, 3] and folder.retired() == []


def test_before_triton_starts_a_broken_highest_version_is_set_aside(
    folder: ModelFolder, tmp_path: Path
) -> None:
    """Triton loads the highest version at start: a half-copied 3 would be it, and a
    whole copy 2 must stay (stack: services/stack/components.py, before every start)."""
    from services.trainer.release import set_aside_before_start

    shutil.copytree(folder.version_path(1), folder.version_path(2))
    half_copied(folder, 3)
    assert set_aside_before_start(folder.repository, "scorer") == [3]
    assert folder.versions() == [1, 2] and folder.retired() == [3]
    assert "not published by a release" in str(folder.retired_note(3)["reason"])
    assert set_aside_before_start(folder.repository, "scorer") == [], "nothing left to do"
    assert set_aside_before_start(tmp_path / "elsewhere", "scorer") == []


def test_old_versions_are_pruned_after_a_release(
    folder: ModelFolder, triton: FakeTriton, tmp_path: Path
) -> None:
    releaser = Releaser(folder, triton, keep=2)
    for i in range(3):
        releaser.deploy(write_scorer(tmp_path / f"v{i}"))
    assert folder.versions() == [3, 4]
