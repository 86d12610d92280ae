"""Feast definitions for StreamRec's online features, grouped by entity.

Two loaders read this module: the Feast CLI (``feast -c feature_repo apply``, configured by
``feature_store.yaml`` next to it) and ``services.features.repo.build_feast_store``, which
applies ``OBJECTS`` programmatically. It must stay importable on its own (no StreamRec
imports) because the CLI imports it as a top-level module.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Array, Float32, Float64, Int64, String

# Every view keeps its rows this long. Generous: a returning user after months away should
# still get their history, and the online store never expires rows on its own.
TTL = timedelta(days=365)


def last_event_ts() -> Field:
    """The row's event time as epoch microseconds (UTC), a feature of every view.

    Feast's own event timestamp comes back from online reads truncated to whole seconds,
    too coarse for the writer's latest-event-wins check. A fresh Field per view, because
    applying definitions mutates them.
    """
    return Field(name="last_event_ts", dtype=Int64)


# ---------------------------------------------------------------------------------------
# user
# ---------------------------------------------------------------------------------------

# A person using the product, identified by the ``user_id`` carried on every click event.
# Feature views keyed by ``user`` describe what that person has done recently.
user = Entity(
    name="user",
    join_keys=["user_id"],
    value_type=ValueType.STRING,
    description="An end user, keyed by the user_id on click events.",
)

# History of user_activity rows, for training (``get_historical_features``). A folder of
# parquet parts: the writer appends a part per flush instead of rewriting one file, which
# Feast's own offline push does on every call. The path is relative to the repo path:
# the data dir of the stack (services/features/repo.py), or this folder for the CLI,
# whose data/ is git-ignored.
user_activity_batch = FileSource(
    name="user_activity_batch",
    path="data/offline/user_activity",
    timestamp_field="event_timestamp",
    description="Offline log of user_activity rows (parquet parts).",
)

# Where the feature agent writes each micro-batch of per-user aggregates: every view
# sourced from it is updated (``FeastFeatureStore`` resolves them once and writes each
# through the provider, as ``FeatureStore.push(..., to=PushMode.ONLINE)`` would).
# The same rows go to the offline log above, written by StreamRec rather than Feast.
user_activity_push = PushSource(
    name="user_activity_push",
    batch_source=user_activity_batch,
    description="Streaming writes of per-user click aggregates.",
)

# A user's click activity as of their latest event: the ranking model's user context.
# One row per user; each push replaces the row (the writer refuses older events).
user_activity = FeatureView(
    name="user_activity",
    entities=[user],
    ttl=TTL,
    schema=[
        # Clicks seen for the user since the stream began.
        Field(name="click_count", dtype=Int64),
        # The item of the user's latest click.
        Field(name="last_item_id", dtype=String),
        # JSON-encoded list of item ids, most recent first, at most 50. A JSON string
        # rather than Array(String) keeps the value one opaque cell on every online store.
        Field(name="recent_items", dtype=String),
        # Online segment at the latest click; -1 when the worker runs without segments.
        Field(name="segment", dtype=Int64),
        # Clicks in the hour and in the day before the latest click (event time, in
        # five-minute buckets: the hour is 55 to 60 minutes).
        Field(name="clicks_1h", dtype=Int64),
        Field(name="clicks_24h", dtype=Int64),
        # The user's vector (384 floats): normalised mean of their 10 most recent items'
        # text embeddings (zeros while none of them is embedded).
        Field(name="embedding", dtype=Array(Float32)),
        last_event_ts(),
    ],
    online=True,
    source=user_activity_push,
    description="Per-user click aggregates, latest event wins.",
)

# ---------------------------------------------------------------------------------------
# item
# ---------------------------------------------------------------------------------------

# A catalog entry, identified by the ``item_id`` on item events and on click events.
# Two views describe it, because two writers with two clocks do: the catalog (item
# events, stamped when published or embedded) and the click stream (event time of
# clicks). One view for both would let either writer's newer clock lock the other out.
item = Entity(
    name="item",
    join_keys=["item_id"],
    value_type=ValueType.STRING,
    description="A catalog item, keyed by the item_id on item and click events.",
)

# History of item_features rows, for training; see user_activity_batch.
item_features_batch = FileSource(
    name="item_features_batch",
    path="data/offline/item_features",
    timestamp_field="event_timestamp",
    description="Offline log of item_features rows (parquet parts).",
)

# Where the catalog path writes items as the item_encoder embeds them.
item_features_push = PushSource(
    name="item_features_push",
    batch_source=item_features_batch,
    description="Streaming writes of catalog entries and their text embeddings.",
)

# What the catalog says about an item: its text and the embedding of that text.
item_features = FeatureView(
    name="item_features",
    entities=[item],
    ttl=TTL,
    schema=[
        Field(name="title", dtype=String),
        # JSON-encoded list of the item event's categories (MovieLens: genres).
        Field(name="categories", dtype=String),
        # The item's text embedding (384 floats from the item_encoder), L2-normalised.
        Field(name="embedding", dtype=Array(Float32)),
        last_event_ts(),
    ],
    online=True,
    source=item_features_push,
    description="Per-item catalog content and text embedding, latest event wins.",
)

# History of item_activity rows, for training; see user_activity_batch.
item_activity_batch = FileSource(
    name="item_activity_batch",
    path="data/offline/item_activity",
    timestamp_field="event_timestamp",
    description="Offline log of item_activity rows (parquet parts).",
)

# Where the feature agent writes the items clicked in each micro-batch.
item_activity_push = PushSource(
    name="item_activity_push",
    batch_source=item_activity_batch,
    description="Streaming writes of per-item click aggregates.",
)

# How an item is being clicked as of its latest click: popularity and neighbours.
item_activity = FeatureView(
    name="item_activity",
    entities=[item],
    ttl=TTL,
    schema=[
        # Clicks seen for the item since the worker started (all time).
        Field(name="popularity", dtype=Int64),
        # Clicks in the hour and in the day before the item's latest click.
        Field(name="popularity_1h", dtype=Int64),
        Field(name="popularity_24h", dtype=Int64),
        # Clicks decayed with a one-day half-life (event time).
        Field(name="trending", dtype=Float64),
        # JSON-encoded list of the 20 items most co-visited with this one, strongest first.
        Field(name="covisited", dtype=String),
        last_event_ts(),
    ],
    online=True,
    source=item_activity_push,
    description="Per-item click aggregates, latest event wins.",
)

# Everything to register, in the order the programmatic loader applies it.
OBJECTS = [
    user,
    user_activity_batch,
    user_activity_push,
    user_activity,
    item,
    item_features_batch,
    item_features_push,
    item_features,
    item_activity_batch,
    item_activity_push,
    item_activity,
]
