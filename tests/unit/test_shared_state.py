"""Shared state: the feed records' codec, the replay filter, and applying records at once
(one process) or only as the feed returns them (several workers)."""

from __future__ import annotations

import asyncio
import base64
import json

import jsonschema
import numpy as np
import pytest

from services.contract import codec, generate
from services.contract.events import (
    ITEM_ACTIVITY,
    ITEM_EMBEDDINGS,
    ItemActivity,
    ItemEmbedding,
    ItemEvent,
)
from services.data import synthetic
from services.features import InMemoryFeatureStore
from services.recommender.app import in_memory_core
from services.recommender.catalog import Catalog, CatalogUpdater
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.encoder import HashingEncoder
from services.recommender.feed import InMemoryFeed
from services.recommender.segments import SegmentConfig, UserSegmenter
from services.recommender.shared import RecentIds, SharedStateApplier
from services.recommender.state import ItemStats
from tests.support.clicks import T0, click
from tests.support.encoders import FlakyEncoder
from tests.support.shared_state import feed_core, snapshot, split


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def activity(eid: str, item: str, previous: list[str] | None = None, **kw) -> ItemActivity:  # type: ignore[no-untyped-def]
    return ItemActivity(
        event_id=eid, user_id="u", item_id=item, previous=previous or [], ts=T0, **kw
    )


# -- codec ---------------------------------------------------------------------------------


def test_item_activity_round_trips_and_matches_its_schema() -> None:
    record = activity("e1", "b", ["a"], segment_vector=[0.25, -0.5, 1 / 3], segment=2)
    raw = codec.encode(record)
    assert codec.decode_item_activity(raw) == record
    schema = json.loads((generate.SCHEMA_DIR / f"{ITEM_ACTIVITY}.schema.json").read_text())
    jsonschema.validate(json.loads(raw), schema)


def test_embeddings_round_trip_exactly_as_little_endian_float32() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    text = codec.encode_vector(vector)
    assert base64.b64decode(text) == vector.astype("<f4").tobytes()
    np.testing.assert_array_equal(codec.decode_vector(text), vector)
    record = ItemEmbedding(item=ItemEvent(item_id="i", title="Heat"), embedding=text)
    raw = codec.encode(record)
    assert codec.decode_item_embedding(raw) == record
    schema = json.loads((generate.SCHEMA_DIR / f"{ITEM_EMBEDDINGS}.schema.json").read_text())
    jsonschema.validate(json.loads(raw), schema)
    jsonschema.validate(json.loads(codec.encode(ItemEmbedding(item=record.item))), schema)


@pytest.mark.parametrize(
    ("text", "reason"),
    [("not base64!", "not valid base64"), (base64.b64encode(b"12345").decode(), "float32s")],
)
def test_broken_vectors_are_refused_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(codec.EventDecodeError, match=reason):
        codec.decode_vector(text)
    raw = json.dumps({"item": {"item_id": "i", "title": "t"}, "embedding": text}).encode()
    with pytest.raises(codec.EventDecodeError, match=reason):
        codec.decode_item_embedding(raw)


# -- replay filter -------------------------------------------------------------------------


def test_recent_ids_drop_repeats_within_the_window_only() -> None:
    ids = RecentIds(size=3)
    assert [ids.add(k) for k in "abc"] == [True, True, True]
    assert not ids.add("a") and len(ids) == 3
    assert ids.add("d")  # forgets "a", the oldest
    assert "a" not in ids and ids.add("a")
    with pytest.raises(ValueError):
        RecentIds(0)


# -- applying records ----------------------------------------------------------------------


def applier() -> SharedStateApplier:
    return SharedStateApplier(
        ItemStats(), Catalog(), EmbeddingIndex(dim=4), UserSegmenter(SegmentConfig(n_segments=3))
    )


def test_a_republished_click_is_applied_once() -> None:
    a = applier()
    assert a.apply(activity("e1", "b", ["a"]))
    assert not a.apply(activity("e1", "b", ["a"]))
    assert a.stats.popularity["b"] == 1 and a.applied == 1 and a.duplicates == 1
    assert a.stats.covis["a"]["b"] == 1.0


def test_an_entry_without_a_vector_keeps_the_older_vector() -> None:
    a = applier()
    vector = codec.encode_vector(np.array([1, 0, 0, 0], np.float32))
    a.apply(ItemEmbedding(item=ItemEvent(item_id="i", title="Old"), embedding=vector))
    a.apply(ItemEmbedding(item=ItemEvent(item_id="i", title="New"), embedding=None))
    assert a.catalog.title("i") == "New"
    np.testing.assert_array_equal(a.embeddings.vectors(["i"])[0], [1, 0, 0, 0])


def test_every_applied_click_counts_in_the_item_windows_once() -> None:
    a = applier()
    a.apply(activity("e1", "b"))
    a.apply(activity("e1", "b"))  # republished: not counted again
    a.apply(activity("e2", "b"))
    assert a.item_windows.count("b", 3600) == 2


def test_a_record_from_a_differently_configured_worker_is_counted_not_fatal() -> None:
    a = applier()
    assert a.apply(activity("e1", "b", segment=7))  # this segmenter has 3 segments
    assert a.rejected == 1 and a.stats.popularity["b"] == 1


def test_local_mode_applies_a_batch_after_ranking_it() -> None:
    core = in_memory_core()
    result = run(core.process([click("e1", "u1", "a"), click("e2", "u1", "b")]))
    assert core.stats.popularity == {"a": 1, "b": 1}
    assert core.stats.covis["b"]["a"] == 1.0
    assert sorted(row.item_id for row in result.features.items) == ["a", "b"]
    assert core.shared.caught_up and core.shared.status()["mode"] == "local"


def test_a_batch_is_ranked_on_the_state_as_of_its_start() -> None:
    """A user's later click in the batch must not count when the earlier one is ranked:
    that would put the very item clicked next into the answer (a leak)."""
    core = in_memory_core()
    run(core.process([click("w1", "u0", "x"), click("w2", "u0", "y")]))
    result = run(core.process([click("e1", "u1", "a"), click("e2", "u1", "b")]))
    first = result.recommendations[0]
    assert first.event_id == "e1"
    assert {i.item_id for i in first.items} == {"x", "y"}
    # Only the next batch sees them.
    later = run(core.process([click("e3", "u2", "c")]))
    assert {"a", "b"} <= {i.item_id for i in later.recommendations[0].items}


def test_feed_mode_applies_a_click_only_when_the_feed_returns_it() -> None:
    feed = InMemoryFeed()
    reader = feed.reader()
    core = feed_core(reader, feed)
    held = reader.take
    reader.take = lambda: []  # type: ignore[method-assign]  # the feed is slow this batch
    result = run(core.process([click("e1", "u1", "a")]))
    assert len(result.recommendations) == 1 and len(result.published) == 1
    assert core.stats.popularity["a"] == 0 and core.users.get("u1").recent == ["a"]
    # Not counted yet, so no item row is written for it yet.
    assert result.features.items == []
    [(topic, key, value)] = feed.log
    assert topic == ITEM_ACTIVITY and key == b"u1"
    assert codec.decode_item_activity(value).previous == []
    reader.take = held  # type: ignore[method-assign]
    assert core.shared.sync() == 1
    assert core.stats.popularity["a"] == 1
    # The next click's record names the first as its previous item.
    run(core.process([click("e2", "u1", "b")]))
    assert codec.decode_item_activity(feed.log[-1][2]).previous == ["a"]


def test_workers_on_one_feed_hold_identical_state_and_a_restart_rebuilds_it() -> None:
    feed = InMemoryFeed()
    workers = [feed_core(feed.reader(), feed) for _ in range(2)]
    ds = synthetic.generate(n_users=40, n_items=60, n_clicks=600, seed=5)
    # Each worker consumes part of the catalog (its `items` partitions)...
    run(CatalogUpdater(workers[0].shared, HashingEncoder()).apply(ds.items[:30]))
    run(CatalogUpdater(workers[1].shared, HashingEncoder()).apply(ds.items[30:]))
    # ...and the clicks of its own users, in interleaved micro-batches.
    for start in range(0, len(ds.clicks), 50):
        for core, batch in zip(workers, split(ds.clicks[start : start + 50], 2), strict=True):
            run(core.process(batch))
    for core in workers:
        core.shared.sync()
    a, b = (snapshot(core) for core in workers)
    assert a == b
    assert sum(a["popularity"].values()) == 600 and len(a["catalog"]) == 60
    assert len(a["embedding_ids"]) == 60 and a["seeded"] > 1
    # Republishing a batch (at-least-once after a crash) changes nothing.
    feed.log += [entry for entry in feed.log if entry[0] == ITEM_ACTIVITY][:50]
    for core in workers:
        core.shared.sync()
    assert snapshot(workers[0]) == a
    # A restarted worker reads the feed from the start and holds the same state.
    restarted = feed_core(feed.reader(), feed)
    assert not restarted.shared.caught_up
    restarted.shared.sync()
    assert restarted.shared.caught_up and snapshot(restarted) == a


def test_items_are_shared_without_a_vector_while_the_encoder_is_down() -> None:
    feed = InMemoryFeed()
    owner, other = feed_core(feed.reader(), feed), feed_core(feed.reader(), feed)
    encoder = FlakyEncoder()
    updater = CatalogUpdater(owner.shared, encoder)
    run(updater.apply([ItemEvent(item_id="n1", title="New film")]))
    assert [codec.decode_item_embedding(v).embedding for _, _, v in feed.log] == [None]
    assert "n1" not in owner.catalog  # not until read back
    for core in (owner, other):
        core.shared.sync()
        assert "n1" in core.catalog and "n1" not in core.embeddings
    encoder.up = True
    assert run(updater.flush()) == 1 and not updater.pending
    for core in (owner, other):
        core.shared.sync()
        assert "n1" in core.embeddings
    assert snapshot(owner) == snapshot(other)


def test_embedded_items_get_their_feast_catalog_row_and_unembedded_ones_wait() -> None:
    store = InMemoryFeatureStore()
    encoder = HashingEncoder()
    core = in_memory_core()
    updater = CatalogUpdater(core.shared, encoder, store)
    run(updater.apply([ItemEvent(item_id="n1", title="New film", categories=["Drama"])]))
    row = store.get_item_features(["n1"])["n1"]
    assert row is not None and row.title == "New film"
    np.testing.assert_allclose(row.embedding, core.embeddings.vectors(["n1"])[0], atol=1e-6)

    down = CatalogUpdater(core.shared, FlakyEncoder(), store)
    run(down.apply([ItemEvent(item_id="n2", title="Later film")]))
    # Written only once it has a vector: a row without one would use up its event time.
    assert store.get_item_features(["n2"])["n2"] is None and "n2" in core.catalog
