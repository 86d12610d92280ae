"""Bytes on a topic <-> typed events, with errors a person can act on.

Every decoder raises only :class:`EventDecodeError`; callers turn that into a
dead-letter record, so one bad message never stops a partition.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
from pydantic import BaseModel, ValidationError

from services.contract.events import ClickEvent, DeadLetter, ItemActivity, ItemEmbedding, ItemEvent

DEFAULT_MAX_VALUE_BYTES = 64 * 1024
# Clients' clocks drift; an event stamped a little ahead is fine, a year ahead is a bug.
DEFAULT_MAX_FUTURE_SKEW = timedelta(hours=1)
# DLQ records must stay producible: keep at most this much of the raw payload.
DLQ_PAYLOAD_LIMIT = 64 * 1024
# A shared-feed record carries a whole catalog entry (up to the items limit) plus its
# embedding, so it may exceed the input limit; the workers wrote it, it is not hostile.
FEED_MAX_VALUE_BYTES = 1024 * 1024

E = TypeVar("E", bound=BaseModel)


class EventDecodeError(ValueError):
    """A message that does not satisfy the contract; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def derived_event_id(topic: str, partition: int, offset: int) -> str:
    """Deterministic id for a click that came without one: replays map to the same id."""
    return f"{topic}-{partition}-{offset}"


def _format_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "value"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _load_object(raw: bytes | None, max_bytes: int) -> dict[str, Any]:
    if raw is None:
        raise EventDecodeError("empty message value (tombstone); expected a JSON object")
    if len(raw) > max_bytes:
        raise EventDecodeError(f"value is {len(raw)} bytes, over the {max_bytes}-byte limit")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EventDecodeError(
            f"value is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None
    try:
        obj = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as exc:
        raise EventDecodeError(
            f"value is not valid JSON: {exc.msg} at position {exc.pos}"
        ) from None
    except RecursionError:
        raise EventDecodeError("value is not valid JSON: nested too deeply") from None
    except ValueError as exc:  # NaN/Infinity, or an integer past Python's digit limit
        raise EventDecodeError(f"value is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise EventDecodeError(f"value must be a JSON object, got {type(obj).__name__}")
    if "\\u" in text and _has_lone_surrogate(obj):
        # json.loads takes an escaped half of a UTF-16 pair; such a string cannot be
        # written out again (feeds, the trainer's log), so it stops here.
        raise EventDecodeError("value is not valid JSON: a lone UTF-16 surrogate escape")
    return obj


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    return False


def validate_event(model: type[E], obj: dict[str, Any]) -> E:
    """``model`` from a parsed object, or an :class:`EventDecodeError` that names each bad
    field in one line (what the DLQ records and the CLI print)."""
    return _validate(model, obj)


def _validate(model: type[E], obj: dict[str, Any]) -> E:
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        raise EventDecodeError(
            f"does not match the {model.__name__} contract: {_format_validation_error(exc)}"
        ) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise EventDecodeError(f"does not match the {model.__name__} contract: {exc}") from None


def decode_click(
    raw: bytes | None,
    *,
    topic: str,
    partition: int,
    offset: int,
    max_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    max_future_skew: timedelta = DEFAULT_MAX_FUTURE_SKEW,
    now: datetime | None = None,
) -> ClickEvent:
    """Decode and validate one ``clicks`` value."""
    obj = _load_object(raw, max_bytes)
    if obj.get("event_id") is None:
        obj["event_id"] = derived_event_id(topic, partition, offset)
    event = _validate(ClickEvent, obj)
    limit = (now or datetime.now(UTC)) + max_future_skew
    if event.ts > limit:
        raise EventDecodeError(
            f"ts {event.ts.isoformat()} is in the future (more than {max_future_skew} ahead of "
            "the worker's clock); check the producer's clock or timestamp unit"
        )
    return event


def decode_item(raw: bytes | None, *, max_bytes: int = DEFAULT_MAX_VALUE_BYTES) -> ItemEvent:
    """Decode and validate one ``items`` value."""
    return _validate(ItemEvent, _load_object(raw, max_bytes))


def decode_item_activity(
    raw: bytes | None, *, max_bytes: int = FEED_MAX_VALUE_BYTES
) -> ItemActivity:
    """Decode and validate one ``item-activity`` value."""
    return _validate(ItemActivity, _load_object(raw, max_bytes))


def decode_item_embedding(
    raw: bytes | None, *, max_bytes: int = FEED_MAX_VALUE_BYTES
) -> ItemEmbedding:
    """Decode and validate one ``item-embeddings`` value (its vector stays base64 text)."""
    record = _validate(ItemEmbedding, _load_object(raw, max_bytes))
    if record.embedding is not None:
        decode_vector(record.embedding)  # refuse a broken vector here, not when applying it
    return record


def encode_vector(vector: np.ndarray) -> str:
    """An embedding as base64 of little-endian float32: exact, and a third of JSON's size."""
    return base64.b64encode(np.asarray(vector, "<f4").tobytes()).decode("ascii")


def decode_vector(text: str) -> np.ndarray:
    """The float32 vector of :func:`encode_vector` text."""
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:  # binascii.Error is a ValueError
        raise EventDecodeError(f"embedding is not valid base64: {exc}") from None
    if not raw or len(raw) % 4:
        raise EventDecodeError(f"embedding is {len(raw)} bytes, not a whole number of float32s")
    return np.frombuffer(raw, "<f4").astype(np.float32)


def encode(event: BaseModel) -> bytes:
    """Serialise any contract model to compact JSON bytes."""
    return event.model_dump_json(exclude_none=False).encode("utf-8")


def dead_letter(
    *,
    source_topic: str,
    partition: int,
    offset: int,
    error: str,
    payload: bytes | None,
    key: bytes | None = None,
) -> DeadLetter:
    """Build the DLQ record for a message, keeping the raw payload readable where possible."""
    raw = payload or b""
    truncated = len(raw) > DLQ_PAYLOAD_LIMIT
    kept = raw[:DLQ_PAYLOAD_LIMIT]
    try:
        text, encoding = kept.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        # Truncation can split a multi-byte character; base64 keeps the bytes exact.
        text, encoding = base64.b64encode(kept).decode("ascii"), "base64"
    key_text = None
    if key is not None:
        key_text = key.decode("utf-8", errors="backslashreplace")[:1024]
    return DeadLetter(
        source_topic=source_topic,
        partition=partition,
        offset=offset,
        error=error,
        payload=text,
        payload_encoding=encoding,  # type: ignore[arg-type]  # one of the two literals above
        payload_size=len(raw),
        payload_truncated=truncated,
        key=key_text,
        failed_at=datetime.now(UTC),
    )


def dead_letter_payload(record: DeadLetter) -> bytes:
    """The original bytes of a dead-lettered message (for ``dlq replay``)."""
    if record.payload_encoding == "base64":
        try:
            return base64.b64decode(record.payload, validate=True)
        except ValueError as exc:  # binascii.Error
            raise EventDecodeError(f"DLQ payload is not valid base64: {exc}") from None
    try:
        return record.payload.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise EventDecodeError(f"DLQ payload is not valid UTF-8 text: {exc.reason}") from None
