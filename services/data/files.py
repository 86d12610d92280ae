"""Events from files people already have: JSON lines or CSV, for ``produce`` and ``replay``.

JSON lines pass through as they are, byte for byte: sending a malformed record on purpose
(to see its dead letter) is a legitimate use. CSV is a table, so its cells are turned into
the contract's types first and each row is validated; a bad row is reported with its line
number instead of being sent.

CSV columns are the contract's field names (``event_id,user_id,item_id,ts,...`` for clicks,
``item_id,title,description,categories,...`` for items). ``ts`` is ISO-8601 or epoch
milliseconds; ``categories`` is split on ``|``; ``value`` is a number; ``context`` and
``attributes`` hold JSON objects; an empty cell is an absent field.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from services.contract import codec
from services.contract.events import CLICKS, ITEMS, ClickEvent, ItemEvent

MODELS: dict[str, type[BaseModel]] = {CLICKS: ClickEvent, ITEMS: ItemEvent}


class FileFormatError(ValueError):
    """A row of an input file that cannot become an event; says where and why."""


@dataclass(frozen=True)
class FileRecord:
    """One record to send: its bytes and key, and the event when it was parsed."""

    line: int
    value: bytes
    key: bytes | None
    event: BaseModel | None = None


def file_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise FileFormatError(f"{path}: unknown format {suffix!r}; use .csv, .jsonl or .ndjson")


def read_records(path: Path, topic: str) -> Iterator[FileRecord]:
    """The file's records for ``topic`` (clicks or items), in file order."""
    if topic not in MODELS:
        raise FileFormatError(f"no file format for topic {topic!r}")
    if file_format(path) == "jsonl":
        yield from _jsonl(path, topic)
    else:
        yield from _csv(path, topic)


def _jsonl(path: Path, topic: str) -> Iterator[FileRecord]:
    key_field = "user_id" if topic == CLICKS else "item_id"
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            line = raw.strip()
            if not line:
                continue
            key = None
            # The contract's key when the line has one; the raw bytes go out regardless.
            try:
                obj = json.loads(line)
                if isinstance(obj, dict) and isinstance(obj.get(key_field), str):
                    key = obj[key_field].encode()
            except (ValueError, RecursionError, UnicodeEncodeError):
                pass  # no key; the worker dead-letters the line with its reason
            yield FileRecord(number, line, key)


_JSON_CELLS = ("context", "attributes")


def _cell(name: str, text: str) -> Any:
    if name == "categories":
        return [c.strip() for c in text.split("|") if c.strip()]
    if name == "value":
        return float(text)
    if name == "ts" and text.lstrip("-").isdigit():
        return int(text)  # epoch milliseconds, as in JSON
    if name in _JSON_CELLS:
        return json.loads(text)
    return text


def _csv(path: Path, topic: str) -> Iterator[FileRecord]:
    try:
        yield from _csv_rows(path, topic)
    except UnicodeDecodeError as exc:
        reason = f"{exc.reason} at byte {exc.start}"
        raise FileFormatError(f"{path}: not UTF-8 text ({reason})") from None
    except csv.Error as exc:  # e.g. a cell over csv's field size limit
        raise FileFormatError(f"{path}: not readable as CSV: {exc}") from None


def _csv_rows(path: Path, topic: str) -> Iterator[FileRecord]:
    model = MODELS[topic]
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames:
            raise FileFormatError(f"{path}: empty CSV (no header row)")
        unknown = set(reader.fieldnames) - set(model.model_fields)
        if unknown:
            raise FileFormatError(
                f"{path}: column(s) {', '.join(sorted(unknown))} are not fields of "
                f"{model.__name__} ({', '.join(model.model_fields)})"
            )
        for row in reader:
            number = reader.line_num
            try:
                obj = {k: _cell(k, v) for k, v in row.items() if k and v not in (None, "")}
                event = codec.validate_event(model, obj)
            except ValueError as exc:  # EventDecodeError, or a cell that is not a number/JSON
                raise FileFormatError(f"{path}, line {number}: {exc}") from exc
            except RecursionError:
                reason = "a JSON cell nested too deeply"
                raise FileFormatError(f"{path}, line {number}: {reason}") from None
            key_value = getattr(event, "user_id", None) or getattr(event, "item_id", None)
            yield FileRecord(
                number,
                codec.encode(event),
                str(key_value).encode(),
                event,
            )
