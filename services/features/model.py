"""The feature rows the stream writes, one class per feature view, and their encodings.

Rows are snapshots, not increments: a newer row replaces an older one whole. Each row
has a ``key`` (its entity's join-key value) and an aware ``event_ts``, which is all the
latest-event-wins guard (``services.features.guard``) needs to know about it.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

# The feature view keeps at most this many recent items; older ones are dropped on write.
MAX_RECENT_ITEMS = 50
# Co-visited neighbours kept per item row, strongest first.
MAX_COVISITED = 20
# The user's segment when the worker runs without a segmenter. Feast has no nullable
# Int64 on every online store, and -1 is never a real segment id.
NO_SEGMENT = -1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class UserFeatures:
    """A user's click activity as of ``event_ts``: one row of the ``user_activity`` view.

    ``recent_items`` is most recent first. ``clicks_1h`` and ``clicks_24h`` count clicks in
    the hour and day before ``event_ts`` (event time). ``embedding`` is the user's vector,
    the normalised mean of their recent items' text embeddings; empty when not computed.
    """

    user_id: str
    event_ts: datetime
    click_count: int
    last_item_id: str
    recent_items: tuple[str, ...]
    segment: int = NO_SEGMENT
    clicks_1h: int = 0
    clicks_24h: int = 0
    embedding: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _check("user_id", self.user_id, self.event_ts)

    @property
    def key(self) -> str:
        return self.user_id

    def normalised(self) -> UserFeatures:
        """The row as a store returns it: UTC, 50 recent items at most, float32 values."""
        return replace(
            self,
            event_ts=self.event_ts.astimezone(UTC),
            recent_items=tuple(self.recent_items)[:MAX_RECENT_ITEMS],
            embedding=as_float32(self.embedding),
        )


@dataclass(frozen=True)
class ItemFeatures:
    """What the catalog says about an item: one row of the ``item_features`` view.

    Written when the item's text is embedded; ``event_ts`` is the item event's own time,
    or when it was embedded if the event carried none.
    """

    item_id: str
    event_ts: datetime
    title: str
    categories: tuple[str, ...] = ()
    embedding: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _check("item_id", self.item_id, self.event_ts)

    @property
    def key(self) -> str:
        return self.item_id

    def normalised(self) -> ItemFeatures:
        return replace(
            self,
            event_ts=self.event_ts.astimezone(UTC),
            categories=tuple(self.categories),
            embedding=as_float32(self.embedding),
        )


@dataclass(frozen=True)
class ItemActivityFeatures:
    """How an item is being clicked as of ``event_ts``: one row of the ``item_activity`` view.

    ``event_ts`` is the item's newest click; the windowed counts end there. ``trending`` is
    the click count decayed with a one-day half-life; ``covisited`` lists the items most
    often clicked near this one by the same user, strongest first.
    """

    item_id: str
    event_ts: datetime
    popularity: int
    popularity_1h: int = 0
    popularity_24h: int = 0
    trending: float = 0.0
    covisited: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check("item_id", self.item_id, self.event_ts)

    @property
    def key(self) -> str:
        return self.item_id

    def normalised(self) -> ItemActivityFeatures:
        return replace(
            self,
            event_ts=self.event_ts.astimezone(UTC),
            covisited=tuple(self.covisited)[:MAX_COVISITED],
        )


Row = TypeVar("Row", UserFeatures, ItemFeatures, ItemActivityFeatures)


def normalise(row: Row) -> Row:
    """The row as a store will return it (see each row's ``normalised``)."""
    return row.normalised()


def _check(name: str, key: str, ts: datetime) -> None:
    # A naive time would be read as local time by some code paths and UTC by others;
    # refusing it here keeps the ordering check honest.
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"event_ts for {name} {key!r} must be timezone-aware")
    if not key:
        raise ValueError(f"{name} must not be empty")


def as_float32(values: Iterable[float]) -> tuple[float, ...]:
    """Values rounded to float32, as Feast's Array(Float32) stores them."""
    return tuple(array("f", values))


def to_epoch_us(ts: datetime) -> int:
    """Exact epoch microseconds; float seconds would blur neighbouring events."""
    return (ts - _EPOCH) // _MICROSECOND


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def encode_ids(items: Sequence[str], limit: int | None = None) -> str:
    """A list of ids as one JSON string: one opaque cell on every online store."""
    return json.dumps(list(items[:limit]), separators=(",", ":"))


def decode_ids(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError(f"expected a JSON list of ids, got {type(items).__name__}")
    return tuple(str(item) for item in items)
