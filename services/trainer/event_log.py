"""The trainer's own log of ``clicks`` and ``items``: what the system ingested, kept.

Topics expire; a training set must not. The trainer consumes both topics with its own
consumer group and appends every valid event as a JSON line, committing offsets only
after the lines are on disk (at least once: a crash re-appends a few lines, and
:meth:`EventLog.load` drops repeated event ids, as the worker does). Invalid records are
skipped here: the worker has already dead-lettered them with the reason.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.contract import codec
from services.contract.codec import EventDecodeError
from services.contract.events import CLICKS, ITEMS, ClickEvent, ItemEvent
from services.kafka.settings import KafkaSettings

GROUP = "streamrec-trainer"


@dataclass
class CatchUp:
    clicks: int = 0
    items: int = 0
    skipped: int = 0


class EventLog:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.clicks_path = self.folder / "clicks.jsonl"
        self.items_path = self.folder / "items.jsonl"
        # click_count() is asked every few seconds: count only what was appended since.
        self._counted_bytes = 0
        self._count = 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with (self.folder / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def append(self, clicks: list[ClickEvent], items: list[ItemEvent]) -> None:
        for path, events in ((self.clicks_path, clicks), (self.items_path, items)):
            if not events:
                continue
            with path.open("ab") as fh:
                for event in events:
                    fh.write(codec.encode(event) + b"\n")
                fh.flush()
                os.fsync(fh.fileno())

    def load(self) -> tuple[list[ItemEvent], list[ClickEvent]]:
        """The catalog (latest record per item) and clicks (first per event id, time order)."""
        items: dict[str, ItemEvent] = {}
        for item in _read(self.items_path, ItemEvent):
            items[item.item_id] = item
        seen: set[str] = set()
        clicks: list[ClickEvent] = []
        for click in _read(self.clicks_path, ClickEvent):
            if click.event_id not in seen:
                seen.add(click.event_id)
                clicks.append(click)
        clicks.sort(key=lambda c: c.ts)  # stable: arrival order breaks ties
        return list(items.values()), clicks

    def click_count(self) -> int:
        """Lines in the click log (repeated event ids included), read incrementally."""
        if not self.clicks_path.is_file():
            return 0
        with self.clicks_path.open("rb") as fh:
            fh.seek(self._counted_bytes)
            while chunk := fh.read(1 << 20):
                self._count += chunk.count(b"\n")
                self._counted_bytes += len(chunk)
        return self._count

    def catch_up(
        self,
        kafka: KafkaSettings,
        idle_s: float = 2.0,
        max_s: float = 300.0,
        topics: tuple[str, str] = (CLICKS, ITEMS),
        group: str = GROUP,
    ) -> CatchUp:
        """Append what ``topics`` (clicks, items) hold beyond the group's committed offsets."""
        from services.kafka.io import consumer, records

        done = CatchUp()
        with self._locked():
            c = consumer(kafka, group=group, **{"enable.auto.commit": False})
            try:
                # Assigned, not subscribed: one trainer reads every partition, and a
                # group rebalance would cost seconds before the first record.
                c.assign(_resume_at(c, topics))
                clicks: list[ClickEvent] = []
                items: list[ItemEvent] = []
                started = last = time.monotonic()
                while time.monotonic() - last < idle_s and time.monotonic() - started < max_s:
                    msgs = c.consume(num_messages=5000, timeout=0.5)
                    for msg in records(msgs):
                        last = time.monotonic()
                        try:
                            if msg.topic() == topics[0]:
                                clicks.append(
                                    codec.decode_click(
                                        msg.value(),
                                        topic=topics[0],
                                        partition=msg.partition() or 0,
                                        offset=msg.offset() or 0,
                                    )
                                )
                            else:
                                items.append(codec.decode_item(msg.value()))
                        except EventDecodeError:
                            done.skipped += 1
                    if msgs:
                        self.append(clicks, items)
                        done.clicks += len(clicks)
                        done.items += len(items)
                        clicks, items = [], []
                        c.commit(asynchronous=False)
            finally:
                c.close()
        return done


def _resume_at(c: object, topics: tuple[str, ...]) -> list:
    """Every partition of ``topics`` at the group's committed offset (the start if none)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition

    parts = []
    for topic in topics:
        md = c.list_topics(topic, timeout=10).topics.get(topic)  # type: ignore[attr-defined]
        if md is None or md.error is not None:
            raise KafkaException(f"topic {topic} does not exist")
        parts += [TopicPartition(topic, p) for p in md.partitions]
    committed = c.committed(parts, timeout=10)  # type: ignore[attr-defined]
    return [
        TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
        for tp in committed
    ]


def _read(path: Path, kind: type[ClickEvent] | type[ItemEvent]) -> Iterator:
    if not path.is_file():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield kind.model_validate_json(line)
