"""Data sets as contract events: MovieLens-100K for realism, synthetic data for tests and load."""

from __future__ import annotations

from services.data.movielens import (
    DatasetUnavailableError,
    MovieLensUser,
    ensure_ml100k,
    load_clicks,
    load_items,
    load_users,
)
from services.data.synthetic import (
    ClickModel,
    SyntheticDataset,
    TopicVocabulary,
    generate,
    iter_clicks_forever,
    topic_vocabularies,
)

__all__ = [
    "ClickModel",
    "DatasetUnavailableError",
    "MovieLensUser",
    "SyntheticDataset",
    "TopicVocabulary",
    "ensure_ml100k",
    "generate",
    "iter_clicks_forever",
    "load_clicks",
    "load_items",
    "load_users",
    "topic_vocabularies",
]
