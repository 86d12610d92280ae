"""Unit tests of the feature layer: settings, the latest-event-wins rule, the in-memory store.

Hermetic and Feast-free; the Feast store itself is covered in
tests/integration/test_feast_online.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.features import (
    MAX_RECENT_ITEMS,
    NO_SEGMENT,
    FeatureSettings,
    FeatureStoreError,
    InMemoryFeatureStore,
    ItemActivityFeatures,
    ItemFeatures,
    OnlineFeatureStore,
    UserFeatures,
)
from services.features.guard import newest_per_key, rows_to_write
from services.features.locks import FileLock
from services.features.model import (
    as_float32,
    decode_ids,
    encode_ids,
    from_epoch_us,
    normalise,
    to_epoch_us,
)
from services.features.settings import REPO_ROOT, RedisAddress

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)

RowFactory = Callable[..., UserFeatures]


@pytest.fixture
def row() -> RowFactory:
    """Build a UserFeatures row ``seconds`` after T0; the item names record which row won."""

    def make(
        user_id: str = "u1",
        seconds: float = 0.0,
        clicks: int = 1,
        item: str = "i1",
        recent: tuple[str, ...] | None = None,
    ) -> UserFeatures:
        return UserFeatures(
            user_id=user_id,
            event_ts=T0 + timedelta(seconds=seconds),
            click_count=clicks,
            last_item_id=item,
            recent_items=recent if recent is not None else (item,),
        )

    return make


# --- settings -----------------------------------------------------------------------


def test_settings_defaults_keep_state_under_the_repo_run_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("ONLINE_STORE", "REDIS_URL", "DATA_DIR", "PROJECT"):
        monkeypatch.delenv(f"STREAMREC_FEAST_{name}", raising=False)
    settings = FeatureSettings()
    assert settings.online_store == "sqlite"
    assert settings.data_dir == REPO_ROOT / ".run" / "feast"
    assert settings.registry_path.parent == settings.data_dir
    assert settings.sqlite_path.parent == settings.data_dir
    assert settings.project == "streamrec"


def test_settings_read_the_streamrec_feast_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMREC_FEAST_ONLINE_STORE", "redis")
    monkeypatch.setenv("STREAMREC_FEAST_REDIS_URL", "redis://cache.internal:6380/3")
    monkeypatch.setenv("STREAMREC_FEAST_DATA_DIR", str(tmp_path))
    settings = FeatureSettings()
    assert settings.online_store == "redis"
    assert settings.data_dir == tmp_path
    assert settings.redis == RedisAddress(host="cache.internal", port=6380, db=3)


def test_offline_log_settings_default_to_buffered_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OFFLINE_LOG", "OFFLINE_FLUSH_ROWS", "OFFLINE_FLUSH_S"):
        monkeypatch.delenv(f"STREAMREC_FEAST_{name}", raising=False)
    settings = FeatureSettings()
    assert (settings.offline_log, settings.offline_flush_rows, settings.offline_flush_s) == (
        True,
        10_000,
        30.0,
    )
    monkeypatch.setenv("STREAMREC_FEAST_OFFLINE_LOG", "false")
    monkeypatch.setenv("STREAMREC_FEAST_OFFLINE_FLUSH_S", "0")
    assert not FeatureSettings().offline_log and FeatureSettings().offline_flush_s == 0.0
    with pytest.raises(ValidationError, match="offline_flush_rows"):
        FeatureSettings(offline_flush_rows=0)


def test_settings_hide_the_redis_url_from_repr() -> None:
    settings = FeatureSettings(redis_url="redis://:hunter2@127.0.0.1:6379/0")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(settings.redis)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1:6379/0", "127.0.0.1:6379,db=0"),
        ("redis://localhost", "localhost:6379,db=0"),
        ("redis://h:7000/12", "h:7000,db=12"),
        ("redis://:s3cret@h:1/2", "h:1,db=2,password=s3cret"),
        ("redis://app:p%40ss@h/0", "h:6379,db=0,username=app,password=p@ss"),
        ("rediss://h:6380/0", "h:6380,db=0,ssl=true"),
    ],
)
def test_redis_url_becomes_a_feast_connection_string(url: str, expected: str) -> None:
    # Timeouts are appended after db so an unreachable server fails fast; not asserted here.
    conn = RedisAddress.parse(url).feast_connection_string()
    parts = conn.split(",")
    assert [p for p in parts if not p.startswith("socket_")] == expected.split(",")
    assert "socket_connect_timeout=3" in parts


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:6379/0",  # not redis
        "redis://h:6379/zero",  # db must be a number
        "redis://h:notaport/0",
        "redis://:a,b@h/0",  # Feast splits on commas
        "redis://:true@h/0",  # Feast JSON-decodes values
        "unix:///tmp/redis.sock",
    ],
)
def test_unusable_redis_urls_fail_at_settings_time(url: str) -> None:
    with pytest.raises(ValidationError, match="redis_url"):
        FeatureSettings(redis_url=url)


def test_settings_are_frozen() -> None:
    settings = FeatureSettings()
    with pytest.raises(ValidationError):
        settings.project = "other"


def test_importing_the_package_does_not_import_feast() -> None:
    # Feast takes seconds to import; services that only need the Protocol must not pay it.
    code = (
        "import sys, services.features, services.features.store; sys.exit('feast' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=False)
    assert done.returncode == 0, "importing services.features pulled in feast"


# --- the row and its encoding ---------------------------------------------------------


def test_rows_need_an_aware_event_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        UserFeatures("u1", datetime(2024, 1, 1), 1, "i1", ("i1",))


def test_normalise_converts_to_utc_and_caps_recent_items() -> None:
    plus2 = timezone(timedelta(hours=2))
    items = tuple(f"i{n}" for n in range(MAX_RECENT_ITEMS + 10))
    out = normalise(UserFeatures("u1", datetime(2024, 1, 1, 14, tzinfo=plus2), 3, "i0", items))
    assert out.event_ts == datetime(2024, 1, 1, 12, tzinfo=UTC)
    assert out.event_ts.utcoffset() == timedelta(0)
    assert out.recent_items == items[:MAX_RECENT_ITEMS]  # the most recent ones stay


def test_epoch_microseconds_round_trip_exactly() -> None:
    ts = datetime(2031, 7, 9, 1, 2, 3, 999_999, tzinfo=UTC)
    assert from_epoch_us(to_epoch_us(ts)) == ts
    assert to_epoch_us(ts + timedelta(microseconds=1)) - to_epoch_us(ts) == 1


def test_id_list_encoding_round_trips_and_caps() -> None:
    items = tuple(f"item-{n}" for n in range(60))
    assert decode_ids(encode_ids(items, MAX_RECENT_ITEMS)) == items[:MAX_RECENT_ITEMS]
    assert decode_ids(encode_ids(items)) == items
    assert decode_ids(None) == ()
    assert decode_ids("") == ()
    with pytest.raises(ValueError, match="JSON list"):
        decode_ids('{"a": 1}')


# --- latest event wins ----------------------------------------------------------------


def test_newest_row_per_user_wins_within_a_batch(row: RowFactory) -> None:
    batch = [row("u1", 5, item="new"), row("u1", 1, item="old"), row("u2", 3, item="only")]
    newest = newest_per_key(batch)
    assert newest["u1"].last_item_id == "new"
    assert newest["u2"].last_item_id == "only"


def test_equal_times_in_a_batch_go_to_the_later_row(row: RowFactory) -> None:
    newest = newest_per_key([row("u1", 5, item="first"), row("u1", 5, item="second")])
    assert newest["u1"].last_item_id == "second"


def test_only_strictly_newer_rows_beat_the_stored_time(row: RowFactory) -> None:
    stored = {"older": T0, "same": T0, "newer": T0, "absent": None}
    batch = [row("older", -1), row("same", 0), row("newer", 0.000001), row("absent", -100)]
    assert {r.user_id for r in rows_to_write(batch, stored)} == {"newer", "absent"}


# --- the in-memory store (the same contract the Feast store meets) ---------------------


def test_in_memory_store_satisfies_the_protocol() -> None:
    store: OnlineFeatureStore = InMemoryFeatureStore()
    assert store.get_user_features([]) == {}
    assert store.get_item_features([]) == {} and store.get_item_activity([]) == {}


def test_in_memory_store_round_trips_and_reports_unknown_users(row: RowFactory) -> None:
    store = InMemoryFeatureStore()
    assert store.push_user_features([row("u1", 0, clicks=4, recent=("a", "b"))]) == 1
    got = store.get_user_features(["u1", "ghost"])
    assert got["ghost"] is None
    assert got["u1"] == row("u1", 0, clicks=4, recent=("a", "b"))


def test_in_memory_store_refuses_older_events_across_batches(row: RowFactory) -> None:
    store = InMemoryFeatureStore()
    assert store.push_user_features([row("u1", 10, item="t10")]) == 1
    assert store.push_user_features([row("u1", 5, item="t5")]) == 0
    assert store.push_user_features([row("u1", 10, item="t10-replay")]) == 0
    stored = store.get_user_features(["u1"])["u1"]
    assert stored is not None and stored.last_item_id == "t10"
    assert store.push_user_features([row("u1", 11, item="t11")]) == 1
    stored = store.get_user_features(["u1"])["u1"]
    assert stored is not None and stored.last_item_id == "t11"


def test_in_memory_store_counts_rows_written_after_the_guard(row: RowFactory) -> None:
    store = InMemoryFeatureStore()
    store.push_user_features([row("u1", 10)])
    batch = [row("u1", 3), row("u2", 2, item="b"), row("u2", 4, item="a"), row("u3", 1)]
    assert store.push_user_features(batch) == 2  # u2 (newest of two) and u3
    assert store.push_user_features([]) == 0


# --- the new user fields and the item rows ----------------------------------------------


def test_user_rows_default_to_no_segment_no_windows_and_no_embedding(row: RowFactory) -> None:
    plain = row()
    assert (plain.segment, plain.clicks_1h, plain.clicks_24h) == (NO_SEGMENT, 0, 0)
    assert plain.embedding == ()
    assert plain.key == "u1"


def test_normalise_rounds_embeddings_to_float32() -> None:
    # Feast stores Array(Float32): what comes back is the float32 value, so the in-memory
    # store must return the same.
    third = 1.0 / 3.0
    user = UserFeatures("u1", T0, 1, "i", ("i",), embedding=(third, 0.5))
    assert normalise(user).embedding == as_float32((third, 0.5))
    assert normalise(user).embedding[0] != third and normalise(user).embedding[1] == 0.5
    item = ItemFeatures("i1", T0, "Title", ["Drama"], (third,))  # type: ignore[arg-type]
    assert normalise(item).categories == ("Drama",)
    assert normalise(item).embedding == as_float32((third,))


def test_item_rows_need_an_id_and_an_aware_time() -> None:
    with pytest.raises(ValueError, match="item_id"):
        ItemFeatures("", T0, "Title")
    with pytest.raises(ValueError, match="timezone-aware"):
        ItemActivityFeatures("i1", datetime(2024, 1, 1), popularity=1)


def test_activity_rows_cap_covisited_items() -> None:
    many = tuple(f"n{k}" for k in range(30))
    out = normalise(ItemActivityFeatures("i1", T0, 3, covisited=many))
    assert out.covisited == many[:20]


def test_the_guard_orders_item_rows_by_their_item() -> None:
    older = ItemActivityFeatures("i1", T0, popularity=1)
    newer = ItemActivityFeatures("i1", T0 + timedelta(seconds=1), popularity=2)
    other = ItemActivityFeatures("i2", T0, popularity=7)
    fresh = rows_to_write([newer, older, other], {"i1": T0, "i2": None})
    assert fresh == [newer, other]


def test_in_memory_store_keeps_items_and_activity_apart_latest_event_wins() -> None:
    store = InMemoryFeatureStore()
    item = ItemFeatures("i1", T0, "Heat (1995)", ("Action",), (0.5, 0.25))
    assert store.push_item_features([item]) == 1
    assert store.push_item_features([ItemFeatures("i1", T0, "stale")]) == 0
    assert store.get_item_features(["i1", "ghost"]) == {"i1": item, "ghost": None}
    # Activity rows live in their own view: the catalog row's time does not block them.
    assert store.push_item_activity([ItemActivityFeatures("i1", T0 - timedelta(days=1), 4)]) == 1
    assert store.push_item_activity([ItemActivityFeatures("i1", T0 - timedelta(days=2), 1)]) == 0
    activity = store.get_item_activity(["i1"])["i1"]
    assert activity is not None and activity.popularity == 4


# --- locks ------------------------------------------------------------------------------


def test_file_lock_excludes_a_second_holder_and_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "push.lock"
    with FileLock(path).hold():
        # flock belongs to the open file, so a second open in this process contends too.
        impatient = FileLock(path, timeout_s=0.05)
        with pytest.raises(FeatureStoreError, match="fuser"), impatient.hold():
            pass
    with FileLock(path, timeout_s=0.05).hold():
        pass  # released on exit
