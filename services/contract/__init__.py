"""StreamRec's topic contract: typed events, codecs and the generated JSON Schemas."""

from __future__ import annotations

from services.contract.codec import (
    EventDecodeError,
    dead_letter,
    dead_letter_payload,
    decode_click,
    decode_item,
    derived_event_id,
    encode,
)
from services.contract.events import (
    ALL_TOPICS,
    CLICKS,
    CLICKS_DLQ,
    DLQ_FOR,
    ITEMS,
    ITEMS_DLQ,
    RECOMMENDATIONS,
    ClickEvent,
    DeadLetter,
    ItemEvent,
    Recommendation,
    RecommendedItem,
)

__all__ = [
    "ALL_TOPICS",
    "CLICKS",
    "CLICKS_DLQ",
    "DLQ_FOR",
    "ITEMS",
    "ITEMS_DLQ",
    "RECOMMENDATIONS",
    "ClickEvent",
    "DeadLetter",
    "EventDecodeError",
    "ItemEvent",
    "Recommendation",
    "RecommendedItem",
    "dead_letter",
    "dead_letter_payload",
    "decode_click",
    "decode_item",
    "derived_event_id",
    "encode",
]
