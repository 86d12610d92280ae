"""The item catalog the worker knows: entries from the ``items`` topic and their embeddings.

The worker whose ``items`` agent consumed an item encodes it and shares the entry with its
vector (an ``item-embeddings`` record); every worker fills its catalog and embedding index
from those records (``shared.py``), so each holds every item, also after a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from models.item_text import item_text
from services.contract import codec
from services.contract.events import ItemEmbedding, ItemEvent
from services.features.store import OnlineFeatureStore
from services.recommender.encoder import EncoderError, ItemEncoder
from services.recommender.feature_rows import StoreOutage, write_catalog_features

if TYPE_CHECKING:  # shared.py imports Catalog
    from services.recommender.shared import SharedState

log = logging.getLogger(__name__)


class Catalog:
    """Latest catalog entry per item (by arrival). Clicks on items it does not hold are
    ranked on collaborative signals, or dead-lettered (`STREAMREC_UNKNOWN_ITEMS`)."""

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
    """Shares catalog events: each entry at once, with its text embedding as soon as the
    encoder answers. While the encoder is unavailable the entries are shared without one
    (they are already rankable by their collaborative features), wait in ``pending`` and
    are retried on every later call; a success shares them again, with the vector.

    Every call returns only once its records are delivered, so the caller may then
    acknowledge the items that caused them.
    """

    def __init__(
        self,
        shared: SharedState,
        encoder: ItemEncoder | None,
        features: OnlineFeatureStore | None = None,
        outage: StoreOutage | None = None,
    ) -> None:
        self.shared, self.encoder, self.features = shared, encoder, features
        self.outage = outage
        self.pending: dict[str, ItemEvent] = {}
        self.failures = 0
        self.last_error: str | None = None
        self.embedded = 0
        self.encode_seconds = 0.0

    async def apply(self, items: Sequence[ItemEvent]) -> None:
        for item in items:
            self.pending[item.item_id] = item  # a changed text needs a new embedding
        if items and not await self.flush():
            await self._share([(item, None) for item in items])

    async def flush(self) -> int:
        """Embed and share every pending item; returns how many (0 if the encoder failed)."""
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
        self.encode_seconds += time.perf_counter() - started
        await self._share(list(zip(batch, vectors, strict=True)))
        for item in batch:
            # Only drop what was encoded: a newer version that arrived meanwhile stays.
            if self.pending.get(item.item_id) is item:
                del self.pending[item.item_id]
        self.embedded += len(batch)
        return len(batch)

    async def _share(self, entries: list[tuple[ItemEvent, np.ndarray | None]]) -> None:
        deliveries = [
            await self.shared.publish(
                ItemEmbedding(
                    item=item, embedding=None if vector is None else codec.encode_vector(vector)
                )
            )
            for item, vector in entries
        ]
        await asyncio.gather(*deliveries)
        # Feast's item_features rows (title, categories, embedding) of the embedded ones;
        # before the caller acknowledges, so a failed write is retried from Kafka.
        await write_catalog_features(self.features, entries, outage=self.outage)
