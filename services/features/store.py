"""The online feature store seam: a Protocol, an in-memory store, and the Feast one.

``FeastFeatureStore`` and ``build_feast_store`` are loaded on first use: importing Feast
takes seconds (it pulls in torch), and code that only needs the Protocol or the
in-memory store should not pay for it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from services.features.model import UserFeatures, normalise, rows_to_write

if TYPE_CHECKING:
    from services.features.feast_store import FeastFeatureStore as FeastFeatureStore
    from services.features.repo import build_feast_store as build_feast_store

__all__ = [
    "FeastFeatureStore",
    "InMemoryFeatureStore",
    "OnlineFeatureStore",
    "UserFeatures",
    "build_feast_store",
]


class OnlineFeatureStore(Protocol):
    """Where per-user features are written by the stream and read for ranking.

    Latest event wins: a row never replaces a stored row with the same or a later
    ``event_ts``, whatever order the rows arrive in.
    """

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        """Write one micro-batch; returns how many rows were written after the guard."""
        ...

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        """Each requested user's row, or None for a user never written."""
        ...


class InMemoryFeatureStore:
    """A dict with the same semantics as the Feast store, for unit tests."""

    def __init__(self) -> None:
        self._rows: dict[str, UserFeatures] = {}
        self._lock = threading.Lock()

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        with self._lock:
            stored: dict[str, datetime | None] = {
                row.user_id: self._stored_ts(row.user_id) for row in rows
            }
            fresh = rows_to_write(rows, stored)
            for row in fresh:
                self._rows[row.user_id] = normalise(row)
            return len(fresh)

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        with self._lock:
            return {user_id: self._rows.get(user_id) for user_id in user_ids}

    def _stored_ts(self, user_id: str) -> datetime | None:
        row = self._rows.get(user_id)
        return row.event_ts if row else None


def __getattr__(name: str) -> Any:
    # Lazy re-exports; see the module docstring.
    if name == "FeastFeatureStore":
        from services.features.feast_store import FeastFeatureStore

        return FeastFeatureStore
    if name == "build_feast_store":
        from services.features.repo import build_feast_store

        return build_feast_store
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
