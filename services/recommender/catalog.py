"""The item catalog the worker knows: titles for explanations, fed by the ``items`` topic."""

from __future__ import annotations

from services.contract.events import ItemEvent


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
