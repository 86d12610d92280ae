"""The topic contract: every event StreamRec reads or writes, typed once.

Users program against these names, so fields may be added but never renamed.
JSON Schema files under ``schemas/`` are generated from these models
(``python -m services.contract.generate``) and committed; a test keeps them in step.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictFloat,
    StrictInt,
    WithJsonSchema,
)

SCHEMA_VERSION = 1

# Topic names are part of the contract.
CLICKS = "clicks"
ITEMS = "items"
RECOMMENDATIONS = "recommendations"
CLICKS_DLQ = "clicks.dlq"
ITEMS_DLQ = "items.dlq"
# Shared-state feeds, written by the workers and read whole by every worker (one partition
# each, so all readers see one order): see "Shared state across workers" in README.md.
ITEM_ACTIVITY = "item-activity"
ITEM_EMBEDDINGS = "item-embeddings"
FEED_TOPICS = (ITEM_ACTIVITY, ITEM_EMBEDDINGS)
ALL_TOPICS = (CLICKS, ITEMS, RECOMMENDATIONS, CLICKS_DLQ, ITEMS_DLQ, *FEED_TOPICS)
DLQ_FOR = {CLICKS: CLICKS_DLQ, ITEMS: ITEMS_DLQ}

EventType = Literal["click", "view", "add_to_cart", "purchase", "rating"]

# Any epoch-seconds value of this century is below 1e11 when read as milliseconds
# (1973-03-03), so smaller values are almost surely seconds sent by mistake;
# rejecting them beats silently placing an event in 1970. Historical data
# (MovieLens is from 1997) is well above it.
_MIN_EPOCH_MS = 100_000_000_000


def _parse_ts(value: Any) -> datetime:
    """Accept ISO-8601 text or epoch milliseconds; always return an aware UTC datetime."""
    if isinstance(value, bool):  # bool is an int subclass; True is not a timestamp
        raise ValueError("ts must be an ISO-8601 string or epoch milliseconds, not a boolean")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("ts must be a finite number of epoch milliseconds")
        if value < _MIN_EPOCH_MS:
            raise ValueError(
                f"ts={value} is before 1973 in epoch milliseconds (seconds sent by mistake?)"
            )
        try:
            return datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"ts={value} is out of range for epoch milliseconds") from exc
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ValueError(f"ts={value!r} is not an ISO-8601 timestamp") from exc
        # A timestamp without offset is read as UTC: the contract has no local time.
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    raise ValueError("ts must be an ISO-8601 string or epoch milliseconds")


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


Timestamp = Annotated[
    datetime,
    BeforeValidator(_parse_ts),
    PlainSerializer(_iso, return_type=str),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "format": "date-time"},
                {"type": "integer", "minimum": _MIN_EPOCH_MS, "description": "epoch milliseconds"},
            ],
            "description": "ISO-8601 string or epoch milliseconds (UTC).",
        },
        mode="validation",
    ),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]

Id = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^\S(.*\S)?$")]


class _Event(BaseModel):
    # Unknown fields are ignored on input so producers can add fields before we read them.
    model_config = ConfigDict(extra="ignore", frozen=True, strict=False)


class ClickEvent(_Event):
    """A user's interaction with an item; topic ``clicks``, key = user_id."""

    event_id: Id = Field(
        description="Unique id; when absent it is derived from topic, partition and offset."
    )
    user_id: Id
    item_id: Id
    event_type: EventType = "click"
    ts: Timestamp
    value: StrictFloat | StrictInt | None = Field(
        default=None, description="Optional numeric value, e.g. a rating."
    )
    context: dict[str, Any] | None = None


class ItemEvent(_Event):
    """Creates or updates a catalog entry; topic ``items``, key = item_id."""

    item_id: Id
    title: Annotated[str, Field(min_length=1, max_length=1000)]
    description: Annotated[str, Field(max_length=20_000)] | None = None
    categories: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=100
    )
    attributes: dict[str, Any] | None = None
    ts: Timestamp | None = None

    def text(self) -> str:
        """The item's text as the language model sees it: title, categories, description."""
        parts = [self.title]
        if self.categories:
            parts.append("Categories: " + ", ".join(self.categories))
        if self.description:
            parts.append(self.description)
        return ". ".join(parts)


class RecommendedItem(_Event):
    item_id: str
    score: float
    reasons: list[str] = Field(default_factory=list)


class Judged(_Event):
    """How a user's previous recommendation did, judged by their next click: a hit when
    the clicked item was in it (online HR@k). ``lane`` ``serving`` is what the user was
    shown; ``shadow`` is what a challenger in shadow would have shown (never published)."""

    lane: Literal["serving", "shadow"]
    model_version: str = Field(description="The version that made the judged list.")
    segment: int | str | None = Field(
        default=None, description="The user's segment when the judged list was made."
    )
    hit: bool
    rank: int | None = Field(
        default=None, description="1-based position of the clicked item in it; null if absent."
    )


class Recommendation(_Event):
    """The ranked answer to one accepted click; topic ``recommendations``, key = user_id."""

    user_id: str
    event_id: str = Field(description="The event_id of the click that triggered it.")
    items: list[RecommendedItem] = Field(description="Best first.")
    model_version: str
    segment: int | str | None = None
    generated_at: Timestamp
    latency_ms: float = Field(description="From the worker receiving the click to publishing.")
    degraded: bool = Field(
        default=False, description="True when the scorer was unavailable and a fallback ranked."
    )
    judged: list[Judged] = Field(
        default_factory=list,
        description=(
            "The triggering click's verdict on this user's previous recommendation(s), one "
            "per lane; empty for a first click or when the previous answer is not known."
        ),
    )
    schema_version: int = SCHEMA_VERSION


class DeadLetter(_Event):
    """A record that could not be processed; topics ``clicks.dlq`` and ``items.dlq``."""

    source_topic: str
    partition: int
    offset: int
    error: str = Field(description="Why it was rejected, in words a person can act on.")
    payload: str = Field(description="The raw value: UTF-8 text, or base64 when not UTF-8.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_size: int = Field(default=0, description="Size of the raw value in bytes.")
    payload_truncated: bool = False
    key: str | None = None
    failed_at: Timestamp | None = None
    schema_version: int = SCHEMA_VERSION


class ItemActivity(_Event):
    """One accepted click as item statistics and segments learn from it; topic
    ``item-activity``, key = user_id.

    The worker that owns the click's partition publishes it; every worker (that one too)
    applies it when reading it back, so all apply the same records in the same order.
    """

    event_id: Id = Field(description="The click's event_id; readers drop repeats.")
    user_id: Id
    item_id: Id
    previous: list[str] = Field(
        default_factory=list,
        description="The user's recent items before this click, newest first (a few).",
    )
    ts: Timestamp = Field(description="The click's event time.")
    segment_vector: list[float] = Field(
        default_factory=list,
        description="The user's reduced, normalised taste vector the segment centroids "
        "learn from; empty when nothing is known of the user's taste.",
    )
    segment: int | None = Field(
        default=None, description="The segment the user was served in, whose counts it adds to."
    )


class ItemEmbedding(_Event):
    """A catalog entry and its text embedding; topic ``item-embeddings`` (compacted), key =
    item_id. Published by the worker that consumed the item; every worker's catalog and
    embedding index are rebuilt from this topic."""

    item: ItemEvent
    embedding: str | None = Field(
        default=None,
        description="base64 of the little-endian float32 vector; null while the encoder is "
        "unavailable (a later record carries it).",
    )


TOPIC_MODELS: dict[str, type[BaseModel]] = {
    CLICKS: ClickEvent,
    ITEMS: ItemEvent,
    RECOMMENDATIONS: Recommendation,
    CLICKS_DLQ: DeadLetter,
    ITEMS_DLQ: DeadLetter,
    ITEM_ACTIVITY: ItemActivity,
    ITEM_EMBEDDINGS: ItemEmbedding,
}
