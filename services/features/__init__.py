"""Features the stream writes through to Feast (users, items, item activity), read for ranking.

``FeastFeatureStore`` and ``build_feast_store`` import Feast (seconds, it pulls in torch)
on first use; everything else here is light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.features.errors import FeatureStoreError
from services.features.model import (
    MAX_RECENT_ITEMS,
    NO_SEGMENT,
    ItemActivityFeatures,
    ItemFeatures,
    UserFeatures,
)
from services.features.settings import FeatureSettings
from services.features.store import InMemoryFeatureStore, OnlineFeatureStore

if TYPE_CHECKING:
    from services.features.feast_store import FeastFeatureStore as FeastFeatureStore
    from services.features.repo import build_feast_store as build_feast_store

__all__ = [
    "MAX_RECENT_ITEMS",
    "NO_SEGMENT",
    "FeastFeatureStore",
    "FeatureSettings",
    "FeatureStoreError",
    "InMemoryFeatureStore",
    "ItemActivityFeatures",
    "ItemFeatures",
    "OnlineFeatureStore",
    "UserFeatures",
    "build_feast_store",
]


def __getattr__(name: str) -> Any:
    from services.features import store

    if name in ("FeastFeatureStore", "build_feast_store"):
        return getattr(store, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
