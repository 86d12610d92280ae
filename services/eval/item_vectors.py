"""MiniLM vectors of a replay's catalog, cached on disk by the items' text.

The in-process replay ranks with them, and every replay judges intra-list diversity by
them: the same vectors the worker's item encoder computes (same weights), here in torch.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from services.eval.stream import ReplayStream
from services.recommender.embeddings import EmbeddingIndex

CACHE_DIR = Path(".run/cache")


def item_embeddings(
    stream: ReplayStream, cache_dir: Path = CACHE_DIR, progress: bool = True
) -> EmbeddingIndex:
    """MiniLM vectors of the stream's catalog; computed once per catalog text, then read."""
    from models.item_text import item_text

    texts = [item_text(i) for i in stream.items]
    digest = hashlib.sha256("\x1e".join(texts).encode()).hexdigest()[:16]
    path = cache_dir / f"item-embeddings-{digest}.npy"
    if path.exists():
        vectors = np.load(path)
    else:
        from models.text_encoder import TextEncoder

        vectors = TextEncoder().encode(texts, progress=progress)
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    index = EmbeddingIndex(capacity=max(1024, len(texts)))
    for item, vector in zip(stream.items, vectors, strict=True):
        index.upsert(item.item_id, vector)
    return index
