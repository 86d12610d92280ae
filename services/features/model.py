"""The per-user feature row and the latest-event-wins rule every store applies."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# The feature view keeps at most this many recent items; older ones are dropped on write.
MAX_RECENT_ITEMS = 50

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class UserFeatures:
    """A user's click activity as of ``event_ts``: one row of the ``user_activity`` view.

    ``recent_items`` is most recent first. Rows are snapshots, not increments: a newer row
    replaces an older one whole.
    """

    user_id: str
    event_ts: datetime
    click_count: int
    last_item_id: str
    recent_items: tuple[str, ...]

    def __post_init__(self) -> None:
        # A naive time would be read as local time by some code paths and UTC by others;
        # refusing it here keeps the ordering check honest.
        if self.event_ts.tzinfo is None or self.event_ts.utcoffset() is None:
            raise ValueError(f"event_ts for user {self.user_id!r} must be timezone-aware")
        if not self.user_id:
            raise ValueError("user_id must not be empty")


def normalise(row: UserFeatures) -> UserFeatures:
    """The row as a store will return it: UTC time, a tuple of at most 50 recent items."""
    items = tuple(row.recent_items)[:MAX_RECENT_ITEMS]
    ts = row.event_ts.astimezone(UTC)
    if items == row.recent_items and ts is row.event_ts:
        return row
    return UserFeatures(
        user_id=row.user_id,
        event_ts=ts,
        click_count=row.click_count,
        last_item_id=row.last_item_id,
        recent_items=items,
    )


def to_epoch_us(ts: datetime) -> int:
    """Exact epoch microseconds; float seconds would blur neighbouring events."""
    return (ts - _EPOCH) // _MICROSECOND


def from_epoch_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def encode_recent_items(items: Sequence[str]) -> str:
    return json.dumps(list(items[:MAX_RECENT_ITEMS]), separators=(",", ":"))


def decode_recent_items(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError(f"recent_items must be a JSON list, got {type(items).__name__}")
    return tuple(str(item) for item in items)


def newest_per_user(rows: Iterable[UserFeatures]) -> dict[str, UserFeatures]:
    """Each user's newest row in a batch.

    Between rows with the same event time the later one in the batch wins: the caller
    hands rows over in processing order, so the later one saw more events.
    """
    newest: dict[str, UserFeatures] = {}
    for row in rows:
        current = newest.get(row.user_id)
        if current is None or row.event_ts >= current.event_ts:
            newest[row.user_id] = row
    return newest


def rows_to_write(
    rows: Iterable[UserFeatures], stored_ts: Mapping[str, datetime | None]
) -> list[UserFeatures]:
    """Rows that are strictly newer than what the store holds for their user.

    An equal time does not overwrite: replaying a row already written is then a no-op,
    and Feast's Redis store skips equal times anyway, so SQLite and Redis agree.
    """
    keep = []
    for user_id, row in newest_per_user(rows).items():
        stored = stored_ts.get(user_id)
        if stored is None or row.event_ts > stored:
            keep.append(row)
    return keep
