"""The rows the worker writes to the feature store: users, item activity, catalog items."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np
import pytest

from services.contract.events import ItemEvent
from services.features import NO_SEGMENT, InMemoryFeatureStore
from services.features.model import as_float32
from services.recommender.app import in_memory_core
from services.recommender.embeddings import DIM, EmbeddingIndex
from services.recommender.feature_rows import (
    catalog_rows,
    item_activity_row,
    user_row,
    write_catalog_features,
)
from services.recommender.state import ItemStats, UserState
from services.recommender.windows import KeyedWindows
from tests.support.clicks import T0, click


def unit(seed: int) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vec / np.linalg.norm(vec)


def test_user_row_carries_windows_segment_and_vector() -> None:
    user = UserState()
    for i, minute in enumerate((0, 100, 130)):
        ts = (T0 + timedelta(minutes=minute)).timestamp()
        user.record(f"e{i}", f"i{i}", ts, recent_limit=50, seen_limit=100)
    vector = unit(1)
    row = user_row("u1", user, vector, segment=3)
    assert row.event_ts == T0 + timedelta(minutes=130)
    assert (row.click_count, row.last_item_id, row.recent_items) == (3, "i2", ("i2", "i1", "i0"))
    assert (row.segment, row.clicks_1h, row.clicks_24h) == (3, 2, 3)
    assert len(row.embedding) == DIM and np.array_equal(np.asarray(row.embedding), vector)
    assert user_row("u1", user, vector, segment=None).segment == NO_SEGMENT


def test_item_activity_row_reads_stats_and_windows() -> None:
    stats, windows = ItemStats(), KeyedWindows()
    for item, previous, minute in (("a", [], 0), ("b", ["a"], 1), ("a", ["b"], 90)):
        ts = (T0 + timedelta(minutes=minute)).timestamp()
        stats.observe(item, previous, ts)
        windows.add(item, ts)
    row = item_activity_row("a", stats, windows)
    assert row is not None
    assert row.event_ts == T0 + timedelta(minutes=90)
    assert (row.popularity, row.popularity_1h, row.popularity_24h) == (2, 1, 2)
    assert row.trending == pytest.approx(stats.trending("a"))
    assert row.covisited == ("b",)
    assert item_activity_row("never-clicked", stats, windows) is None


def test_catalog_rows_skip_items_not_yet_embedded_and_stamp_the_rest() -> None:
    embedded_at = T0 + timedelta(hours=5)
    dated = ItemEvent(item_id="m1", title="Heat (1995)", categories=["Action"], ts=T0)
    undated = ItemEvent(item_id="m2", title="Up (2009)")
    waiting = ItemEvent(item_id="m3", title="Pending")
    raw = 3.0 * unit(7)
    rows = catalog_rows([(dated, raw), (undated, unit(8)), (waiting, None)], embedded_at)
    assert [r.item_id for r in rows] == ["m1", "m2"]
    m1, m2 = rows
    assert m1.event_ts == T0 and m2.event_ts == embedded_at
    assert (m1.title, m1.categories, m2.categories) == ("Heat (1995)", ("Action",), ())
    # Stored normalised, as the embedding index holds it.
    assert np.linalg.norm(np.asarray(m1.embedding)) == pytest.approx(1.0, abs=1e-6)


def test_write_catalog_features_pushes_through_the_store() -> None:
    store = InMemoryFeatureStore()
    item = ItemEvent(item_id="m1", title="Heat (1995)")
    vector = unit(3)
    assert asyncio.run(write_catalog_features(store, [(item, vector)], now=T0)) == 1
    got = store.get_item_features(["m1"])["m1"]
    assert got is not None and got.title == "Heat (1995)" and got.event_ts == T0
    assert got.embedding == as_float32(vector.tolist())
    # Without a store (the worker's --no-feast) there is nothing to do.
    assert asyncio.run(write_catalog_features(None, [(item, vector)])) == 0


def test_a_batch_writes_user_rows_and_the_rows_of_its_items() -> None:
    store = InMemoryFeatureStore()
    embeddings = EmbeddingIndex()
    for k, item in enumerate(("a", "b", "c")):
        embeddings.upsert(item, unit(k))
    core = in_memory_core(features=store, embeddings=embeddings)
    batch = [click("e1", "u1", "a", 0), click("e2", "u1", "b", 1), click("e3", "u2", "a", 2)]
    result = asyncio.run(core.process(batch))
    assert [r.user_id for r in result.features.users] == ["u1", "u2"]
    assert sorted(r.item_id for r in result.features.items) == ["a", "b"]
    asyncio.run(core.write_features(result))

    u1 = store.get_user_features(["u1"])["u1"]
    assert u1 is not None and u1.recent_items == ("b", "a")
    assert (u1.clicks_1h, u1.clicks_24h) == (2, 2) and u1.segment != NO_SEGMENT
    expected = embeddings.user_vector(["b", "a"])
    assert np.allclose(np.asarray(u1.embedding), expected, atol=1e-6)

    a = store.get_item_activity(["a"])["a"]
    assert a is not None and a.event_ts == T0 + timedelta(minutes=2)
    assert (a.popularity, a.popularity_1h, a.popularity_24h) == (2, 2, 2)

    # A later batch moves the item's row forward; a replayed one changes nothing.
    later = asyncio.run(core.process([click("e4", "u3", "a", 120)]))
    asyncio.run(core.write_features(later))
    a = store.get_item_activity(["a"])["a"]
    assert a is not None and (a.popularity, a.popularity_1h, a.popularity_24h) == (3, 1, 3)
    replay = asyncio.run(core.process([click("e4", "u3", "a", 120)]))
    assert replay.duplicates and not replay.features.users and not replay.features.items
