"""Each feature view's rows as a Feast push frame, and back from an online read.

One :class:`ViewCodec` per view in ``feature_repo/definitions.py``; the column names here
are that file's field names. Loaded with Feast (it needs pandas), never by the light
``services.features`` import.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic

import pandas as pd

from services.features.model import (
    MAX_RECENT_ITEMS,
    ItemActivityFeatures,
    ItemFeatures,
    Row,
    UserFeatures,
    decode_ids,
    encode_ids,
    from_epoch_us,
    normalise,
    to_epoch_us,
)
from services.features.repo import (
    ACTIVITY_PUSH,
    ACTIVITY_VIEW,
    ITEM_PUSH,
    ITEM_VIEW,
    USER_PUSH,
    USER_VIEW,
)

# The push frame's event-time column: the timestamp_field of every batch source.
EVENT_TIMESTAMP = "event_timestamp"
LAST_EVENT_TS = "last_event_ts"


@dataclass(frozen=True)
class ViewCodec(Generic[Row]):
    """Where one kind of row goes in Feast and how it is encoded there."""

    view: str
    push_source: str
    join_key: str
    # Feature columns other than last_event_ts, from rows already normalised.
    columns: Callable[[Sequence[Row]], dict[str, Any]]
    # A row from its key, event time and the online values of its features.
    decode: Callable[[str, datetime, Mapping[str, Any]], Row]
    features: tuple[str, ...]

    def frame(self, rows: Sequence[Row]) -> pd.DataFrame:
        """The push frame: join key, event time, features, in the store's encoding."""
        rows = [normalise(row) for row in rows]
        return pd.DataFrame(
            {
                self.join_key: [row.key for row in rows],
                EVENT_TIMESTAMP: pd.to_datetime([row.event_ts for row in rows], utc=True),
                **self.columns(rows),
                LAST_EVENT_TS: _int64([to_epoch_us(row.event_ts) for row in rows]),
            }
        )

    def refs(self, features: Sequence[str] | None = None) -> list[str]:
        """Feature references for ``get_online_features`` (all features by default)."""
        names = (*self.features, LAST_EVENT_TS) if features is None else features
        return [f"{self.view}:{name}" for name in names]

    def read(self, keys: Sequence[str], data: Mapping[str, list[Any]]) -> dict[str, Row | None]:
        """Rows from ``get_online_features(...).to_dict()`` for ``keys``, None if unwritten."""
        result: dict[str, Row | None] = {}
        for i, key in enumerate(keys):
            ts = data[LAST_EVENT_TS][i]
            if ts is None:
                result[key] = None
                continue
            values = {name: data[name][i] for name in self.features}
            result[key] = self.decode(key, from_epoch_us(ts), values)
        return result


def _int64(values: Sequence[int]) -> pd.Series:
    return pd.Series(values, dtype="int64")


def _vector(values: tuple[float, ...]) -> list[float] | None:
    # An empty vector is written as a missing value: Feast stores an empty list as one.
    return list(values) if values else None


def _floats(value: Sequence[float] | None) -> tuple[float, ...]:
    return tuple(value) if value else ()


def _user_columns(rows: Sequence[UserFeatures]) -> dict[str, Any]:
    return {
        "click_count": _int64([row.click_count for row in rows]),
        "last_item_id": [row.last_item_id for row in rows],
        "recent_items": [encode_ids(row.recent_items, MAX_RECENT_ITEMS) for row in rows],
        "segment": _int64([row.segment for row in rows]),
        "clicks_1h": _int64([row.clicks_1h for row in rows]),
        "clicks_24h": _int64([row.clicks_24h for row in rows]),
        "embedding": [_vector(row.embedding) for row in rows],
    }


def _user(key: str, ts: datetime, v: Mapping[str, Any]) -> UserFeatures:
    return UserFeatures(
        user_id=key,
        event_ts=ts,
        click_count=v["click_count"],
        last_item_id=v["last_item_id"],
        recent_items=decode_ids(v["recent_items"]),
        segment=v["segment"],
        clicks_1h=v["clicks_1h"],
        clicks_24h=v["clicks_24h"],
        embedding=_floats(v["embedding"]),
    )


def _item_columns(rows: Sequence[ItemFeatures]) -> dict[str, Any]:
    return {
        "title": [row.title for row in rows],
        "categories": [encode_ids(row.categories) for row in rows],
        "embedding": [_vector(row.embedding) for row in rows],
    }


def _item(key: str, ts: datetime, v: Mapping[str, Any]) -> ItemFeatures:
    return ItemFeatures(
        item_id=key,
        event_ts=ts,
        title=v["title"],
        categories=decode_ids(v["categories"]),
        embedding=_floats(v["embedding"]),
    )


def _activity_columns(rows: Sequence[ItemActivityFeatures]) -> dict[str, Any]:
    return {
        "popularity": _int64([row.popularity for row in rows]),
        "popularity_1h": _int64([row.popularity_1h for row in rows]),
        "popularity_24h": _int64([row.popularity_24h for row in rows]),
        "trending": pd.Series([row.trending for row in rows], dtype="float64"),
        "covisited": [encode_ids(row.covisited) for row in rows],
    }


def _activity(key: str, ts: datetime, v: Mapping[str, Any]) -> ItemActivityFeatures:
    return ItemActivityFeatures(
        item_id=key,
        event_ts=ts,
        popularity=v["popularity"],
        popularity_1h=v["popularity_1h"],
        popularity_24h=v["popularity_24h"],
        trending=v["trending"],
        covisited=decode_ids(v["covisited"]),
    )


USERS: ViewCodec[UserFeatures] = ViewCodec(
    USER_VIEW,
    USER_PUSH,
    "user_id",
    _user_columns,
    _user,
    (
        "click_count",
        "last_item_id",
        "recent_items",
        "segment",
        "clicks_1h",
        "clicks_24h",
        "embedding",
    ),
)
ITEMS: ViewCodec[ItemFeatures] = ViewCodec(
    ITEM_VIEW, ITEM_PUSH, "item_id", _item_columns, _item, ("title", "categories", "embedding")
)
ACTIVITY: ViewCodec[ItemActivityFeatures] = ViewCodec(
    ACTIVITY_VIEW,
    ACTIVITY_PUSH,
    "item_id",
    _activity_columns,
    _activity,
    ("popularity", "popularity_1h", "popularity_24h", "trending", "covisited"),
)
