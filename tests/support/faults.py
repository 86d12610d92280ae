"""What the fault tests share: a paced replay in the background, every answer read back,
users' state recomputed from the input, and process memory.

The fault tests (tests/reliability) kill real processes of a private stack
(tests/support/private_stack.py) while clicks flow, then check what came out against what
went in: each click's answers on ``recommendations``, each user's state in the ``users``
table's changelog (what a restarted worker recovers) and in the Feast online store.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent, ItemEvent
from services.eval.workers import WorkerProbe, wait_for_catalog
from services.kafka.io import produce_events, read_topic
from services.kafka.lag import consumer_lag
from services.kafka.settings import KafkaSettings
from services.recommender.settings import WorkerSettings
from services.recommender.state import UserState
from services.stack.settings import StackSettings

# Faust names a table's changelog "<app id>-<table>-changelog" (app.py: Table("users")).
USERS_CHANGELOG = "streamrec-users-changelog"
# The worker's consumer group is its app id.
WORKER_GROUP = "streamrec"


def kafka_of(settings: StackSettings) -> KafkaSettings:
    return KafkaSettings(bootstrap=settings.bootstrap)


def worker_urls(settings: StackSettings) -> list[str]:
    return [
        f"http://{settings.host}:{settings.worker_web_port + i}/healthz"
        for i in range(settings.workers)
    ]


def seed_catalog(settings: StackSettings, items: Sequence[ItemEvent], timeout: float = 120) -> None:
    """Send the catalog and wait until every worker has it embedded: clicks sent before
    would be ranked on a half-built catalog (tests/integration/test_stack_e2e.py)."""
    produce_events(kafka_of(settings), ITEMS, items)
    probe = WorkerProbe(worker_urls(settings))
    wait_for_catalog(probe, len(items), len(items), timeout_s=timeout)


def relabel(clicks: Sequence[ClickEvent], prefix: str) -> list[ClickEvent]:
    """The clicks with event ids unique to one test."""
    return [c.model_copy(update={"event_id": f"{prefix}{c.event_id}"}) for c in clicks]


@dataclass
class Replay:
    """Clicks produced at a fixed rate from a background thread; ``sent`` counts them."""

    kafka: KafkaSettings
    clicks: Sequence[ClickEvent]
    rate: float | None
    sent: int = 0
    error: BaseException | None = None
    _thread: threading.Thread | None = field(default=None, repr=False)

    def start(self) -> Replay:
        self._thread = threading.Thread(target=self._run, name="replay", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        def counted() -> Iterator[ClickEvent]:
            for click in self.clicks:
                yield click
                self.sent += 1

        try:
            produce_events(self.kafka, CLICKS, counted(), rate=self.rate)
        except BaseException as exc:  # reported by wait_sent / join
            self.error = exc

    def wait_sent(self, n: int, timeout: float = 120) -> None:
        """Block until ``n`` clicks were handed to the producer."""
        deadline = time.monotonic() + timeout
        while self.sent < n:
            if self.error is not None:
                raise AssertionError(f"the replay failed: {self.error!r}") from self.error
            assert time.monotonic() < deadline, f"only {self.sent} of {n} clicks sent"
            time.sleep(0.05)

    def join(self, timeout: float = 300) -> None:
        """Wait until every click is delivered to the broker."""
        assert self._thread is not None, "the replay was never started"
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the replay was still sending after {timeout:.0f}s"
        if self.error is not None:
            raise AssertionError(f"the replay failed: {self.error!r}") from self.error


@dataclass(frozen=True)
class Answers:
    """Recommendations read back: how many arrived for each event id asked about."""

    counts: Counter[str]
    records: list[dict[str, Any]]

    def lost(self, event_ids: Iterable[str]) -> list[str]:
        return [e for e in event_ids if self.counts[e] == 0]

    @property
    def duplicates(self) -> int:
        """Answers beyond the first, over all event ids."""
        return sum(n - 1 for n in self.counts.values() if n > 1)


def read_answers(
    kafka: KafkaSettings,
    event_ids: Iterable[str],
    timeout: float = 180,
    settle: float = 5.0,
) -> Answers:
    """Read ``recommendations`` from the start until every id in ``event_ids`` has an
    answer and ``settle`` quiet seconds passed (late duplicates show up too), or until
    ``timeout``; other ids' answers are ignored."""
    wanted = set(event_ids)
    counts: Counter[str] = Counter()
    records: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        counts.clear()
        records.clear()
        left = max(1.0, deadline - time.monotonic())
        for rec in read_topic(kafka, RECOMMENDATIONS, idle_timeout=settle, timeout=left):
            value = json.loads(rec.value or b"{}")
            if value.get("event_id") in wanted:
                counts[value["event_id"]] += 1
                records.append(value)
        if wanted <= set(counts) or time.monotonic() >= deadline:
            return Answers(counts, records)
        time.sleep(1.0)


def expected_users(
    clicks: Iterable[ClickEvent], settings: WorkerSettings | None = None
) -> dict[str, UserState]:
    """Each user's state recomputed from the input alone: their clicks applied once each,
    in the order sent (one user's clicks share a key, so a partition keeps their order)."""
    cfg = settings or WorkerSettings()
    users: dict[str, UserState] = {}
    for c in clicks:
        user = users.setdefault(c.user_id, UserState())
        if not user.has_event(c.event_id):
            user.record(c.event_id, c.item_id, c.ts.timestamp(), cfg.recent_items, cfg.seen_limit)
    return users


def changelog_users(
    kafka: KafkaSettings, topic: str = USERS_CHANGELOG, idle: float = 3.0
) -> dict[str, dict[str, Any]]:
    """The newest value of each user in the ``users`` table's changelog: exactly what a
    worker recovers on start (Faust replays the changelog, last write per key wins)."""
    out: dict[str, dict[str, Any]] = {}
    for rec in read_topic(kafka, topic, idle_timeout=idle):
        if rec.key is None:
            continue
        key = rec.key.decode()
        if key.startswith('"'):  # a json key serializer
            key = json.loads(key)
        out[key] = json.loads(rec.value) if rec.value else {}
    return out


# The fields of UserState that follow from the clicks alone (segment and the lists shown
# depend on the model; offsets on where the clicks landed).
STATE_FIELDS = ("clicks", "recent", "seen", "event_ids", "last_ts")


def state_mismatches(
    expected: dict[str, UserState], found: dict[str, dict[str, Any]]
) -> dict[str, dict[str, tuple[Any, Any]]]:
    """Per user, each field in :data:`STATE_FIELDS` whose stored value differs from the
    recomputed one: ``{user: {field: (expected, found)}}``; a missing user shows as None."""
    bad: dict[str, dict[str, tuple[Any, Any]]] = {}
    for user_id, want in expected.items():
        got = found.get(user_id)
        if got is None:
            bad[user_id] = {"state": (want.clicks, None)}
            continue
        diffs = {
            f: (getattr(want, f), got.get(f))
            for f in STATE_FIELDS
            if getattr(want, f) != got.get(f)
        }
        if diffs:
            bad[user_id] = diffs
    return bad


def feast_mismatches(
    run_dir: Path, expected: dict[str, UserState], timeout: float = 30
) -> dict[str, tuple[Any, Any]]:
    """Users whose Feast online row (click count, recent items) differs from the
    recomputed state: ``{user: (expected, found)}``. Waits up to ``timeout`` for the rows
    of the last batches to land."""
    from services.features.settings import FeatureSettings
    from services.features.store import FeastFeatureStore

    want = {u: (s.clicks, tuple(s.recent)) for u, s in expected.items()}
    store = FeastFeatureStore(FeatureSettings(data_dir=run_dir / "feast"))
    try:
        deadline = time.monotonic() + timeout
        while True:
            rows = store.get_user_features(list(want))
            found = {
                u: None if r is None else (r.click_count, tuple(r.recent_items))
                for u, r in rows.items()
            }
            bad = {u: (w, found.get(u)) for u, w in want.items() if found.get(u) != w}
            if not bad or time.monotonic() > deadline:
                return bad
            time.sleep(1.0)
    finally:
        store.close()


def lag_by_partition(kafka: KafkaSettings, topic: str = CLICKS) -> dict[int, int]:
    """The workers' group lag on each partition of ``topic``: the true end offset minus
    the committed one (services/kafka/lag.py)."""
    return {p.partition: p.lag for p in consumer_lag(kafka, WORKER_GROUP, [topic])}


def wait_lag_drained(kafka: KafkaSettings, timeout: float = 120, topic: str = CLICKS) -> float:
    """Wait until the workers' group has committed every click; returns the seconds it
    took. Fails with the per-partition lag if it does not drain in ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        lags = lag_by_partition(kafka, topic)
        if all(lag <= 0 for lag in lags.values()):
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise AssertionError(
                f"consumer lag on {topic} still {lags} (by partition) after {timeout:.0f}s"
            )
        time.sleep(1.0)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process now (VmRSS), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS in /proc/{pid}/status")


def wait_for(what: str, check: Any, timeout: float, poll: float = 0.5) -> Any:
    """Poll ``check()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # a component still coming up
            last = exc
        if last and not isinstance(last, Exception):
            return last
        time.sleep(poll)
    raise AssertionError(f"{what} not within {timeout:.0f}s (last: {last!r})")
