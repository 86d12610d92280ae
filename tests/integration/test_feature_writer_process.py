"""The Feast store in a child process (services/features/writer_process.py), for real:
a spawned child owning a FeastFeatureStore on SQLite or a real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.features import FeatureSettings, FeatureStoreError
from services.features.writer_process import FeatureWriterProcess
from services.recommender.feature_rows import push_with_retries
from tests.integration.test_feast_online import (
    BACKENDS,
    Backend,
    SettingsFactory,
    _activity,
    _row,
    _vector,
    private_redis,  # noqa: F401 (a fixture)
    settings_for,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.integration


@pytest.fixture
def writers() -> Iterator[list[FeatureWriterProcess]]:
    made: list[FeatureWriterProcess] = []
    yield made
    for writer in made:
        writer.close()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie until its parent reaps it: gone as far as work goes.
    return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


@pytest.mark.parametrize("backend", BACKENDS)
def test_rows_written_by_the_child_are_the_stores_with_the_guard(
    settings_for: SettingsFactory,  # noqa: F811
    writers: list[FeatureWriterProcess],
    backend: Backend,
) -> None:
    from services.features import FeastFeatureStore

    settings = settings_for(backend)
    writer = FeatureWriterProcess(settings)
    writers.append(writer)
    assert writer.pid is not None and writer.pid != os.getpid()
    rich = _row("u1", 10, "b", clicks=2)
    rich = type(rich)(**{**rich.__dict__, "embedding": _vector(1), "segment": 4})
    assert writer.push_user_features([rich, _row("u2", 5)]) == 2
    assert writer.push_user_features([_row("u1", 1, "stale")]) == 0  # older: refused
    assert writer.push_item_activity([_activity("m1", 3, 6)]) == 1
    # Read back through Feast in this process: the child wrote the store itself.
    reader = FeastFeatureStore(settings)
    try:
        got = reader.get_user_features(["u1", "u2", "u3"])
        assert got["u1"] == rich.normalised()
        assert got["u2"] == _row("u2", 5).normalised() and got["u3"] is None
        activity = reader.get_item_activity(["m1"])["m1"]
        assert activity is not None and activity.popularity == 6
    finally:
        reader.close()
    # And through the child.
    assert writer.get_user_features(["u1"])["u1"] == rich.normalised()


def test_a_child_killed_between_writes_is_replaced(
    settings_for: SettingsFactory,  # noqa: F811
    writers: list[FeatureWriterProcess],
) -> None:
    writer = FeatureWriterProcess(settings_for("sqlite"))
    writers.append(writer)
    assert writer.push_user_features([_row("u1", 1)]) == 1
    first = writer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # Whether the next call finds it dead or dies with it mid-call, the retry the worker
    # does (push_with_retries) writes the row: nothing is lost.
    written = asyncio.run(
        push_with_retries(writer.push_user_features, [_row("u1", 2, "new")], attempts=3)
    )
    assert written == 1
    assert writer.pid not in (None, first) and writer.restarts == 1
    got = writer.get_user_features(["u1"])["u1"]
    assert got is not None and got.last_item_id == "new"


def test_a_write_failing_in_the_child_raises_its_error_here(
    private_redis: tuple[str, subprocess.Popen[bytes]],  # noqa: F811
    tmp_path: Path,
    writers: list[FeatureWriterProcess],
) -> None:
    url, server = private_redis
    settings = FeatureSettings(online_store="redis", redis_url=url, data_dir=tmp_path / "feast")
    writer = FeatureWriterProcess(settings)
    writers.append(writer)
    assert writer.push_user_features([_row("u1", 1)]) == 1
    server.kill()
    server.wait(timeout=10)
    # Feast's own message, from the child; the child stays up for the retry.
    with pytest.raises(FeatureStoreError, match="STREAMREC_FEAST_REDIS_URL"):
        writer.push_user_features([_row("u1", 2)])
    assert writer.restarts == 0


def test_a_store_that_cannot_be_opened_stops_the_start(tmp_path: Path) -> None:
    settings = FeatureSettings(
        online_store="redis", redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path
    )
    with pytest.raises(FeatureStoreError, match="STREAMREC_FEAST_REDIS_URL") as info:
        FeatureWriterProcess(settings)
    assert "127.0.0.1:1/0" in str(info.value)


def test_close_writes_the_offline_log_and_ends_the_child(
    settings_for: SettingsFactory,  # noqa: F811
) -> None:
    import pyarrow.parquet as pq

    settings = settings_for("sqlite").model_copy(
        update={"offline_flush_s": 3600.0, "offline_flush_rows": 1000}
    )
    writer = FeatureWriterProcess(settings)
    pid = writer.pid
    assert pid is not None
    writer.push_user_features([_row("u1", 0), _row("u2", 0)])  # buffered: 2 < 1,000 rows
    folder = settings.data_dir / "data" / "offline" / "user_activity"  # feature_repo/
    assert pq.read_table(folder).num_rows == 0
    writer.close()
    assert _gone(pid)
    assert pq.read_table(folder).num_rows == 2
    with pytest.raises(FeatureStoreError, match="closed"):
        writer.push_user_features([_row("u3", 0)])
