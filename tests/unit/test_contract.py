"""The topic contract: decoding, validation errors, DLQ records and the committed schemas.

What every decoder does with arbitrary or broken input is in test_decoders_property.py.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest

from services.contract import codec, generate
from services.contract.events import (
    CLICKS,
    TOPIC_MODELS,
    ClickEvent,
    ItemEvent,
    Recommendation,
    RecommendedItem,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def click_bytes(**fields: object) -> bytes:
    base: dict[str, object] = {
        "event_id": "e1",
        "user_id": "u1",
        "item_id": "i1",
        "ts": "2025-06-01T12:00:00Z",
    }
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not ...}).encode()


def decode(raw: bytes | None, **kw: object) -> ClickEvent:
    return codec.decode_click(raw, topic=CLICKS, partition=3, offset=42, now=NOW, **kw)  # type: ignore[arg-type]


def test_valid_click_decodes_with_defaults() -> None:
    ev = decode(click_bytes())
    assert (ev.event_id, ev.user_id, ev.item_id, ev.event_type) == ("e1", "u1", "i1", "click")
    assert ev.ts == datetime(2025, 6, 1, 12, tzinfo=UTC)
    assert ev.value is None and ev.context is None


def test_epoch_millis_and_iso_give_the_same_instant() -> None:
    ms = int(datetime(2025, 6, 1, 12, tzinfo=UTC).timestamp() * 1000)
    assert decode(click_bytes(ts=ms)).ts == decode(click_bytes()).ts


def test_historical_epoch_millis_are_accepted() -> None:
    # MovieLens-100K is from 1997: replaying it with epoch ms must work.
    assert decode(click_bytes(ts=874_965_758_000)).ts.year == 1997


def test_missing_event_id_is_derived_from_position() -> None:
    ev = decode(click_bytes(event_id=...))
    assert ev.event_id == "clicks-3-42"
    assert decode(click_bytes(event_id=None)).event_id == "clicks-3-42"


def test_unknown_fields_are_ignored_and_optional_fields_kept() -> None:
    ev = decode(
        click_bytes(extra_field=1, value=4.5, context={"device": "tv"}, event_type="rating")
    )
    assert ev.value == 4.5 and ev.context == {"device": "tv"} and ev.event_type == "rating"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "tombstone"),
        (b"not json", "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid UTF-8"),
        (b"[1, 2]", "must be a JSON object"),
        (click_bytes(user_id=5), "user_id"),
        (click_bytes(item_id=...), "item_id: Field required"),
        (click_bytes(user_id=""), "user_id"),
        (click_bytes(event_type="like"), "event_type"),
        (click_bytes(ts="yesterday"), "not an ISO-8601 timestamp"),
        (click_bytes(ts=1_700_000_000), "seconds sent by mistake"),
        (click_bytes(ts=True), "not a boolean"),
        (click_bytes(ts="2999-01-01T00:00:00Z"), "in the future"),
        (click_bytes(value="high"), "value"),
        (b"[" * 50_000, "JSON"),
    ],
)
def test_bad_clicks_raise_a_decode_error_that_says_why(raw: bytes | None, reason: str) -> None:
    with pytest.raises(codec.EventDecodeError) as info:
        decode(raw)
    assert reason in info.value.reason


def test_oversized_values_are_rejected_before_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The size check comes before json.loads: a 2 MB value costs a length check, not a
    parse (how long that takes is measured by tests/bench/decode_speed.py)."""
    parsed: list[int] = []
    real_loads = json.loads

    def counting_loads(text: str | bytes, **kwargs: Any) -> Any:
        parsed.append(len(text))
        return real_loads(text, **kwargs)

    monkeypatch.setattr(codec.json, "loads", counting_loads)
    raw = click_bytes(context={"blob": "x" * 2_000_000})
    with pytest.raises(codec.EventDecodeError) as info:
        decode(raw)
    assert info.value.reason == f"value is {len(raw)} bytes, over the 65536-byte limit"
    assert parsed == []
    # The same value under a limit that admits it is parsed: the count above could move.
    assert decode(raw, max_bytes=len(raw)).context == {"blob": "x" * 2_000_000}
    assert parsed == [len(raw)]


def test_item_decodes_and_builds_its_text() -> None:
    item = codec.decode_item(
        json.dumps(
            {"item_id": "m1", "title": "Heat", "categories": ["Crime"], "description": "A heist."}
        ).encode()
    )
    assert item.text() == "Heat. Categories: Crime. A heist."
    with pytest.raises(codec.EventDecodeError, match="title"):
        codec.decode_item(b'{"item_id": "m1"}')


def test_recommendation_serialises_to_the_contract_fields() -> None:
    rec = Recommendation(
        user_id="u1",
        event_id="e1",
        items=[RecommendedItem(item_id="i2", score=0.5, reasons=["trending now"])],
        model_version="scorer:1",
        segment=3,
        generated_at=NOW,
        latency_ms=1.5,
    )
    out = json.loads(codec.encode(rec))
    assert set(out) >= {
        "user_id",
        "event_id",
        "items",
        "model_version",
        "segment",
        "generated_at",
        "latency_ms",
        "degraded",
    }
    assert out["generated_at"] == "2026-01-01T00:00:00.000Z"
    assert out["items"] == [{"item_id": "i2", "score": 0.5, "reasons": ["trending now"]}]
    assert out["degraded"] is False


def test_dead_letter_keeps_text_payloads_readable() -> None:
    rec = codec.dead_letter(
        source_topic="clicks", partition=1, offset=7, error="bad", payload=b"oops", key=b"u1"
    )
    assert (rec.payload, rec.payload_encoding, rec.payload_size, rec.key) == (
        "oops",
        "utf-8",
        4,
        "u1",
    )
    assert codec.dead_letter_payload(rec) == b"oops"


def test_dead_letter_base64_encodes_binary_and_truncates_huge_payloads() -> None:
    binary = codec.dead_letter(
        source_topic="clicks", partition=0, offset=0, error="bad", payload=b"\xff\x00"
    )
    assert binary.payload_encoding == "base64" and base64.b64decode(binary.payload) == b"\xff\x00"
    assert codec.dead_letter_payload(binary) == b"\xff\x00"
    huge = codec.dead_letter(
        source_topic="clicks", partition=0, offset=0, error="big", payload=b"x" * 2_000_000
    )
    assert huge.payload_truncated and huge.payload_size == 2_000_000
    assert len(codec.encode(huge)) < 100_000  # still producible to the DLQ topic


def test_committed_schemas_are_up_to_date() -> None:
    assert generate.main(["--check"]) == 0, "run: python -m services.contract.generate"


def test_schemas_accept_what_the_decoder_accepts_and_reject_what_it_rejects() -> None:
    schemas = {
        t: json.loads((generate.SCHEMA_DIR / f"{t}.schema.json").read_text()) for t in TOPIC_MODELS
    }
    good = {"user_id": "u", "item_id": "i", "ts": 1_750_000_000_000}
    jsonschema.validate(good, schemas["clicks"])  # event_id may be omitted
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "event_type": "like"}, schemas["clicks"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"item_id": "i"}, schemas["items"])
    rec = Recommendation(
        user_id="u", event_id="e", items=[], model_version="v", generated_at=NOW, latency_ms=0.0
    )
    jsonschema.validate(json.loads(codec.encode(rec)), schemas["recommendations"])
    dl = codec.dead_letter(source_topic="clicks", partition=0, offset=1, error="x", payload=b"y")
    jsonschema.validate(json.loads(codec.encode(dl)), schemas["clicks.dlq"])


def test_item_event_model_is_the_items_topic_model() -> None:
    assert TOPIC_MODELS["items"] is ItemEvent
