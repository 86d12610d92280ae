"""Latest event wins: the rule every store applies before it writes a batch of rows.

Feast's SQLite store keeps the last row written whatever its event time, and its Redis
store compares event times itself; applying this rule before either makes both behave
the same, and lets the store report how many rows it actually wrote.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Protocol, TypeVar


class Keyed(Protocol):
    """A row of some feature view: its entity key and the event time it describes."""

    @property
    def key(self) -> str: ...

    @property
    def event_ts(self) -> datetime: ...


R = TypeVar("R", bound=Keyed)


def newest_per_key(rows: Iterable[R]) -> dict[str, R]:
    """Each key's newest row in a batch.

    Between rows with the same event time the later one in the batch wins: the caller
    hands rows over in processing order, so the later one saw more events.
    """
    newest: dict[str, R] = {}
    for row in rows:
        current = newest.get(row.key)
        if current is None or row.event_ts >= current.event_ts:
            newest[row.key] = row
    return newest


def rows_to_write(rows: Iterable[R], stored_ts: Mapping[str, datetime | None]) -> list[R]:
    """Rows that are strictly newer than what the store holds for their key.

    An equal time does not overwrite: replaying a row already written is then a no-op,
    and Feast's Redis store skips equal times anyway, so SQLite and Redis agree.
    """
    keep = []
    for key, row in newest_per_key(rows).items():
        stored = stored_ts.get(key)
        if stored is None or row.event_ts > stored:
            keep.append(row)
    return keep
