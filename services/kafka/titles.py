"""Item titles by id, read from the ``items`` topic, so people see names, not ids."""

from __future__ import annotations

from services.contract.codec import EventDecodeError, decode_item
from services.contract.events import ITEMS
from services.kafka.settings import KafkaSettings


class Titles:
    """item_id -> title, from ``items`` records in the order they are read (the last wins).

    A record that breaks the contract is skipped: the worker dead-letters it, and it names
    no item to show.
    """

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}

    def add(self, raw: bytes | None) -> bool:
        """Apply one ``items`` value; True when it named an item."""
        try:
            item = decode_item(raw)
        except EventDecodeError:
            return False
        # One dict assignment: readers on other threads see the old title or the new one.
        self._by_id[item.item_id] = item.title
        return True

    def get(self, item_id: str) -> str | None:
        return self._by_id.get(item_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def as_dict(self) -> dict[str, str]:
        return dict(self._by_id)


def read_titles(kafka: KafkaSettings, idle_timeout: float = 1.5) -> dict[str, str]:
    """Every title in ``items`` now: reads from the beginning until ``idle_timeout`` seconds
    pass without a record (what ``streamrec tail`` names items with)."""
    from services.kafka.io import read_topic

    titles = Titles()
    for rec in read_topic(kafka, ITEMS, idle_timeout=idle_timeout):
        titles.add(rec.value)
    return titles.as_dict()
