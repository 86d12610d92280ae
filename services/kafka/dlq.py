"""Reading the dead-letter topics and sending their records back where they came from.

``replay`` is for after a fix: a click rejected by a bug, or by a catalog that did not
know its item yet, goes back to ``clicks`` with its original bytes and key. Replays are
safe to repeat: the workers drop a click whose event_id they already answered, and an
item update is an upsert. The consumer group ``streamrec-dlq-replay`` remembers how far
earlier replays went, so a second replay sends only dead letters that arrived since;
``from_beginning`` goes back over all of them.

A replay reads each partition up to the end it had when the replay began, so a record
that fails again and lands in the DLQ anew waits for the next replay instead of looping.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, OFFSET_INVALID, TopicPartition

from services.contract import codec
from services.contract.events import CLICKS_DLQ, DLQ_FOR, ITEMS_DLQ, DeadLetter
from services.kafka.io import EventProducer, consumer, records
from services.kafka.settings import KafkaSettings

DLQ_TOPICS = (CLICKS_DLQ, ITEMS_DLQ)
REPLAY_GROUP = "streamrec-dlq-replay"
# Topics a dead letter may go back to: the ones that have a DLQ. Anything else in
# ``source_topic`` is a forged or foreign record and is never produced.
REPLAYABLE_SOURCES = frozenset(DLQ_FOR)


@dataclass(frozen=True)
class DeadLetterRecord:
    """One DLQ message: where it sits, and its decoded record (or why it is unreadable)."""

    topic: str
    partition: int
    offset: int
    record: DeadLetter | None
    unreadable: str | None = None


def read_dead_letters(
    settings: KafkaSettings,
    topics: Iterable[str] = DLQ_TOPICS,
    *,
    group: str | None = None,
    from_beginning: bool = True,
    poll_s: float = 0.5,
) -> tuple[list[DeadLetterRecord], list[TopicPartition]]:
    """Every DLQ record up to each partition's current end, and the positions after them.

    With ``group`` and not ``from_beginning``, starts where that group committed.
    Returns the records and the offsets to commit once they have been dealt with.
    """
    c = consumer(settings, group=group, **{"enable.auto.commit": False})
    try:
        assigned: list[TopicPartition] = []
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            md = c.list_topics(topic, timeout=10).topics.get(topic)
            if md is None or md.error is not None:
                continue  # no DLQ topic yet: nothing was ever rejected there
            for p in sorted(md.partitions):
                _, high = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                ends[(topic, p)] = high
                assigned.append(TopicPartition(topic, p, OFFSET_BEGINNING))
        if group is not None and not from_beginning and assigned:
            for tp in c.committed(assigned, timeout=10):
                if tp.offset != OFFSET_INVALID and tp.offset >= 0:
                    for a in assigned:
                        if (a.topic, a.partition) == (tp.topic, tp.partition):
                            a.offset = tp.offset
        position = {(tp.topic, tp.partition): tp.offset for tp in assigned}
        pending = {
            key for key, end in ends.items() if end > (position[key] if position[key] >= 0 else 0)
        }
        # Partitions already at their end need no reading; positions stay where they are.
        out: list[DeadLetterRecord] = []
        if pending:
            c.assign([tp for tp in assigned if (tp.topic, tp.partition) in pending])
        while pending:
            for msg in records(c.consume(500, timeout=poll_s)):
                key = (msg.topic() or "", msg.partition() or 0)
                offset = msg.offset() or 0
                if key not in pending or offset >= ends[key]:
                    continue
                out.append(_decode(key[0], key[1], offset, msg.value()))
                position[key] = offset + 1
                if offset + 1 >= ends[key]:
                    pending.discard(key)
        commit = [TopicPartition(t, p, max(o, 0)) for (t, p), o in position.items()]
        return out, commit
    finally:
        c.close()


def _decode(topic: str, partition: int, offset: int, value: bytes | None) -> DeadLetterRecord:
    try:
        record = DeadLetter.model_validate(json.loads(value or b""))
    except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        return DeadLetterRecord(topic, partition, offset, None, f"not a DLQ record: {exc}")
    except RecursionError:
        reason = "not a DLQ record: nested too deeply"
        return DeadLetterRecord(topic, partition, offset, None, reason)
    return DeadLetterRecord(topic, partition, offset, record)


@dataclass
class ReplayReport:
    replayed: dict[str, int] = field(default_factory=dict)  # source topic -> count
    skipped: list[tuple[DeadLetterRecord, str]] = field(default_factory=list)
    unmatched: int = 0

    @property
    def total_replayed(self) -> int:
        return sum(self.replayed.values())


def why_not_replayable(entry: DeadLetterRecord) -> str | None:
    """Why this DLQ record cannot go back, or None when it can."""
    rec = entry.record
    if rec is None:
        return entry.unreadable or "unreadable"
    if rec.source_topic not in REPLAYABLE_SOURCES:
        return f"source topic {rec.source_topic!r} is not one StreamRec consumes"
    if DLQ_FOR[rec.source_topic] != entry.topic:
        return f"a {rec.source_topic} record found in {entry.topic}"
    if rec.payload_truncated:
        return (
            f"only the first bytes of the {rec.payload_size}-byte payload were kept; "
            "the original cannot be rebuilt"
        )
    try:
        codec.dead_letter_payload(rec)
    except codec.EventDecodeError as exc:
        return exc.reason
    return None


def replay(
    settings: KafkaSettings,
    entries: Iterable[DeadLetterRecord],
    *,
    match: Callable[[DeadLetterRecord], bool] = lambda _: True,
    dry_run: bool = False,
    producer: EventProducer | None = None,
) -> ReplayReport:
    """Send each replayable, matching record's original bytes and key to its source topic."""
    report = ReplayReport()
    out = None if dry_run else (producer or EventProducer(settings))
    for entry in entries:
        if not match(entry):
            report.unmatched += 1
            continue
        why = why_not_replayable(entry)
        if why is not None:
            report.skipped.append((entry, why))
            continue
        rec = entry.record
        assert rec is not None  # why_not_replayable said so
        if out is not None:
            key = rec.key.encode() if rec.key is not None else None
            out.send(rec.source_topic, codec.dead_letter_payload(rec), key)
        report.replayed[rec.source_topic] = report.replayed.get(rec.source_topic, 0) + 1
    if out is not None:
        out.flush()
    return report


def commit_position(settings: KafkaSettings, group: str, offsets: list[TopicPartition]) -> None:
    """Remember how far a replay went (after its records were delivered)."""
    if not offsets:
        return
    c = consumer(settings, group=group, **{"enable.auto.commit": False})
    try:
        c.commit(offsets=offsets, asynchronous=False)
    finally:
        c.close()


def matches(entry: DeadLetterRecord, text: str | None) -> bool:
    """Whether ``text`` (case-insensitive) is in the record's error or raw payload."""
    if text is None:
        return True
    if entry.record is None:
        return False
    needle = text.lower()
    return needle in entry.record.error.lower() or needle in entry.record.payload.lower()
