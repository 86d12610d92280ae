"""Build a ready Feast ``FeatureStore`` from settings: configuration in code, then apply.

The definitions come from ``feature_repo/definitions.py``, the same file the Feast CLI
applies, so there is one source of truth for what the feature view looks like.
"""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path
from typing import Any

from feast import FeatureStore, RepoConfig
from feast.infra.offline_stores.dask import DaskOfflineStoreConfig
from feast.infra.online_stores.redis import RedisOnlineStoreConfig
from feast.infra.online_stores.sqlite import SqliteOnlineStoreConfig
from feast.repo_config import RegistryConfig

from services.features.errors import FeatureStoreError
from services.features.locks import FileLock
from services.features.settings import REPO_ROOT, FeatureSettings

FEATURE_REPO = REPO_ROOT / "feature_repo"
DEFINITIONS = FEATURE_REPO / "definitions.py"

# Names defined in feature_repo/definitions.py that the service code depends on.
USER_VIEW, USER_PUSH = "user_activity", "user_activity_push"
ITEM_VIEW, ITEM_PUSH = "item_features", "item_features_push"
ACTIVITY_VIEW, ACTIVITY_PUSH = "item_activity", "item_activity_push"

# Several workers may start at once; a cold apply takes about a second.
_APPLY_LOCK_TIMEOUT_S = 120.0


def build_repo_config(settings: FeatureSettings) -> RepoConfig:
    """The Feast configuration ``feature_store.yaml`` would hold, from ``settings``."""
    online: SqliteOnlineStoreConfig | RedisOnlineStoreConfig
    if settings.online_store == "redis":
        online = RedisOnlineStoreConfig(connection_string=settings.redis.feast_connection_string())
    else:
        online = SqliteOnlineStoreConfig(path=str(settings.sqlite_path))
    return RepoConfig(
        project=settings.project,
        provider="local",
        registry=RegistryConfig(
            path=str(settings.registry_path),
            # Read the registry once, at start-up under the apply lock, and never again.
            # Feast rewrites the file in place (truncate, then write), so a process that
            # re-read it while another one applies could see half a registry. The cost:
            # a definition change needs a restart, which a deploy does anyway.
            cache_ttl_seconds=0,
            cache_mode="thread",
        ),
        online_store=online,
        offline_store=DaskOfflineStoreConfig(type="file"),
        entity_key_serialization_version=3,
        # Resolves the FileSources' relative paths: each stack keeps its offline log in
        # its own data_dir, as it does its registry and SQLite file.
        repo_path=settings.data_dir,
    )


def load_definitions(path: Path = DEFINITIONS) -> list[Any]:
    """Fresh Feast objects from the definitions file (apply mutates them, so never reuse)."""
    spec = importlib.util.spec_from_file_location("streamrec_feature_definitions", path)
    if spec is None or spec.loader is None:
        raise FeatureStoreError(f"cannot load Feast definitions from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return list(module.OBJECTS)


def build_feast_store(settings: FeatureSettings) -> FeatureStore:
    """A Feast store for ``settings`` with the definitions applied.

    Safe to call from several processes at start-up: the registry is created, read and
    written only under an exclusive lock on ``data_dir``. Feast's file registry has no
    locking of its own ("TODO: Add locking" in ``FeatureStore.apply``), and two
    unserialised applies could interleave a truncate-and-write with another's read.
    Applying an unchanged definition is idempotent, so every caller just applies.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = FeatureStore(repo_path=str(FEATURE_REPO), config=build_repo_config(settings))
    with FileLock(settings.data_dir / "apply.lock", _APPLY_LOCK_TIMEOUT_S).hold():
        try:
            # First access to .registry reads the file, or writes an empty one.
            store.apply(load_definitions())
        except (sqlite3.Error, OSError) as exc:
            raise FeatureStoreError(
                f"could not apply Feast definitions in {settings.data_dir}: {exc}. "
                "Check that STREAMREC_FEAST_DATA_DIR points at a writable folder."
            ) from exc
    return store
