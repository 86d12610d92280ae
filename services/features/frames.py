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
from feast.protos.feast.types.EntityKey_pb2 import EntityKey
from feast.protos.feast.types.Value_pb2 import FloatList, Value
from feast.type_map import python_values_to_proto_values
from feast.value_type import ValueType

from services.features.errors import FeatureStoreError
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
        return self.prepare(rows).frame()

    def prepare(self, rows: Sequence[Row]) -> Prepared[Row]:
        """The rows normalised and encoded once, for both the online write and the log."""
        rows = [normalise(row) for row in rows]
        columns = {
            **self.columns(rows),
            LAST_EVENT_TS: _int64([to_epoch_us(row.event_ts) for row in rows]),
        }
        return Prepared(self, rows, columns)

    def entity_key(self, key: str) -> EntityKey:
        """``key`` as Feast's entity key of this view."""
        return EntityKey(join_keys=[self.join_key], entity_values=[Value(string_val=key)])

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


@dataclass(frozen=True)
class Prepared(Generic[Row]):
    """A batch of one view's rows, normalised, with its feature columns encoded."""

    codec: ViewCodec[Row]
    rows: list[Row]
    columns: dict[str, Any]  # feature name -> values, last_event_ts included

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                self.codec.join_key: [row.key for row in self.rows],
                EVENT_TIMESTAMP: pd.to_datetime([row.event_ts for row in self.rows], utc=True),
                **self.columns,
            }
        )

    def online_rows(
        self, types: Mapping[str, ValueType]
    ) -> list[tuple[EntityKey, dict[str, Value], datetime, datetime | None]]:
        """The rows as Feast's ``online_write_batch`` takes them: what ``ingest_df`` makes
        of :meth:`frame`, value for value, without the frame.

        ``types`` are the view's feature types. Feast's way (a frame, then arrow, then a
        proto per value through its type checks) was a quarter of a worker's feature-write
        CPU, which runs flat out at ~0.2 ms per click, holding the GIL. The types
        StreamRec's views use are built here directly; any other goes through Feast's own
        converter. ``tests/integration/test_feast_online.py`` checks that the stored rows
        are the bytes Feast's own push writes.
        """
        missing = sorted(set(types) - set(self.columns))
        if missing:
            # Feast's ingest_df refuses such a frame; rows without them would read as None.
            raise FeatureStoreError(
                f"the feature view {self.codec.view!r} has features {missing} that "
                "services/features/frames.py does not write; feature_repo/ and frames.py "
                "disagree"
            )
        values = {
            name: _proto_values(list(column), types[name])
            for name, column in self.columns.items()
            if name in types  # a column that is not a feature of the view: Feast skips it
        }
        keys = [self.codec.entity_key(row.key) for row in self.rows]
        names = list(values)
        return [
            (key, dict(zip(names, vals, strict=True)), row.event_ts, None)
            for key, row, *vals in zip(keys, self.rows, *values.values(), strict=True)
        ]


def _proto_values(column: list[Any], value_type: ValueType) -> list[Value]:
    """One column's Feast values, as Feast's converter makes them (None: an empty value)."""
    if value_type == ValueType.INT64:
        return [Value() if v is None else Value(int64_val=int(v)) for v in column]
    if value_type == ValueType.STRING:
        return [Value() if v is None else Value(string_val=v) for v in column]
    if value_type == ValueType.DOUBLE:
        # NaN is a missing value to Feast's converter too (v != v only for NaN).
        return [Value() if v is None or v != v else Value(double_val=float(v)) for v in column]
    if value_type == ValueType.FLOAT_LIST:
        return [Value() if v is None else Value(float_list_val=FloatList(val=v)) for v in column]
    return list(python_values_to_proto_values(column, value_type))


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
