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


def test_to_env_passes_the_admin_key_itself_and_leaves_an_unset_one_out(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("TRITON_ADMIN_KEY", "STREAMREC_TRITON_ADMIN_KEY"):
        monkeypatch.delenv(name, raising=False)
    unset = StackSettings(run_dir=tmp_path)
    assert "STREAMREC_TRITON_ADMIN_KEY" not in unset.to_env()  # not the text "None"
    keyed = StackSettings(run_dir=tmp_path, triton_admin_key="k3y")
    env = keyed.to_env()
    assert env["STREAMREC_TRITON_ADMIN_KEY"] == "k3y"  # the secret, not its mask
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert StackSettings() == keyed and StackSettings().admin_key() == "k3y"


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


def test_the_dashboard_watches_this_stack_on_loopback_by_default(tmp_path: Path) -> None:
    from services.stack.components import dashboard_component, dashboard_environment

    s = StackSettings(
        broker_port=1234,
        worker_web_port=7000,
        workers=2,
        trainer_port=7100,
        triton_http_port=8100,
        dashboard_port=7200,
        run_dir=tmp_path,
    )
    env = dashboard_environment(s)
    assert env["STREAMREC_KAFKA_BOOTSTRAP"] == "127.0.0.1:1234"
    assert env["STREAMREC_DASHBOARD_HOST"] == "127.0.0.1"
    assert env["STREAMREC_DASHBOARD_PORT"] == "7200"
    assert env["STREAMREC_DASHBOARD_WORKER_URLS"] == (
        '["http://127.0.0.1:7000", "http://127.0.0.1:7001"]'
    )
    assert env["STREAMREC_DASHBOARD_TRAINER_URL"] == "http://127.0.0.1:7100"
    assert env["STREAMREC_DASHBOARD_TRITON_URL"] == "http://127.0.0.1:8100"
    assert dashboard_component(s).endpoint == "http://127.0.0.1:7200/"
    no_trainer = dashboard_environment(s.model_copy(update={"trainer": False}))
    assert no_trainer["STREAMREC_DASHBOARD_TRAINER_URL"] == ""


def test_dashboard_settings_read_what_the_stack_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.dashboard.settings import DashboardSettings
    from services.stack.components import dashboard_environment

    assert DashboardSettings().host == "127.0.0.1"  # loopback unless asked otherwise
    s = StackSettings(broker_port=1234, worker_web_port=7000, workers=2, trainer=False)
    for key, value in dashboard_environment(s).items():
        if key.startswith("STREAMREC_"):
            monkeypatch.setenv(key, value)
    d = DashboardSettings()
    assert d.kafka.bootstrap == "127.0.0.1:1234"
    assert d.worker_urls == ("http://127.0.0.1:7000", "http://127.0.0.1:7001")
    assert d.trainer_url == "" and d.port == s.dashboard_port
