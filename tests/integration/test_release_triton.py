"""Releases against the real tritonserver (explicit model control, Python backend).

One Triton on a scratch copy of the scorer's folder; the tests run in order and each
leaves the server as the next expects (v1 → deploy v2 → broken ones refused → rollback
→ a release under continuous requests).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from services.recommender.triton import rank_inputs
from services.stack.settings import StackSettings
from services.trainer.layout import ModelFolder
from services.trainer.release import Releaser
from services.trainer.triton import TritonControl
from services.trainer.validate import ModelRejected, read_config, scorer_probes
from tests.support.scorer_models import expected_scores, scorer_repository, write_scorer
from tests.support.triton import triton_alone

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository with the committed scorer config and a tiny version 1."""
    return scorer_repository(tmp_path_factory.mktemp("release-repo"))


@pytest.fixture(scope="module")
def server(repository: Path) -> Iterator[StackSettings]:
    with triton_alone(repository, ("scorer",)) as settings:
        yield settings


@pytest.fixture(scope="module")
def control(server: StackSettings) -> Iterator[TritonControl]:
    # Triton's repository API is restricted to the stack's admin key (as in production).
    ctl = TritonControl(server.triton_http_url, server.admin_key())
    yield ctl
    ctl.close()


@pytest.fixture(scope="module")
def releaser(repository: Path, control: TritonControl) -> Releaser:
    return Releaser(ModelFolder(repository, "scorer"), control, keep=5)


def ask(server: StackSettings) -> tuple[str, np.ndarray, np.ndarray]:
    """One scorer request as the worker sends it; (model_version, scores, side)."""
    import tritonclient.http as httpclient

    probe = scorer_probes(384)[0]
    client = httpclient.InferenceServerClient(server.triton_http_url.removeprefix("http://"))
    try:
        inputs = rank_inputs(httpclient, probe)
        result = client.infer("scorer", inputs)
        return result.get_response()["model_version"], result.as_numpy("SCORES")[0], probe.side
    finally:
        client.close()


def test_version_one_serves_at_start(server: StackSettings, control: TritonControl) -> None:
    assert control.ready_version("scorer") == 1
    version, scores, side = ask(server)
    assert version == "1"
    np.testing.assert_allclose(scores, expected_scores(side, 1.0), rtol=1e-5)


def test_deploy_serves_the_new_version(
    server: StackSettings, releaser: Releaser, control: TritonControl, tmp_path: Path
) -> None:
    release = releaser.deploy(write_scorer(tmp_path / "v2", scale=2.0))
    assert (release.outcome, release.version) == ("serving", 2)
    assert control.ready_version("scorer") == 2
    version, scores, side = ask(server)
    assert version == "2"
    np.testing.assert_allclose(scores, expected_scores(side, 2.0), rtol=1e-5)
    # The canary was unloaded after it answered.
    names = {
        e["name"]
        for e in control.client.get_model_repository_index(headers=control.headers)
        if e.get("state") == "READY"
    }
    assert names == {"scorer"}


@pytest.mark.parametrize("kind", ["garbage", "nan", "wrong_shape"])
def test_a_broken_model_is_refused_and_the_served_one_keeps_serving(
    server: StackSettings, releaser: Releaser, tmp_path: Path, kind: str
) -> None:
    with pytest.raises(ModelRejected):
        releaser.deploy(write_scorer(tmp_path / kind, kind))
    assert releaser.folder.versions() == [1, 2]
    version, scores, side = ask(server)
    assert version == "2"
    np.testing.assert_allclose(scores, expected_scores(side, 2.0), rtol=1e-5)


def test_the_canary_on_triton_catches_what_it_serves_wrong(
    releaser: Releaser, control: TritonControl, tmp_path: Path
) -> None:
    """The Triton-side canary alone (the scratch onnxruntime check skipped): NaN scores
    from the server's own instance are refused, and the canary model is gone after."""
    folder = write_scorer(tmp_path / "nan", "nan")
    shutil.copy(releaser.folder.version_path(2) / "model.py", folder)
    with pytest.raises(
        ModelRejected, match="Triton canary scorer-canary: probe 0 returned non-finite"
    ):
        control.canary("scorer", folder, read_config(releaser.folder.config_path))
    ready = {
        e["name"]
        for e in control.client.get_model_repository_index(headers=control.headers)
        if e.get("state") == "READY"
    }
    assert "scorer-canary" not in ready


def test_rollback_serves_the_previous_version(
    server: StackSettings, releaser: Releaser, control: TritonControl
) -> None:
    release = releaser.rollback("test")
    assert (release.version, release.previous) == (1, 2)
    assert control.ready_version("scorer") == 1
    assert ask(server)[0] == "1"


def test_a_release_under_continuous_requests_fails_none(
    server: StackSettings, releaser: Releaser, tmp_path: Path
) -> None:
    versions: Counter[str] = Counter()
    failures: list[str] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            try:
                versions[ask(server)[0]] += 1
            except Exception as exc:  # every failure counts, whatever its type
                failures.append(repr(exc))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        release = releaser.deploy(write_scorer(tmp_path / "v3", scale=3.0))
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert release.version == 3
    assert failures == []
    assert versions["1"] > 0 and versions["3"] > 0, versions
    assert set(versions) == {"1", "3"}


def test_the_cli_deploys_and_rolls_back(
    server: StackSettings, repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from services.cli import main

    monkeypatch.setenv("STREAMREC_MODEL_REPOSITORY", str(repository))
    monkeypatch.setenv("STREAMREC_TRITON_HTTP_PORT", str(server.triton_http_port))
    # The CLI finds Triton's admin key in the run dir, as on a stack started with `up`.
    monkeypatch.setenv("STREAMREC_RUN_DIR", str(server.run_dir))
    runner = CliRunner()

    broken = runner.invoke(main, ["deploy", str(write_scorer(tmp_path / "bad", "nan"))])
    assert broken.exit_code == 1
    assert "rejected, nothing changed" in broken.output and "non-finite" in broken.output

    done = runner.invoke(main, ["deploy", str(write_scorer(tmp_path / "v4", scale=4.0))])
    assert done.exit_code == 0, done.output
    assert "version 4 serves (was 3)" in done.output
    assert ask(server)[0] == "4"

    back = runner.invoke(main, ["rollback", "--reason", "cli test"])
    assert back.exit_code == 0, back.output
    assert "version 3 serves again" in back.output
    assert ask(server)[0] == "3"

    listing = runner.invoke(main, ["models", "--json"])
    report = json.loads(listing.output)
    assert report["serving"] == 3 and report["triton_ready_version"] == 3
    assert report["retired"]["4"] == "cli test"
    assert [r["outcome"] for r in report["releases"]][-3:] == ["rejected", "serving", "rolled-back"]


def _shadow_seen(server: StackSettings) -> str | None:
    """What a worker's probe finds: the shadow's version label, or None."""
    import asyncio

    from services.recommender.shadow import TritonShadowProbe

    async def ask_once() -> str | None:
        probe = TritonShadowProbe(server.triton_grpc_url, "scorer-shadow")
        try:
            return await probe.active_version()
        finally:
            await probe.close()

    return asyncio.run(ask_once())


def test_a_shadow_serves_beside_the_model_and_leaves_no_trace(
    server: StackSettings, releaser: Releaser, control: TritonControl, tmp_path: Path
) -> None:
    """The challenger in shadow answers as ``scorer-shadow`` with its label, while the
    served version keeps answering as before; afterwards it is gone and the folder is as
    it was. One Triton cannot even load is refused with the reason."""
    import tritonclient.http as httpclient

    served_before = ask(server)[0]
    versions = releaser.folder.versions()
    assert _shadow_seen(server) is None
    with releaser.shadow(write_scorer(tmp_path / "challenger", scale=3.0), "scorer:challenger-7"):
        assert _shadow_seen(server) == "scorer:challenger-7"
        probe = scorer_probes(384)[0]
        client = httpclient.InferenceServerClient(server.triton_http_url.removeprefix("http://"))
        try:
            shadow = client.infer("scorer-shadow", rank_inputs(httpclient, probe))
            np.testing.assert_allclose(
                shadow.as_numpy("SCORES")[0], expected_scores(probe.side, 3.0), rtol=1e-5
            )
        finally:
            client.close()
        assert ask(server)[0] == served_before
    assert _shadow_seen(server) is None
    assert releaser.folder.versions() == versions

    garbage = write_scorer(tmp_path / "garbage", "garbage")
    with (
        pytest.raises(ModelRejected, match="Triton cannot load the shadow"),
        releaser.shadow(garbage, "scorer:bad"),
    ):
        pass
    assert _shadow_seen(server) is None and ask(server)[0] == served_before
