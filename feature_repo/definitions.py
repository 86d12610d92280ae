"""Feast definitions for StreamRec's online features, grouped by entity.

Two loaders read this module: the Feast CLI (``feast -c feature_repo apply``, configured by
``feature_store.yaml`` next to it) and ``services.features.repo.build_feast_store``, which
applies ``OBJECTS`` programmatically. It must stay importable on its own (no StreamRec
imports) because the CLI imports it as a top-level module.
"""

from __future__ import annotations

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, PushSource, ValueType
from feast.types import Int64, String

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

# History of user_activity rows for training and backfills. The streaming path writes
# online only, so this file may be absent; Feast needs a batch source behind every push
# source. The path is relative to this folder, whose data/ is git-ignored.
user_activity_batch = FileSource(
    name="user_activity_batch",
    path="data/user_activity.parquet",
    timestamp_field="event_timestamp",
    description="Offline log of user_activity rows (parquet).",
)

# Where the feature agent writes each micro-batch of per-user aggregates
# (``FeatureStore.push(..., to=PushMode.ONLINE)``); every view sourced from it is updated.
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
    # Generous: a returning user after months away should still get their history, and
    # the online store never expires rows on its own.
    ttl=timedelta(days=365),
    schema=[
        # Clicks seen for the user since the stream began.
        Field(name="click_count", dtype=Int64),
        # The item of the user's latest click.
        Field(name="last_item_id", dtype=String),
        # JSON-encoded list of item ids, most recent first, at most 50. A JSON string
        # rather than Array(String) keeps the value one opaque cell on every online store.
        Field(name="recent_items", dtype=String),
        # The row's event time as epoch microseconds (UTC). Feast's own event timestamp
        # comes back from online reads truncated to whole seconds, too coarse for the
        # writer's latest-event-wins check.
        Field(name="last_event_ts", dtype=Int64),
    ],
    online=True,
    source=user_activity_push,
    description="Per-user click aggregates, latest event wins.",
)

# Everything to register, in the order the programmatic loader applies it.
OBJECTS = [user, user_activity_batch, user_activity_push, user_activity]
