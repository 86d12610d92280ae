"""Stack settings: every port overridable by STREAMREC_ variables, and passed to children."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.stack.components import worker_environment
from services.stack.settings import StackSettings


def test_environment_overrides_every_address(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMREC_BROKER_PORT", "19092")
    monkeypatch.setenv("STREAMREC_TRITON_GRPC_PORT", "18001")
    monkeypatch.setenv("STREAMREC_RUN_DIR", str(tmp_path))
    monkeypatch.setenv("STREAMREC_TRITON_MODELS", '["scorer", "item_encoder"]')
    s = StackSettings()
    assert s.bootstrap == "127.0.0.1:19092" and s.triton_grpc_url == "127.0.0.1:18001"
    assert s.state_file == tmp_path / "state.json"
    assert s.triton_models == ("scorer", "item_encoder")


def test_to_env_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    original = StackSettings(
        broker_port=1234, workers=3, run_dir=tmp_path, triton_models=("a", "b")
    )
    for key, value in original.to_env().items():
        monkeypatch.setenv(key, value)
    assert StackSettings() == original


def test_each_worker_gets_the_stack_addresses_and_its_own_port(tmp_path: Path) -> None:
    s = StackSettings(
        broker_port=1234, triton_grpc_port=5678, worker_web_port=7000, run_dir=tmp_path
    )
    env0, env1 = worker_environment(s, 0), worker_environment(s, 1)
    assert env0["STREAMREC_KAFKA_BOOTSTRAP"] == "127.0.0.1:1234"
    assert env0["STREAMREC_TRITON_URL"] == "127.0.0.1:5678"
    assert (env0["STREAMREC_WORKER_WEB_PORT"], env1["STREAMREC_WORKER_WEB_PORT"]) == (
        "7000",
        "7001",
    )
    assert env0["STREAMREC_WORKER_DATA_DIR"] != env1["STREAMREC_WORKER_DATA_DIR"]
