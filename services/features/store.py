"""The online feature store seam: a Protocol, an in-memory store, and the Feast one.

``FeastFeatureStore`` and ``build_feast_store`` are loaded on first use: importing Feast
takes seconds (it pulls in torch), and code that only needs the Protocol or the
in-memory store should not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Generic, Protocol

from services.features.guard import rows_to_write
from services.features.model import ItemActivityFeatures, ItemFeatures, Row, UserFeatures, normalise

if TYPE_CHECKING:
    from services.features.feast_store import FeastFeatureStore as FeastFeatureStore
    from services.features.repo import build_feast_store as build_feast_store

__all__ = [
    "FeastFeatureStore",
    "InMemoryFeatureStore",
    "ItemActivityFeatures",
    "ItemFeatures",
    "OnlineFeatureStore",
    "UserFeatures",
    "build_feast_store",
]


class OnlineFeatureStore(Protocol):
    """Where the stream writes feature rows and the ranking reads them, one view per kind.

    Latest event wins for every kind: a row never replaces a stored row with the same or
    a later ``event_ts``, whatever order the rows arrive in. Each ``push_*`` writes one
    micro-batch and returns how many rows were written after that guard; each ``get_*``
    returns every requested key's row, or None for a key never written.
    """

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int: ...

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]: ...

    def push_item_features(self, rows: Sequence[ItemFeatures]) -> int:
        """Catalog rows (title, categories, text embedding), written as items are embedded."""
        ...

    def get_item_features(self, item_ids: Sequence[str]) -> dict[str, ItemFeatures | None]: ...

    def push_item_activity(self, rows: Sequence[ItemActivityFeatures]) -> int:
        """Click statistics of the items clicked in a micro-batch."""
        ...

    def get_item_activity(
        self, item_ids: Sequence[str]
    ) -> dict[str, ItemActivityFeatures | None]: ...


class _Table(Generic[Row]):
    """One feature view's rows in a dict, behind the latest-event-wins guard."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()

    def push(self, rows: Sequence[Row]) -> int:
        with self._lock:
            stored = {
                row.key: (held.event_ts if (held := self._rows.get(row.key)) else None)
                for row in rows
            }
            fresh = rows_to_write(rows, stored)
            for row in fresh:
                self._rows[row.key] = normalise(row)
            return len(fresh)

    def get(self, keys: Sequence[str]) -> dict[str, Row | None]:
        with self._lock:
            return {key: self._rows.get(key) for key in keys}


class InMemoryFeatureStore:
    """Dicts with the same semantics as the Feast store, for unit tests."""

    def __init__(self) -> None:
        self._users: _Table[UserFeatures] = _Table()
        self._items: _Table[ItemFeatures] = _Table()
        self._activity: _Table[ItemActivityFeatures] = _Table()

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        return self._users.push(rows)

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        return self._users.get(user_ids)

    def push_item_features(self, rows: Sequence[ItemFeatures]) -> int:
        return self._items.push(rows)

    def get_item_features(self, item_ids: Sequence[str]) -> dict[str, ItemFeatures | None]:
        return self._items.get(item_ids)

    def push_item_activity(self, rows: Sequence[ItemActivityFeatures]) -> int:
        return self._activity.push(rows)

    def get_item_activity(self, item_ids: Sequence[str]) -> dict[str, ItemActivityFeatures | None]:
        return self._activity.get(item_ids)


def __getattr__(name: str) -> Any:
    # Lazy re-exports; see the module docstring.
    if name == "FeastFeatureStore":
        from services.features.feast_store import FeastFeatureStore

        return FeastFeatureStore
    if name == "build_feast_store":
        from services.features.repo import build_feast_store

        return build_feast_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
