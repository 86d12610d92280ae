"""Live aggregates of the recommendation stream: rates, latency, latest answers, segments.

Fed by the follower thread, read by the HTTP handlers; each method holds one lock.

Which clocks the latencies compare:

* ``worker``: the record's ``latency_ms``, measured by the worker on its own monotonic
  clock from receiving the click's batch to publishing the answer. One clock, so exact,
  but it leaves out the click's way to the worker (producer, broker, fetch).
* ``end_to_end``: the recommendation's Kafka timestamp minus its click's Kafka timestamp,
  joined by event_id. With CreateTime (the default) these are the wall clocks of the
  click's producer and of the worker's producer when each called ``produce()``: the same
  clock on one machine, off by their skew across machines (which can make a value
  negative; it is shown as it is, not clamped). With LogAppendTime both are the broker's.
  It leaves out the answer's own way to its reader.
* The click's ``ts`` is event time (a replay may be years old) and is never used here.

Rates and chart buckets go by when this process read the records (its own wall clock).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from services.contract.events import Recommendation
from services.dashboard.series import PerSecond, percentile

NO_SEGMENT = "none"


@dataclass
class _Answer:
    rec: Recommendation
    read_at: float
    end_to_end_ms: float | None


def _remember(pending: OrderedDict[str, int], key: str, value: int, limit: int) -> None:
    pending[key] = value
    pending.move_to_end(key)
    if len(pending) > limit:
        pending.popitem(last=False)  # the oldest: its partner is not coming, or came unseen


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _latency_summary(values: list[float]) -> dict[str, Any]:
    return {
        "n": len(values),
        "p50": _rounded(percentile(values, 0.5)),
        "p95": _rounded(percentile(values, 0.95)),
        "p99": _rounded(percentile(values, 0.99)),
    }


class LiveStats:
    """What the dashboard shows about the stream, aggregated as records are read."""

    def __init__(
        self,
        window_s: int = 120,
        latest: int = 20,
        max_users: int = 100_000,
        rate_s: int = 10,
        max_pending: int = 50_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # The rate is averaged over complete seconds inside the window.
        self.window_s, self.rate_s = window_s, max(1, min(rate_s, window_s - 1))
        self.max_users, self.max_pending = max_users, max_pending
        self._clock = clock
        self._lock = threading.Lock()
        self._recommendations = PerSecond(window_s)
        self._clicks = PerSecond(window_s)
        self._end_to_end = PerSecond(window_s)
        self._worker = PerSecond(window_s)
        self._latest: deque[_Answer] = deque(maxlen=latest)
        # Each side of the click -> answer join waits here for the other (bounded: a click
        # the worker dead-lettered or dropped as a replay never gets an answer).
        self._click_ts: OrderedDict[str, int] = OrderedDict()
        self._answer_ts: OrderedDict[str, int] = OrderedDict()
        self._segment_of: OrderedDict[str, str] = OrderedDict()
        self._segment_sizes: Counter[str] = Counter()
        self._versions: Counter[str] = Counter()
        self._totals: Counter[str] = Counter()

    # -- input (the follower thread) -----------------------------------------------------

    def add_recommendation(self, rec: Recommendation, timestamp_ms: int | None) -> None:
        """One ``recommendations`` record and its Kafka timestamp (None if it has none)."""
        now = self._clock()
        with self._lock:
            self._totals["recommendations"] += 1
            self._totals["degraded"] += int(rec.degraded)
            self._versions[rec.model_version] += 1
            self._recommendations.add(now)
            self._worker.add(now, rec.latency_ms)
            end_to_end = None
            if timestamp_ms is not None:
                clicked = self._click_ts.pop(rec.event_id, None)
                if clicked is None:
                    _remember(self._answer_ts, rec.event_id, timestamp_ms, self.max_pending)
                else:
                    end_to_end = float(timestamp_ms - clicked)
                    self._end_to_end.add(now, end_to_end)
            self._latest.appendleft(_Answer(rec, now, end_to_end))
            self._place(rec.user_id, rec.segment)

    def add_click(self, event_id: str | None, timestamp_ms: int | None) -> None:
        """One ``clicks`` record: its id (None when unreadable) and Kafka timestamp."""
        now = self._clock()
        with self._lock:
            self._totals["clicks"] += 1
            self._clicks.add(now)
            if event_id is None or timestamp_ms is None:
                return
            answered = self._answer_ts.pop(event_id, None)
            if answered is None:
                _remember(self._click_ts, event_id, timestamp_ms, self.max_pending)
                return
            # The answer was read first (two topics, no order between them).
            end_to_end = float(answered - timestamp_ms)
            self._end_to_end.add(now, end_to_end)
            for answer in self._latest:
                if answer.rec.event_id == event_id and answer.end_to_end_ms is None:
                    answer.end_to_end_ms = end_to_end

    def add_unreadable(self) -> None:
        with self._lock:
            self._totals["unreadable"] += 1

    def _place(self, user_id: str, segment: int | str | None) -> None:
        """The user's latest segment; users beyond ``max_users`` are forgotten, oldest first."""
        key = NO_SEGMENT if segment is None else str(segment)
        old = self._segment_of.pop(user_id, None)
        if old is not None:
            self._leave(old)
        self._segment_of[user_id] = key
        self._segment_sizes[key] += 1
        if len(self._segment_of) > self.max_users:
            _, evicted = self._segment_of.popitem(last=False)
            self._leave(evicted)

    def _leave(self, key: str) -> None:
        self._segment_sizes[key] -= 1
        if self._segment_sizes[key] <= 0:
            del self._segment_sizes[key]

    # -- output (the HTTP handlers) ------------------------------------------------------

    def snapshot(self, title: Callable[[str], str | None]) -> dict[str, Any]:
        """Everything the page draws, as JSON-ready values; ``title`` names item ids."""
        now = self._clock()
        with self._lock:
            recs = self._recommendations.window(now)
            clicks = self._clicks.window(now)
            e2e = self._end_to_end.window(now)
            worker = self._worker.window(now)
            # Rates over the last complete seconds: the current one is still filling.
            recent = slice(-1 - self.rate_s, -1)
            all_e2e = [v for _, b in e2e for v in b.values]
            all_worker = [v for _, b in worker for v in b.values]
            return {
                "window_s": self.window_s,
                "rate_s": self.rate_s,
                "seconds": [s for s, _ in recs],
                "throughput": {
                    "recommendations": [b.count for _, b in recs],
                    "clicks": [b.count for _, b in clicks],
                    "recommendations_per_s": round(
                        sum(b.count for _, b in recs[recent]) / self.rate_s, 2
                    ),
                    "clicks_per_s": round(sum(b.count for _, b in clicks[recent]) / self.rate_s, 2),
                    "peak_recommendations_per_s": max(b.count for _, b in recs),
                    "recommendations_in_window": sum(b.count for _, b in recs),
                },
                "latency_ms": {
                    "end_to_end_p50": [_rounded(percentile(b.values, 0.5)) for _, b in e2e],
                    "end_to_end_p95": [_rounded(percentile(b.values, 0.95)) for _, b in e2e],
                    "worker_p50": [_rounded(percentile(b.values, 0.5)) for _, b in worker],
                    "end_to_end": _latency_summary(all_e2e),
                    "worker": _latency_summary(all_worker),
                },
                "latest": [self._describe(a, title) for a in self._latest],
                "segments": {
                    "users": len(self._segment_of),
                    "sizes": [
                        {"segment": key, "users": n}
                        for key, n in sorted(
                            self._segment_sizes.items(), key=lambda kv: (-kv[1], kv[0])
                        )
                    ],
                },
                "model_versions": dict(self._versions.most_common()),
                "totals": {
                    "recommendations": self._totals["recommendations"],
                    "clicks": self._totals["clicks"],
                    "degraded": self._totals["degraded"],
                    "unreadable": self._totals["unreadable"],
                },
            }

    @staticmethod
    def _describe(answer: _Answer, title: Callable[[str], str | None]) -> dict[str, Any]:
        rec = answer.rec
        return {
            "user_id": rec.user_id,
            "event_id": rec.event_id,
            "model_version": rec.model_version,
            "segment": rec.segment,
            "generated_at": rec.generated_at.astimezone(UTC).isoformat(timespec="milliseconds"),
            "read_at": answer.read_at,
            "latency_ms": round(rec.latency_ms, 1),
            "end_to_end_ms": _rounded(answer.end_to_end_ms),
            "degraded": rec.degraded,
            "items": [
                {
                    "item_id": item.item_id,
                    "title": title(item.item_id),
                    "score": round(item.score, 3),
                    "reasons": list(item.reasons),
                }
                for item in rec.items
            ],
        }
