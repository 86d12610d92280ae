"""The item catalog the worker knows: entries from the ``items`` topic and their embeddings."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from models.item_text import item_text
from services.contract.events import ItemEvent
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.encoder import EncoderError, ItemEncoder

log = logging.getLogger(__name__)


class Catalog:
    """Latest catalog entry per item (by arrival); unknown items are still rankable."""

    def __init__(self) -> None:
        self.items: dict[str, ItemEvent] = {}

    def upsert(self, item: ItemEvent) -> None:
        self.items[item.item_id] = item

    def title(self, item_id: str) -> str:
        item = self.items.get(item_id)
        return item.title if item else item_id

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.items


class CatalogUpdater:
    """Applies catalog events: the entry at once, its text embedding as soon as the encoder
    answers. While the encoder is unavailable items wait in ``pending`` (they are already
    rankable by their collaborative features) and are retried on every later call.
    """

    def __init__(
        self, catalog: Catalog, embeddings: EmbeddingIndex, encoder: ItemEncoder | None
    ) -> None:
        self.catalog, self.embeddings, self.encoder = catalog, embeddings, encoder
        self.pending: dict[str, ItemEvent] = {}
        self.failures = 0
        self.last_error: str | None = None
        self.embedded = 0
        self.encode_seconds = 0.0

    async def apply(self, items: Sequence[ItemEvent]) -> None:
        for item in items:
            self.catalog.upsert(item)
            self.pending[item.item_id] = item  # a changed text needs a new embedding
        await self.flush()

    async def flush(self) -> int:
        """Embed every pending item; returns how many were embedded (0 if the encoder failed)."""
        if self.encoder is None or not self.pending:
            return 0
        batch = list(self.pending.values())
        started = time.perf_counter()
        try:
            vectors = await self.encoder.encode([item_text(i) for i in batch])
        except EncoderError as exc:
            self.failures += 1
            self.last_error = str(exc)
            log.warning("item encoder failed (%s); %d item(s) pending", exc, len(self.pending))
            return 0
        for item, vector in zip(batch, vectors, strict=True):
            self.embeddings.upsert(item.item_id, vector)
            # Only drop what was encoded: a newer version that arrived meanwhile stays.
            if self.pending.get(item.item_id) is item:
                del self.pending[item.item_id]
        self.embedded += len(batch)
        self.encode_seconds += time.perf_counter() - started
        return len(batch)
