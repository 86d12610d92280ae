"""The Feast online store against real SQLite and a real Redis.

Redis must be running (CI starts it; locally ``redis-server --daemonize yes``); these
tests fail, not skip, without it. ``STREAMREC_TEST_REDIS_URL`` picks the server and
database (default db 15, away from a dev stack on db 0). Each test uses its own Feast
project, and so its own Redis keys, and deletes them afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest

from services.features import (
    FeatureSettings,
    FeatureStoreError,
    ItemActivityFeatures,
    ItemFeatures,
    UserFeatures,
)
from services.features.model import as_float32
from services.features.settings import REPO_ROOT

pytestmark = pytest.mark.integration

Backend = Literal["sqlite", "redis"]
BACKENDS: list[Backend] = ["sqlite", "redis"]

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


def _row(user_id: str, seconds: float, item: str = "i", clicks: int = 1) -> UserFeatures:
    return UserFeatures(
        user_id=user_id,
        event_ts=T0 + timedelta(seconds=seconds),
        click_count=clicks,
        last_item_id=item,
        recent_items=(item,),
    )


def _vector(seed: int, dim: int = 384) -> tuple[float, ...]:
    """A float32-exact unit vector, as the worker's embeddings are."""
    import numpy as np

    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return tuple((vec / np.linalg.norm(vec)).tolist())


def _activity(item_id: str, seconds: float, popularity: int) -> ItemActivityFeatures:
    return ItemActivityFeatures(
        item_id=item_id,
        event_ts=T0 + timedelta(seconds=seconds),
        popularity=popularity,
        popularity_1h=1,
        popularity_24h=popularity,
        trending=popularity / 3.0,
        covisited=("x", "y"),
    )


def _delete_project_keys(url: str, project: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        # Feast's keys end with the project name; ours (the push lock) embed it.
        for pattern in (f"*{project}", f"streamrec:{project}:*"):
            for key in client.scan_iter(match=pattern, count=1000):
                client.delete(key)
    finally:
        client.close()


SettingsFactory = Callable[[Backend], FeatureSettings]


@pytest.fixture
def settings_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SettingsFactory]:
    """Settings with a private data_dir and Feast project; Redis keys removed afterwards."""
    used: list[FeatureSettings] = []

    def make(backend: Backend) -> FeatureSettings:
        url = request.getfixturevalue("redis_url") if backend == "redis" else None
        settings = FeatureSettings(
            online_store=backend,
            data_dir=tmp_path / f"feast-{backend}",
            project=f"t{uuid.uuid4().hex[:12]}",
            **({"redis_url": url} if url else {}),
        )
        used.append(settings)
        return settings

    yield make
    for settings in used:
        if settings.online_store == "redis":
            _delete_project_keys(settings.redis_url, settings.project)


StoreFactory = Callable[..., Any]


@pytest.fixture
def store_for(settings_for: SettingsFactory) -> Iterator[StoreFactory]:
    """FeastFeatureStore factory; call again with the same settings for a second writer."""
    from services.features import FeastFeatureStore

    stores: list[FeastFeatureStore] = []

    def make(backend_or_settings: Backend | FeatureSettings) -> FeastFeatureStore:
        settings = (
            backend_or_settings
            if isinstance(backend_or_settings, FeatureSettings)
            else settings_for(backend_or_settings)
        )
        store = FeastFeatureStore(settings)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


# --- definitions and apply -------------------------------------------------------------


def test_definitions_describe_the_feature_views() -> None:
    from feast import Entity, FeatureView, PushSource

    from services.features.repo import load_definitions

    objects = {type(o).__name__ + ":" + o.name: o for o in load_definitions()}
    user = objects["Entity:user"]
    assert isinstance(user, Entity) and user.join_key == "user_id"
    assert isinstance(objects["PushSource:user_activity_push"], PushSource)
    view = objects["FeatureView:user_activity"]
    assert isinstance(view, FeatureView) and view.online
    assert {f.name: str(f.dtype) for f in view.features} == {
        "click_count": "Int64",
        "last_item_id": "String",
        "recent_items": "String",
        "segment": "Int64",
        "clicks_1h": "Int64",
        "clicks_24h": "Int64",
        "embedding": "Array(Float32)",
        "last_event_ts": "Int64",
    }
    assert view.ttl is not None and view.ttl >= timedelta(days=30)
    item = objects["Entity:item"]
    assert isinstance(item, Entity) and item.join_key == "item_id"
    items = objects["FeatureView:item_features"]
    assert isinstance(objects["PushSource:item_features_push"], PushSource)
    assert {f.name: str(f.dtype) for f in items.features} == {
        "title": "String",
        "categories": "String",
        "embedding": "Array(Float32)",
        "last_event_ts": "Int64",
    }
    activity = objects["FeatureView:item_activity"]
    assert isinstance(objects["PushSource:item_activity_push"], PushSource)
    assert {f.name: str(f.dtype) for f in activity.features} == {
        "popularity": "Int64",
        "popularity_1h": "Int64",
        "popularity_24h": "Int64",
        "trending": "Float64",
        "covisited": "String",
        "last_event_ts": "Int64",
    }
    for fv in (items, activity):
        assert fv.online and fv.entities == ["item"]


def test_build_feast_store_is_idempotent(settings_for: SettingsFactory) -> None:
    from services.features import build_feast_store

    settings = settings_for("sqlite")
    first = build_feast_store(settings)
    second = build_feast_store(settings)
    for store in (first, second):
        assert sorted(fv.name for fv in store.list_feature_views()) == [
            "item_activity",
            "item_features",
            "user_activity",
        ]
        for push in ("user_activity_push", "item_features_push", "item_activity_push"):
            assert store.get_data_source(push).name == push
    assert settings.registry_path.is_file() and settings.sqlite_path.is_file()


def test_feast_cli_applies_the_feature_repo(tmp_path: Path) -> None:
    # A copy, so the CLI's registry and database land in tmp_path, not the checkout.
    repo = tmp_path / "feature_repo"
    repo.mkdir()
    for name in ("feature_store.yaml", "definitions.py"):
        shutil.copy(REPO_ROOT / "feature_repo" / name, repo / name)
    feast_cli = Path(sys.executable).with_name("feast")
    done = subprocess.run(
        [str(feast_cli), "-c", str(repo), "apply"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "user_activity" in done.stdout
    assert (repo / "data" / "registry.db").is_file()


# --- reads and writes, on both backends --------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_push_then_read_round_trips(store_for: StoreFactory, backend: Backend) -> None:
    store = store_for(backend)
    items = tuple(f"item{n}" for n in range(70))
    ts = datetime(2024, 5, 1, 14, 0, 0, 123_456, tzinfo=UTC)
    written = store.push_user_features(
        [UserFeatures("u1", ts, 7, "item0", items), _row("u2", 0, "x")]
    )
    assert written == 2
    got = store.get_user_features(["u1", "u2", "ghost", "u1"])
    assert got["ghost"] is None
    u1 = got["u1"]
    assert u1 is not None
    assert u1.event_ts == ts and u1.event_ts.tzinfo is not None  # microseconds survive
    assert (u1.click_count, u1.last_item_id) == (7, "item0")
    assert u1.recent_items == items[:50]
    assert got["u2"] == _row("u2", 0, "x")


@pytest.mark.parametrize(("synchronous", "level"), [("normal", 1), ("full", 2)])
def test_sqlite_writes_ahead_and_syncs_as_configured(
    settings_for: SettingsFactory, store_for: StoreFactory, synchronous: str, level: int
) -> None:
    """The SQLite store commits to a write-ahead log, synced as the setting says, and a
    push is visible at once to a reader in another connection (another process's)."""
    import sqlite3

    settings = settings_for("sqlite").model_copy(update={"sqlite_synchronous": synchronous})
    store = store_for(settings)
    conn = store.feast._get_provider().online_store._get_conn(store.feast.config)
    assert conn.execute("PRAGMA synchronous").fetchone() == (level,)
    assert store.push_user_features([_row("u1", 0, "a")]) == 1
    reader = sqlite3.connect(settings.sqlite_path)
    try:
        # The mode is the file's: every connection to it, Feast's readers too, uses it.
        assert reader.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        table = f"{settings.project}_user_activity"
        (rows,) = reader.execute(f'SELECT count(*) FROM "{table}"').fetchone()
        assert rows > 0
    finally:
        reader.close()
    assert Path(f"{settings.sqlite_path}-wal").exists()
    assert store.get_user_features(["u1"])["u1"] == _row("u1", 0, "a")


def _sqlite_rows(settings: FeatureSettings) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of each view's table, as Feast's SQLite store holds them (no created_ts)."""
    import sqlite3

    conn = sqlite3.connect(settings.sqlite_path)
    try:
        out = {}
        for view in ("user_activity", "item_features", "item_activity"):
            table = f"{settings.project}_{view}"
            out[view] = conn.execute(
                f'SELECT entity_key, feature_name, value, value_text, event_ts FROM "{table}" '
                "ORDER BY entity_key, feature_name"
            ).fetchall()
        return out
    finally:
        conn.close()


def test_a_push_stores_the_bytes_feasts_own_ingest_stores(settings_for: SettingsFactory) -> None:
    """The store builds Feast's rows itself (frames.py, ``Prepared.online_rows``): they must
    be what Feast's ``ingest_df`` of the same frame writes, value for value, including
    empty embeddings, missing values and microsecond event times."""
    from services.features import FeastFeatureStore
    from services.features.frames import ACTIVITY, ITEMS, USERS

    ts = datetime(2024, 5, 1, 14, 0, 0, 123_456, tzinfo=UTC)
    users = [
        UserFeatures("u1", ts, 7, "i0", ("i0", "i1"), 3, 2, 5, _vector(1)),
        UserFeatures("u2", ts + timedelta(seconds=1), 1, "i9", ("i9",)),  # no embedding
    ]
    items = [
        ItemFeatures("i0", ts, "Toy Story (1995)", ("Animation",), _vector(2)),
        ItemFeatures("i1", ts, "Heat (1995)"),  # no categories, no embedding yet
    ]
    activity = [_activity("i0", 5, 3), ItemActivityFeatures("i1", ts, 0)]
    ours, feasts = settings_for("sqlite"), settings_for("sqlite")
    store = FeastFeatureStore(ours)
    try:
        assert store.push_user_features(users) == 2
        assert store.push_item_features(items) == 2
        assert store.push_item_activity(activity) == 2
    finally:
        store.close()
    reference = FeastFeatureStore(feasts)
    try:
        provider = reference.feast._get_provider()
        for codec, rows in ((USERS, users), (ITEMS, items), (ACTIVITY, activity)):
            view = reference.feast.get_feature_view(codec.view)
            provider.ingest_df(view, codec.frame(rows))
    finally:
        reference.close()
    got, want = _sqlite_rows(ours), _sqlite_rows(feasts)
    assert all(want.values()) and got == want


@pytest.mark.parametrize("backend", BACKENDS)
def test_older_events_never_overwrite_newer_ones(store_for: StoreFactory, backend: Backend) -> None:
    store = store_for(backend)
    assert store.push_user_features([_row("u1", 10, "t10"), _row("u2", 10, "t10")]) == 2
    # Out of order across batches: older loses, equal (a replay) loses, newer wins.
    assert store.push_user_features([_row("u1", 9, "t9"), _row("u2", 11, "t11")]) == 1
    assert store.push_user_features([_row("u1", 10, "t10-replay")]) == 0
    # A microsecond is enough to count as newer.
    assert store.push_user_features([_row("u1", 10.000001, "t10+1us")]) == 1
    got = store.get_user_features(["u1", "u2"])
    assert {u: (r.last_item_id if r else None) for u, r in got.items()} == {
        "u1": "t10+1us",
        "u2": "t11",
    }


@pytest.mark.parametrize("backend", BACKENDS)
def test_within_a_batch_each_users_newest_row_is_written(
    store_for: StoreFactory, backend: Backend
) -> None:
    store = store_for(backend)
    batch = [_row("u1", 3, "t3"), _row("u1", 5, "t5"), _row("u1", 4, "t4"), _row("u2", 1, "t1")]
    assert store.push_user_features(batch) == 2
    got = store.get_user_features(["u1"])["u1"]
    assert got is not None and got.last_item_id == "t5"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_second_writer_cannot_roll_back_the_first(
    store_for: StoreFactory, settings_for: SettingsFactory, backend: Backend
) -> None:
    # Two independent stores on one online store, as two worker processes would have:
    # the guard compares against what is stored, not against what this writer wrote.
    settings = settings_for(backend)
    first, second = store_for(settings), store_for(settings)
    assert second.push_user_features([_row("u1", 1, "old")]) == 1
    assert first.push_user_features([_row("u1", 20, "new")]) == 1
    assert second.push_user_features([_row("u1", 15, "stale")]) == 0
    got = second.get_user_features(["u1"])["u1"]
    assert got is not None and got.last_item_id == "new"


@pytest.mark.parametrize("backend", BACKENDS)
def test_new_user_fields_round_trip(store_for: StoreFactory, backend: Backend) -> None:
    store = store_for(backend)
    vector = _vector(1)
    row = UserFeatures(
        "u1", T0, 9, "a", ("a", "b"), segment=4, clicks_1h=2, clicks_24h=9, embedding=vector
    )
    assert store.push_user_features([row, _row("u2", 0)]) == 2
    got = store.get_user_features(["u1", "u2"])
    assert got["u1"] == row  # 384 float32 values survive exactly
    u2 = got["u2"]
    assert u2 is not None and (u2.segment, u2.clicks_1h, u2.embedding) == (-1, 0, ())


@pytest.mark.parametrize("backend", BACKENDS)
def test_item_features_and_activity_round_trip(store_for: StoreFactory, backend: Backend) -> None:
    store = store_for(backend)
    item = ItemFeatures("m1", T0, "Heat (1995)", ("Action", "Crime"), _vector(2))
    bare = ItemFeatures("m2", T0, "Untitled")
    assert store.push_item_features([item, bare]) == 2
    assert store.push_item_activity([_activity("m1", 0, 5)]) == 1
    assert store.get_item_features(["m1", "m2", "ghost"]) == {"m1": item, "m2": bare, "ghost": None}
    activity = store.get_item_activity(["m1", "m2"])
    assert activity == {"m1": _activity("m1", 0, 5), "m2": None}


@pytest.mark.parametrize("backend", BACKENDS)
def test_latest_event_wins_for_items_in_each_view(
    store_for: StoreFactory, settings_for: SettingsFactory, backend: Backend
) -> None:
    settings = settings_for(backend)
    first, second = store_for(settings), store_for(settings)

    def title(seconds: float, text: str) -> ItemFeatures:
        return ItemFeatures("m1", T0 + timedelta(seconds=seconds), text)

    assert first.push_item_features([title(10, "t10")]) == 1
    assert second.push_item_features([title(9, "t9"), title(10, "t10-replay")]) == 0
    assert second.push_item_features([title(10.000001, "t10+1us")]) == 1
    got = first.get_item_features(["m1"])["m1"]
    assert got is not None and got.title == "t10+1us"
    # Activity has its own clock: an older click time still lands there, once.
    assert first.push_item_activity([_activity("m1", 1, 3), _activity("m1", 2, 4)]) == 1
    assert second.push_item_activity([_activity("m1", 1.5, 99)]) == 0
    got_activity = second.get_item_activity(["m1"])["m1"]
    assert got_activity is not None and got_activity.popularity == 4


def _historical(store: Any, entity: str, keys: list[str], at: datetime, refs: list[str]) -> Any:
    import pandas as pd

    entity_df = pd.DataFrame(
        {entity: keys, "event_timestamp": pd.to_datetime([at] * len(keys), utc=True)}
    )
    frame = store.feast.get_historical_features(entity_df=entity_df, features=refs).to_df()
    return frame.set_index(entity)


# dask's division computation over several parquet parts calls a pandas method pandas
# 2.2 deprecates (dask/dataframe/dask_expr/_shuffle.py); not ours to fix.
@pytest.mark.filterwarnings("ignore:Downcasting object dtype arrays:FutureWarning")
@pytest.mark.parametrize("backend", BACKENDS)
def test_offline_rows_are_read_point_in_time(
    store_for: StoreFactory, settings_for: SettingsFactory, backend: Backend
) -> None:
    settings = settings_for(backend).model_copy(update={"offline_flush_s": 0.0})
    store = store_for(settings)
    early = UserFeatures("u1", T0, 1, "a", ("a",), segment=2, embedding=_vector(3))
    late = UserFeatures("u1", T0 + timedelta(hours=1), 2, "b", ("b", "a"), segment=5)
    store.push_user_features([early])
    store.push_user_features([late])
    store.push_user_features([UserFeatures("u1", T0, 7, "stale", ("stale",))])  # refused
    store.push_item_features([ItemFeatures("m1", T0, "Heat (1995)", ("Action",), _vector(4))])
    store.push_item_activity([_activity("m1", 60, 6)])

    refs = ["user_activity:click_count", "user_activity:segment", "user_activity:embedding"]
    between = _historical(store, "user_id", ["u1"], T0 + timedelta(minutes=30), refs)
    after = _historical(store, "user_id", ["u1"], T0 + timedelta(hours=2), refs)
    assert (between.loc["u1", "click_count"], between.loc["u1", "segment"]) == (1, 2)
    assert as_float32(between.loc["u1", "embedding"]) == early.embedding
    assert (after.loc["u1", "click_count"], after.loc["u1", "segment"]) == (2, 5)
    before = _historical(store, "user_id", ["u1"], T0 - timedelta(minutes=1), refs)
    assert before["click_count"].isna().all()  # nothing known yet: no leak from the future

    items = _historical(
        store,
        "item_id",
        ["m1"],
        T0 + timedelta(minutes=5),
        ["item_features:title", "item_features:categories", "item_activity:popularity"],
    )
    assert items.loc["m1", "title"] == "Heat (1995)"
    assert items.loc["m1", "categories"] == '["Action"]'
    assert items.loc["m1", "popularity"] == 6
    # The refused row never reached the log: one part per accepted push.
    assert store.offline is not None
    parts = sorted(store.offline.folder("user_activity").glob("*.parquet"))
    assert len(parts) == 2


def test_offline_rows_wait_for_a_flush(
    store_for: StoreFactory, settings_for: SettingsFactory
) -> None:
    settings = settings_for("sqlite").model_copy(
        update={"offline_flush_s": 3600.0, "offline_flush_rows": 3}
    )
    store = store_for(settings)
    assert store.offline is not None
    folder = store.offline.folder("user_activity")
    empty = [p.name for p in folder.glob("*.parquet")]
    assert len(empty) == 1 and "empty" in empty[0]  # readable before any write
    store.push_user_features([_row("u1", 0), _row("u2", 0)])
    assert [p.name for p in folder.glob("*.parquet")] == empty  # buffered: 2 < 3 rows
    store.push_user_features([_row("u3", 0)])  # the third row flushes all three
    parts = list(folder.glob("*.parquet"))
    assert len(parts) == 1 and "empty" not in parts[0].name
    store.push_user_features([_row("u4", 0)])
    assert store.flush_offline() == 1
    import pyarrow.parquet as pq

    assert pq.read_table(folder).num_rows == 4


_WORKER = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime, timedelta
    from services.features import FeastFeatureStore, FeatureSettings, UserFeatures

    settings = FeatureSettings.model_validate_json(sys.argv[1])
    offsets = json.loads(sys.argv[2])
    store = FeastFeatureStore(settings)  # applies: all workers start at once
    t0 = datetime(2024, 5, 1, tzinfo=UTC)
    for s in offsets:
        rows = [
            UserFeatures(f"u{n}", t0 + timedelta(seconds=s), s, f"t{s}", (f"t{s}",))
            for n in range(20)
        ]
        store.push_user_features(rows)
    store.close()
    """
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_processes_start_together_and_keep_the_latest_event(
    settings_for: SettingsFactory, backend: Backend
) -> None:
    # Three processes apply the definitions on one fresh data_dir at the same moment, then
    # push interleaved, deliberately out-of-order times for the same users.
    settings = settings_for(backend)
    plans = [[5, 1, 9, 3, 7], [2, 8, 4, 6, 0], [30, 10, 20, 15, 25]]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, settings.model_dump_json(), str(plan)],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for plan in plans
    ]
    outputs = [proc.communicate(timeout=180)[0] for proc in procs]
    for proc, out in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out

    from services.features import FeastFeatureStore

    reader = FeastFeatureStore(settings)
    try:
        got = reader.get_user_features([f"u{n}" for n in range(20)])
    finally:
        reader.close()
    assert {r.last_item_id if r else None for r in got.values()} == {"t30"}


# --- failures say what to do --------------------------------------------------------------


def test_unreachable_redis_raises_a_clear_error(tmp_path: Path) -> None:
    from services.features import FeastFeatureStore

    settings = FeatureSettings(
        online_store="redis", redis_url="redis://127.0.0.1:1/0", data_dir=tmp_path
    )
    with pytest.raises(FeatureStoreError, match="STREAMREC_FEAST_REDIS_URL") as info:
        FeastFeatureStore(settings)
    assert "127.0.0.1:1/0" in str(info.value)


def test_unusable_sqlite_dir_raises_a_clear_error(tmp_path: Path) -> None:
    from services.features import FeastFeatureStore

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    settings = FeatureSettings(online_store="sqlite", data_dir=blocker / "feast")
    with pytest.raises(FeatureStoreError, match="STREAMREC_FEAST_DATA_DIR"):
        FeastFeatureStore(settings)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server this test may kill; yields its URL and process."""
    import socket

    import redis

    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed; needed to simulate Redis dying")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.025)
        else:
            pytest.fail(f"private redis-server on port {port} did not start")
        yield url, proc
    finally:
        client.close()
        proc.kill()
        proc.wait(timeout=10)


def test_redis_dying_after_start_raises_a_clear_error(
    private_redis: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    from services.features import FeastFeatureStore

    url, server = private_redis
    settings = FeatureSettings(online_store="redis", redis_url=url, data_dir=tmp_path / "feast")
    store = FeastFeatureStore(settings)
    try:
        assert store.push_user_features([_row("u1", 1)]) == 1
        server.kill()
        server.wait(timeout=10)
        with pytest.raises(FeatureStoreError, match="STREAMREC_FEAST_REDIS_URL"):
            store.push_user_features([_row("u1", 2)])
        with pytest.raises(FeatureStoreError, match="unreachable"):
            store.get_user_features(["u1"])
    finally:
        store.close()


def test_the_values_built_for_feast_are_feasts_own_for_each_type() -> None:
    """frames.py builds the protos of the types StreamRec's views use itself: they must be
    what Feast's converter makes, missing values (None, NaN) included."""
    from feast.type_map import python_values_to_proto_values
    from feast.value_type import ValueType

    from services.features.frames import _proto_values

    columns = {
        ValueType.INT64: [3, None, -(2**40)],
        ValueType.STRING: ["a", None, "«Heat»"],
        ValueType.DOUBLE: [1.5, None, float("nan"), -0.0],
        ValueType.FLOAT_LIST: [[0.25, -1.0], None, [1e-8]],
    }
    for value_type, column in columns.items():
        ours = [v.SerializeToString() for v in _proto_values(column, value_type)]
        feasts = python_values_to_proto_values(column, value_type)
        assert ours == [v.SerializeToString() for v in feasts], value_type


def test_a_view_feature_frames_does_not_write_is_refused() -> None:
    from feast.value_type import ValueType

    from services.features.frames import USERS

    rows = USERS.prepare([_row("u1", 0)])
    with pytest.raises(FeatureStoreError, match="does not write"):
        rows.online_rows({"click_count": ValueType.INT64, "favourite_colour": ValueType.STRING})
