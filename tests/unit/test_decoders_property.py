"""Every decoder of bytes that come from outside, under hypothesis.

Arbitrary bytes, arbitrary JSON, and valid events with a field or a byte broken must
decode to a typed event or raise the one error the decoder's module documents
(:class:`EventDecodeError` for the contract codec, :class:`FileFormatError` for input
files); the topic readers that document none must not raise at all. Any other exception
escapes its caller's handler: in a worker that is a poison pill that stops a partition,
in the CLI a traceback.

Inputs a property would take too long to stumble on (nesting 100,000 deep, a 5,000-digit
number, a lone surrogate, 2 MB) are listed by hand in ``HOSTILE``. Where a decoder is
known to let another exception through, its case is a strict xfail that names the module
to fix: it turns red (XPASS) once the fix lands, and the marker goes then.

How fast each decoder is belongs to ``python -m tests.bench.decode_speed``, not here.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import tempfile
from base64 import b64encode
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import jsonschema
import numpy as np
import pytest
from confluent_kafka import Message
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from services.contract import codec, generate
from services.contract.events import (
    CLICKS,
    CLICKS_DLQ,
    ClickEvent,
    DeadLetter,
    EventType,
    ItemActivity,
    ItemEmbedding,
    ItemEvent,
    Recommendation,
)
from services.dashboard.follower import click_event_id
from services.data.files import FileFormatError, read_records
from services.eval.collector import _json_object
from services.kafka import dlq
from services.recommender.state import UserState

NOW = datetime(2026, 1, 1, tzinfo=UTC)
# Shared, noisy machines: no per-example deadline, and slow generation is not a failure.
PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# For a known escape (a strict xfail): one failure, never a group of them, so the
# xfail's ``raises`` sees the exception itself.
KNOWN_BUG = settings(PROPERTY, report_multiple_bugs=False)


def decode_click(raw: bytes | None) -> ClickEvent:
    return codec.decode_click(raw, topic=CLICKS, partition=3, offset=42, now=NOW)


CONTRACT: dict[str, tuple[Callable[[bytes | None], BaseModel], type[BaseModel]]] = {
    "clicks": (decode_click, ClickEvent),
    "items": (codec.decode_item, ItemEvent),
    "item-activity": (codec.decode_item_activity, ItemActivity),
    "item-embeddings": (codec.decode_item_embedding, ItemEmbedding),
}
TOPICS = sorted(CONTRACT)
SCHEMAS = {t: json.loads((generate.SCHEMA_DIR / f"{t}.schema.json").read_text()) for t in TOPICS}


def decoded_or_refused(topic: str, raw: bytes | None) -> BaseModel | None:
    """The event, or None when the decoder refused it with a reason; any other exception
    propagates and fails the test."""
    decoder, model = CONTRACT[topic]
    try:
        event = decoder(raw)
    except codec.EventDecodeError as exc:
        assert exc.reason, "a refusal must say why"
        return None
    assert type(event) is model
    return event


# -- strategies ------------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)


def json_values(floats: st.SearchStrategy[float]) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | floats
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=20,
    )


# NaN and ±Infinity too: Python's json writes and reads them, so a producer may send them.
ANY_JSON = json_values(st.floats())
CLEAN_JSON = json_values(FINITE)
CLEAN_OBJECTS = st.dictionaries(st.text(max_size=8), CLEAN_JSON, max_size=4)

# The contract's Id: 1-256 characters, no whitespace or control character at either end.
IDS = st.text(
    st.characters(exclude_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=30
)
EPOCH_MS = st.integers(min_value=100_000_000_000, max_value=int(NOW.timestamp() * 1000))
ISO = st.datetimes(
    min_value=datetime(1974, 1, 1),
    max_value=datetime(2025, 12, 31),
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
    ),
).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000).isoformat())
TIMESTAMPS = EPOCH_MS | ISO
VECTORS = st.lists(st.floats(width=32), min_size=1, max_size=16).map(
    lambda v: np.array(v, dtype=np.float32)
)

ITEM_OBJECTS = st.fixed_dictionaries(
    {"item_id": IDS, "title": st.text(min_size=1, max_size=40)},
    optional={
        "description": st.text(max_size=80) | st.none(),
        "categories": st.lists(st.text(max_size=20), max_size=5) | st.none(),
        "attributes": CLEAN_OBJECTS | st.none(),
        "ts": TIMESTAMPS | st.none(),
    },
)
VALID: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "clicks": st.fixed_dictionaries(
        {"user_id": IDS, "item_id": IDS, "ts": TIMESTAMPS},
        optional={
            "event_id": IDS,
            "event_type": st.sampled_from(get_args(EventType)),
            "value": st.integers(min_value=-(2**53), max_value=2**53) | FINITE,
            "context": CLEAN_OBJECTS | st.none(),
        },
    ),
    "items": ITEM_OBJECTS,
    "item-activity": st.fixed_dictionaries(
        {"event_id": IDS, "user_id": IDS, "item_id": IDS, "ts": TIMESTAMPS},
        optional={
            "previous": st.lists(IDS, max_size=5),
            "segment_vector": st.lists(FINITE, max_size=8),
            "segment": st.integers(min_value=-1000, max_value=1000) | st.none(),
        },
    ),
    "item-embeddings": st.fixed_dictionaries(
        {"item": ITEM_OBJECTS},
        optional={"embedding": VECTORS.map(codec.encode_vector) | st.none()},
    ),
}

# Values at the contract's edges: empty, just too long, before 1973, the far future...
BOUNDARY = st.sampled_from(
    [
        "",
        " ",
        " padded ",
        "x" * 257,
        "x" * 20_001,
        "\u0000",
        -1,
        0,
        99_999_999_999,
        2**63,
        -(2**63) - 1,
        1e308,
        float("nan"),
        float("inf"),
        True,
        None,
        [],
        {},
        ["x"] * 101,
        "2999-01-01T00:00:00Z",
        "2025-13-01T00:00:00Z",
        "AAAA",
        "AAA=",
        "not base64!",
    ]
)


@st.composite
def mutated(
    draw: st.DrawFn, topic: str, values: st.SearchStrategy[Any] = ANY_JSON
) -> dict[str, Any]:
    """A valid ``topic`` object with one to three things broken: a field dropped, retyped,
    set to another field's or an edge value, or an unknown field added; for an embedding
    record, sometimes inside its item."""
    obj = dict(draw(VALID[topic]))
    target, model = obj, CONTRACT[topic][1]
    if topic == "item-embeddings" and draw(st.booleans()):
        target = obj["item"] = dict(obj["item"])
        model = ItemEvent
    names = sorted(set(target) | set(model.model_fields))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        name = draw(st.sampled_from(names))
        how = draw(st.sampled_from(["drop", "retype", "edge", "swap", "extra"]))
        if how == "drop":
            target.pop(name, None)
        elif how == "retype":
            target[name] = draw(values)
        elif how == "edge":
            target[name] = draw(BOUNDARY)
        elif how == "swap" and target:
            target[name] = target[draw(st.sampled_from(sorted(target)))]
        else:
            target[draw(st.text(max_size=10))] = draw(values)
    return obj


@st.composite
def corrupted(draw: st.DrawFn, topic: str) -> bytes:
    """The bytes of a valid ``topic`` event with one to four bytes inserted, deleted,
    replaced, or the tail cut off."""
    raw = bytearray(json.dumps(draw(VALID[topic])).encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pos = draw(st.integers(min_value=0, max_value=max(len(raw) - 1, 0)))
        how = draw(st.sampled_from(["insert", "delete", "replace", "truncate"]))
        if how == "insert":
            raw.insert(pos, draw(st.integers(min_value=0, max_value=255)))
        elif how == "delete" and raw:
            del raw[pos]
        elif how == "replace" and raw:
            raw[pos] = draw(st.integers(min_value=0, max_value=255))
        elif how == "truncate":
            del raw[pos:]
    return bytes(raw)


# -- the contract codec: clicks, items, item-activity, item-embeddings -----------------


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(raw=st.none() | st.binary(max_size=2048))
def test_any_bytes_decode_or_are_refused_with_a_reason(topic: str, raw: bytes | None) -> None:
    decoded_or_refused(topic, raw)


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(value=ANY_JSON)
def test_any_json_value_decodes_or_is_refused(topic: str, value: Any) -> None:
    decoded_or_refused(topic, json.dumps(value).encode())


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(data=st.data())
def test_any_values_under_the_contract_field_names_decode_or_are_refused(
    topic: str, data: st.DataObject
) -> None:
    fields = CONTRACT[topic][1].model_fields
    obj = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(fields, ANY_JSON)))
    event = decoded_or_refused(topic, json.dumps(obj).encode())
    if isinstance(event, ClickEvent):
        assert event.ts <= NOW + codec.DEFAULT_MAX_FUTURE_SKEW  # never a click from the future


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(data=st.data())
def test_valid_events_decode_and_read_back_after_encoding(topic: str, data: st.DataObject) -> None:
    obj = data.draw(VALID[topic])
    if topic in ("clicks", "items"):
        jsonschema.validate(obj, SCHEMAS[topic])  # producers' schema agrees it is valid
    event = decoded_or_refused(topic, json.dumps(obj).encode())
    assert event is not None, f"a valid {topic} event was refused"
    encoded = codec.encode(event)
    assert decoded_or_refused(topic, encoded) == event
    jsonschema.validate(json.loads(encoded), SCHEMAS[topic])


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(data=st.data())
def test_mutated_events_decode_or_are_refused(topic: str, data: st.DataObject) -> None:
    decoded_or_refused(topic, json.dumps(data.draw(mutated(topic))).encode())


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(data=st.data())
def test_what_is_accepted_can_be_written_and_read_again(topic: str, data: st.DataObject) -> None:
    """Workers republish what they accept (items to item-embeddings, clicks to the
    trainer's log): an accepted event that cannot be encoded would fail there instead."""
    event = decoded_or_refused(topic, json.dumps(data.draw(mutated(topic, CLEAN_JSON))).encode())
    if event is not None:
        assert decoded_or_refused(topic, codec.encode(event)) is not None


@pytest.mark.parametrize("topic", TOPICS)
@PROPERTY
@given(data=st.data())
def test_corrupted_bytes_of_valid_events_decode_or_are_refused(
    topic: str, data: st.DataObject
) -> None:
    decoded_or_refused(topic, data.draw(corrupted(topic)))


# Hand-picked inputs a property would not reach in its budget.
OVERSIZED = json.dumps(
    {"user_id": "u", "item_id": "i", "ts": 1_750_000_000_000, "context": {"b": "x" * 2_000_000}}
).encode()
HOSTILE: dict[str, bytes | None] = {
    "tombstone": None,
    "empty": b"",
    "nul": b"\x00",
    "utf8-bom": b'\xef\xbb\xbf{"user_id": "u"}',
    "utf16": '{"user_id": "u"}'.encode("utf-16"),
    "nan-literal": b'{"ts": NaN, "value": Infinity}',
    "lone-surrogate-key": b'{"user_id": "\\ud800", "item_id": "i", "title": "t"}',
    "deep-array": b"[" * 100_000,
    "deep-object": b'{"a":' * 100_000,
    "huge-int": b'{"ts": ' + b"9" * 5000 + b"}",
    "oversized-2mb": OVERSIZED,
}
# (decoder, input) -> (the exception that escapes today, what to fix); a strict xfail each.
# Empty since the huge-integer and deep-nesting escapes were fixed (codec, dlq, collector,
# dashboard follower).
KNOWN_ESCAPES: dict[tuple[str, str], tuple[type[BaseException], str]] = {}


def hostile_cases(decoders: list[str]) -> list[Any]:
    cases = []
    for decoder in decoders:
        for name, raw in HOSTILE.items():
            marks = []
            if (decoder, name) in KNOWN_ESCAPES:
                raises, fix = KNOWN_ESCAPES[(decoder, name)]
                marks.append(pytest.mark.xfail(strict=True, raises=raises, reason=fix))
            cases.append(pytest.param(decoder, raw, id=f"{decoder}-{name}", marks=marks))
    return cases


@pytest.mark.parametrize(("topic", "raw"), hostile_cases(TOPICS))
def test_hostile_values_decode_or_are_refused(topic: str, raw: bytes | None) -> None:
    decoded_or_refused(topic, raw)


@pytest.mark.parametrize("topic", TOPICS)
def test_a_2mb_value_is_refused_for_its_size(topic: str) -> None:
    with pytest.raises(codec.EventDecodeError, match=r"over the \d+-byte limit"):
        CONTRACT[topic][0](OVERSIZED)


@pytest.mark.parametrize(
    ("topic", "raw"),
    [
        ("items", b'{"item_id": "i", "title": "t", "attributes": {"a": "\\ud800"}}'),
        (
            "clicks",
            b'{"user_id": "u", "item_id": "i", "ts": 1750000000000, "context": {"a": "\\udc00"}}',
        ),
    ],
)
def test_a_lone_surrogate_is_refused_or_can_be_written_again(topic: str, raw: bytes) -> None:
    event = decoded_or_refused(topic, raw)
    if event is not None:
        codec.encode(event)


def test_a_non_finite_segment_vector_is_refused() -> None:
    activity = {"event_id": "e", "user_id": "u", "item_id": "i", "ts": 1_750_000_000_000}
    raw = json.dumps({**activity, "segment_vector": [0.5, float("nan")]}).encode()
    with pytest.raises(codec.EventDecodeError):
        codec.decode_item_activity(raw)


# -- embedding vectors -------------------------------------------------------------------


@PROPERTY
@given(text=st.text(max_size=64) | st.binary(max_size=48).map(lambda b: b64encode(b).decode()))
@example(text="")
@example(text="AAA")
@example(text="AAAA====")
@example(text="é")
def test_any_text_is_a_vector_or_is_refused(text: str) -> None:
    try:
        vector = codec.decode_vector(text)
    except codec.EventDecodeError as exc:
        assert exc.reason
        return
    assert vector.dtype == np.float32 and vector.ndim == 1 and vector.size >= 1


@PROPERTY
@given(vector=VECTORS)
def test_vectors_read_back_bit_for_bit(vector: np.ndarray) -> None:
    assert codec.decode_vector(codec.encode_vector(vector)).tobytes() == vector.tobytes()


# -- dead letters: built from anything, read back from the DLQ topic --------------------


@PROPERTY
@given(
    payload=st.none() | st.binary(max_size=4096),
    key=st.none() | st.binary(max_size=64),
    error=st.text(max_size=200),
    partition=st.integers(min_value=0, max_value=2**31 - 1),
    offset=st.integers(min_value=0, max_value=2**63 - 1),
)
def test_any_message_becomes_a_dead_letter_that_reads_back(
    payload: bytes | None, key: bytes | None, error: str, partition: int, offset: int
) -> None:
    record = codec.dead_letter(
        source_topic=CLICKS,
        partition=partition,
        offset=offset,
        error=error,
        payload=payload,
        key=key,
    )
    entry = dlq._decode(CLICKS_DLQ, 0, 7, codec.encode(record))
    assert entry.unreadable is None and entry.record is not None
    assert record.failed_at is not None and entry.record.failed_at is not None
    # failed_at travels at millisecond precision.
    assert abs(entry.record.failed_at - record.failed_at) < timedelta(milliseconds=1)
    assert entry.record.model_copy(update={"failed_at": record.failed_at}) == record
    assert codec.dead_letter_payload(entry.record) == (payload or b"")
    assert dlq.why_not_replayable(entry) is None


def test_a_huge_payload_is_kept_truncated_and_never_replayed() -> None:
    payload = b"a" + "é".encode() * 1_000_000  # 2 MB; the cut falls inside a character
    record = codec.dead_letter(
        source_topic=CLICKS, partition=0, offset=0, error="big", payload=payload
    )
    entry = dlq._decode(CLICKS_DLQ, 0, 1, codec.encode(record))
    assert entry.record is not None and entry.record.payload_truncated
    assert entry.record.payload_encoding == "base64"
    assert codec.dead_letter_payload(entry.record) == payload[: codec.DLQ_PAYLOAD_LIMIT]
    assert "cannot be rebuilt" in (dlq.why_not_replayable(entry) or "")


DEAD_LETTER_OBJECTS = st.fixed_dictionaries(
    {}, optional=dict.fromkeys(DeadLetter.model_fields, ANY_JSON | BOUNDARY)
).map(lambda obj: json.dumps(obj).encode())


@PROPERTY
@given(
    raw=st.none()
    | st.binary(max_size=2048)
    | ANY_JSON.map(lambda v: json.dumps(v).encode())
    | DEAD_LETTER_OBJECTS
)
def test_any_dlq_message_is_a_record_or_says_it_is_unreadable(raw: bytes | None) -> None:
    entry = dlq._decode(CLICKS_DLQ, 0, 1, raw)
    assert (entry.record is None) == (entry.unreadable is not None)
    dlq.why_not_replayable(entry)
    dlq.matches(entry, "x")


@pytest.mark.parametrize(("reader", "raw"), hostile_cases(["dlq-record"]))
def test_hostile_dlq_messages_are_records_or_unreadable(reader: str, raw: bytes | None) -> None:
    entry = dlq._decode(CLICKS_DLQ, 0, 1, raw)
    assert (entry.record is None) == (entry.unreadable is not None)


@KNOWN_BUG
@given(payload=st.text(max_size=64))
@example(payload="a")
def test_any_dead_letter_payload_decodes_or_is_refused(payload: str) -> None:
    record = DeadLetter(
        source_topic=CLICKS,
        partition=0,
        offset=0,
        error="x",
        payload=payload,
        payload_encoding="base64",
    )
    with contextlib.suppress(codec.EventDecodeError):
        codec.dead_letter_payload(record)


# -- input files (`streamrec produce` / `replay`) ---------------------------------------


def read_file(name: str, data: bytes) -> list[Any]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / name
        path.write_bytes(data)
        return list(read_records(path, CLICKS))


@PROPERTY
@given(
    lines=st.lists(
        st.binary(max_size=200).filter(lambda b: b"\n" not in b)
        | VALID["clicks"].map(lambda obj: json.dumps(obj).encode()),
        max_size=12,
    )
)
def test_a_jsonl_file_passes_every_line_through_as_it_is(lines: list[bytes]) -> None:
    data = b"\n".join(lines)
    records = read_file("clicks.jsonl", data)
    assert [r.value for r in records] == [line.strip() for line in lines if line.strip()]
    for record in records:
        if record.key is not None:
            assert record.key == json.loads(record.value)["user_id"].encode()


CSV_COLUMNS = ["event_id", "user_id", "item_id", "ts", "value", "event_type", "context"]
CSV_CELLS = (
    st.text(max_size=30)
    | EPOCH_MS.map(str)
    | ISO
    | CLEAN_JSON.map(json.dumps)
    | st.sampled_from(["", "nan", "1e999", "-", "²", "click", "{", "[]", '""'])
)


@PROPERTY
@given(
    columns=st.lists(st.sampled_from(CSV_COLUMNS), min_size=1, max_size=7, unique=True),
    rows=st.lists(st.lists(CSV_CELLS, max_size=8), max_size=6),
)
def test_csv_rows_become_events_or_a_file_format_error(
    columns: list[str], rows: list[list[str]]
) -> None:
    text = io.StringIO()
    csv.writer(text).writerows([columns, *rows])
    try:
        records = read_file("clicks.csv", text.getvalue().encode())
    except FileFormatError as exc:
        assert "line" in str(exc) or "column" in str(exc) or "CSV" in str(exc)
        return
    for record in records:
        assert isinstance(record.event, ClickEvent)
        assert record.key == record.event.user_id.encode()
        decode_click(record.value)  # what it sends decodes on the worker


@PROPERTY
@given(text=st.text(max_size=300))
def test_any_text_as_a_csv_file_is_events_or_a_file_format_error(text: str) -> None:
    with contextlib.suppress(FileFormatError):
        read_file("clicks.csv", ("event_id,user_id,item_id,ts,context\n" + text).encode())


DEEP_CELL = '"' + "[" * 100_000 + '"'
# (file, its bytes, the exception that used to escape, where it was fixed)
FILE_ESCAPES: dict[str, tuple[str, bytes, type[BaseException], str]] = {
    "csv-not-utf8": (
        "clicks.csv",
        b"user_id,item_id\n\xff\xfe,i\n",
        UnicodeDecodeError,
        "services/data/files.py _csv: a file that is not UTF-8 raises UnicodeDecodeError",
    ),
    "csv-huge-cell": (
        "clicks.csv",
        b'event_id,user_id,item_id,ts,context\ne,u,i,1750000000000,"' + b"x" * 200_000 + b'"\n',
        csv.Error,
        "services/data/files.py _csv: a cell over csv's 128 KiB field limit raises csv.Error",
    ),
    "csv-deep-json-cell": (
        "clicks.csv",
        f"event_id,user_id,item_id,ts,context\ne,u,i,1750000000000,{DEEP_CELL}\n".encode(),
        RecursionError,
        "services/data/files.py _cell: json.loads of a deeply nested cell raises RecursionError",
    ),
    "jsonl-deep-line": (
        "clicks.jsonl",
        b"[" * 100_000 + b"\n",
        RecursionError,
        "services/data/files.py _jsonl: json.loads of a deeply nested line raises "
        "RecursionError (it catches ValueError only)",
    ),
}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        pytest.param(
            name,
            data,
            id=case,
        )
        for case, (name, data, escapes, fix) in FILE_ESCAPES.items()
    ],
)
def test_hostile_files_are_events_or_a_file_format_error(name: str, data: bytes) -> None:
    with contextlib.suppress(FileFormatError):
        read_file(name, data)


# -- what the topic readers parse: eval, dashboard, trainer -----------------------------

ANY_TOPIC_VALUE = (
    st.none()
    | st.binary(max_size=1024)
    | ANY_JSON.map(lambda v: json.dumps(v).encode())
    | st.fixed_dictionaries({}, optional=dict.fromkeys(Recommendation.model_fields, ANY_JSON)).map(
        lambda v: json.dumps(v).encode()
    )
)


def read_as(reader: str, raw: bytes | None) -> None:
    """Each reader's own contract: a value or None, never an exception (``recommendation``
    documents pydantic's ValidationError, which its callers count as unreadable)."""
    if reader == "eval-json-object":
        assert _json_object(raw) is None or isinstance(_json_object(raw), dict)
    elif reader == "dashboard-click-id":
        message = Message(topic=CLICKS, partition=2, offset=9, value=raw)
        event_id = click_event_id(message)
        assert event_id is None or isinstance(event_id, str)
    else:
        with contextlib.suppress(ValidationError):
            Recommendation.model_validate_json(raw or b"")


READERS = ["eval-json-object", "dashboard-click-id", "recommendation"]


@pytest.mark.parametrize("reader", READERS)
@PROPERTY
@given(raw=ANY_TOPIC_VALUE)
def test_topic_readers_take_any_value(reader: str, raw: bytes | None) -> None:
    read_as(reader, raw)


@pytest.mark.parametrize(("reader", "raw"), hostile_cases(READERS))
def test_topic_readers_take_hostile_values(reader: str, raw: bytes | None) -> None:
    read_as(reader, raw)


# -- user state, as the changelog brings it back -----------------------------------------


@PROPERTY
@given(
    clicks=st.lists(st.tuples(IDS, IDS, st.floats(min_value=0, max_value=4e9)), max_size=30),
    shown=st.dictionaries(
        st.sampled_from(["serving", "shadow"]),
        st.tuples(IDS, IDS, st.integers(0, 9) | st.none(), st.lists(IDS, max_size=5)),
        max_size=2,
    ),
)
def test_user_state_reads_back_from_its_json(
    clicks: list[tuple[str, str, float]], shown: dict[str, tuple[str, str, int | None, list[str]]]
) -> None:
    state = UserState()
    for event_id, item_id, ts in clicks:
        state.record(event_id, item_id, ts, 50, 2000)
    for lane, (trigger, version, segment, items) in shown.items():
        state.show(lane, trigger, version, segment, items)
    saved = json.loads(json.dumps(state.to_json()))  # as the changelog carries it
    assert UserState.from_json(saved) == state


@PROPERTY
@given(data=st.fixed_dictionaries({}, optional=dict.fromkeys(UserState().to_json(), ANY_JSON)))
@example(data={"shown": [1]})
def test_any_saved_user_state_loads_or_raises_a_value_error(data: dict[str, Any]) -> None:
    with contextlib.suppress(ValueError):
        UserState.from_json(data)
