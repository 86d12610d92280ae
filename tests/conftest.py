"""Shared fixtures: real Kafka and Redis (one fixture), and the whole embedded stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.infra import Infra, free_ports, provide_infra


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """A real Kafka broker and Redis: testcontainers if Docker answers, embedded otherwise."""
    with provide_infra() as value:
        yield value


@pytest.fixture(scope="session")
def redis_url(infra: Infra) -> str:
    """The Redis of the `infra` fixture (Feast's production online store)."""
    return infra.redis_url


@pytest.fixture
def unique() -> str:
    """A short unique token, to keep tests' ids apart on a shared broker."""
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def stack_settings(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from services.stack.settings import StackSettings

    ports = free_ports(7)
    run_dir: Path = tmp_path_factory.mktemp("stack")
    return StackSettings(
        broker_port=ports[0],
        triton_http_port=ports[1],
        triton_grpc_port=ports[2],
        triton_metrics_port=ports[3],
        worker_web_port=ports[4],
        trainer_port=ports[5],
        dashboard_port=ports[6],
        run_dir=run_dir,
        topic_partitions=4,
    )


@pytest.fixture(scope="session")
def stack(stack_settings, monkeypatch_session):  # type: ignore[no-untyped-def]
    """The embedded stack, started with `up --detach` and stopped with `down` (real processes)."""
    from services.stack.control import down, up_detached

    # Each test stack keeps its Feast files in its own run dir.
    monkeypatch_session.setenv("STREAMREC_FEAST_DATA_DIR", str(stack_settings.run_dir / "feast"))
    # The test stack serves the checkout's triton_models/: its trainer must never publish
    # there, so no amount of test clicks is enough to retrain.
    monkeypatch_session.setenv("STREAMREC_TRAINER_MIN_CLICKS", "1000000")
    # Test batches are rarely the 256 clicks of a flat-out stream: a small chunk has every
    # batch of over 32 clicks ranked in pipelined chunks, through the real Triton.
    monkeypatch_session.setenv("STREAMREC_SCORING_CHUNK", "32")
    up_detached(stack_settings)
    try:
        yield stack_settings
    finally:
        down(stack_settings)
        logs = stack_settings.logs_dir
        if logs.exists():
            for log in logs.glob("*.log"):
                text = log.read_text(errors="replace")
                if "Traceback" in text:
                    print(f"--- {log.name} (tail) ---\n{text[-3000:]}")


@pytest.fixture(scope="session")
def monkeypatch_session() -> Iterator[pytest.MonkeyPatch]:
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()
