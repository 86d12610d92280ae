"""What the worker's Kafka consumer holds, per partition: for a stalled partition's
diagnosis.

A partition whose lag does not drain while the worker idles has been seen after a
restart (docs/RELIABILITY.md, test 1). Faust's view (what it read, committed, paused) and
aiokafka's (the fetch position, the highwater it last saw, the group generation) say
whether the consumer stopped fetching, fetched nothing, or fetched and dropped. Read from
the event loop's thread while aiokafka runs in its own: a snapshot for people, not for
decisions.
"""

from __future__ import annotations

from typing import Any


def _tp_name(tp: Any) -> str:
    return f"{tp.topic}:{tp.partition}"


def consumer_report(app: Any, topics: frozenset[str] | None = None) -> dict[str, Any]:
    """Per assigned partition (of ``topics``, or all): Faust's read and committed offsets,
    whether it is active, paused or buffered, and aiokafka's fetch position and highwater;
    plus the group's generation and member id."""
    consumer = getattr(app, "consumer", None)
    if consumer is None:
        return {"assigned": {}}
    thread = getattr(consumer, "_thread", None)
    aio = getattr(thread, "_consumer", None)
    subscription = getattr(getattr(aio, "_subscription", None), "subscription", None)
    state = getattr(subscription, "assignment", None)  # aiokafka's per-partition fetch state
    coordinator = getattr(aio, "_coordinator", None)
    active = (
        consumer._get_active_partitions() if hasattr(consumer, "_get_active_partitions") else set()
    )
    paused: set[Any] = getattr(consumer, "_paused_partitions", set())
    buffered: set[Any] = getattr(consumer, "_buffered_partitions", set())
    out: dict[str, Any] = {}
    for tp in sorted(consumer.assignment(), key=lambda t: (t.topic, t.partition)):
        if topics is not None and tp.topic not in topics:
            continue
        row: dict[str, Any] = {
            "read": consumer._read_offset.get(tp),
            "committed": consumer._committed_offset.get(tp),
            "acked_pending": len(consumer._acked.get(tp, ())),
            "gaps": len(consumer._gap.get(tp, ())),
            "active": tp in active,
            "paused": tp in paused,
            "buffered": tp in buffered,
        }
        if aio is not None:
            try:
                row["highwater"] = aio.highwater(tp)
            except Exception:  # not assigned on aiokafka's side (a rebalance under way)
                row["highwater"] = None
        if state is not None:
            try:
                tps = state.state_value(tp)
                row["position"] = tps.position if tps.has_valid_position else None
                row["fetch_paused"] = tps.paused
            except Exception:
                row["position"] = None
        out[_tp_name(tp)] = row
    return {
        "generation": getattr(coordinator, "generation", None),
        "member_id": getattr(coordinator, "member_id", None),
        "assigned": out,
    }
