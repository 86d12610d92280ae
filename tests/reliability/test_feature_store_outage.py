"""The online store (Redis) stopped mid-stream (issue 7, test 11).

The worker must wait the outage out: no click lost, no offset committed past a batch
whose feature rows are not written (the batch is acknowledged only after the write), and
once Redis is back every user's row converges on what the input implies.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.contract.events import CLICKS, ITEMS, RECOMMENDATIONS, ClickEvent
from services.data import synthetic
from services.features.settings import FeatureSettings
from services.kafka.io import EventProducer, produce_events
from services.kafka.lag import consumer_lag
from services.kafka.settings import KafkaSettings
from tests.reliability.test_poison import wait_catalog
from tests.support.infra import free_ports
from tests.support.private_stack import private_stack, worker_health
from tests.support.reliability import record, scale
from tests.support.streams import collect

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

GROUP = "streamrec"  # the workers' consumer group (WorkerSettings.app_id)


class RedisServer:
    """A redis-server of this test's own that it can stop and start again on one port,
    keeping its data across the stop (saved on shutdown, loaded on start)."""

    def __init__(self, data_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed; needed to stop the online store")
        self.binary, self.dir = binary, data_dir
        self.port = free_ports(1)[0]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        data_dir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--dbfilename",
                "dump.rdb",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        """SHUTDOWN SAVE: a clean stop that keeps the data, as an operator's restart does."""
        import redis

        assert self.proc is not None
        # The server closes the connection as it goes.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url).shutdown(save=True)
        self.proc.wait(timeout=30)
        self.proc = None

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Clicker(threading.Thread):
    """Sends ``clicks`` at ``rate`` per second from a thread."""

    def __init__(self, kafka: KafkaSettings, clicks: list[ClickEvent], rate: float) -> None:
        super().__init__(daemon=True)
        self.kafka, self.clicks, self.rate = kafka, clicks, rate
        self.sent = 0

    def run(self) -> None:
        producer = EventProducer(self.kafka)
        started = time.monotonic()
        for n, click in enumerate(self.clicks):
            producer.send_event(CLICKS, click)
            self.sent = n + 1
            ahead = (n + 1) / self.rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
        producer.flush()


def committed(kafka: KafkaSettings) -> dict[int, int | None]:
    return {p.partition: p.committed for p in consumer_lag(kafka, GROUP, [CLICKS])}


def test_redis_stopped_mid_stream_loses_nothing_and_commits_nothing_unwritten(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    outage_s = scale(10, 30)
    rate = scale(60, 300)
    seconds = scale(40, 120)
    ds = synthetic.generate(n_users=50, n_items=150, n_clicks=int(rate * seconds), seed=31)
    env = {
        "STREAMREC_FEAST_ONLINE_STORE": "redis",
        "STREAMREC_FEAST_REDIS_URL": redis_server.url,
    }
    with private_stack(tmp_path / "stack", env=env) as settings:
        kafka = KafkaSettings(bootstrap=settings.bootstrap)
        produce_events(kafka, ITEMS, ds.items)
        wait_catalog(settings, len(ds.items))
        clicker = Clicker(kafka, ds.clicks, rate)
        clicker.start()
        time.sleep(seconds / 4)

        redis_server.stop()
        stopped = time.monotonic()
        # The worker notices on its next batch and says so; the batch in hand waits.
        while not (worker_health(settings).get("feature_store") or {}).get("down_for_s"):
            assert time.monotonic() - stopped < outage_s, "/healthz never reported the outage"
            time.sleep(0.2)
        noticed_s = time.monotonic() - stopped
        time.sleep(1.0)  # let a commit interval pass: what was written may still commit
        frozen = committed(kafka)
        while time.monotonic() - stopped < outage_s:
            time.sleep(1.0)
            # Nothing past the stalled batch is committed while its rows are unwritten.
            assert committed(kafka) == frozen, "an offset was committed during the outage"
        health = worker_health(settings)["feature_store"]
        assert health["failures"] >= 1 and health["last_error"], health
        redis_server.start()
        restarted = time.monotonic()

        clicker.join(timeout=seconds * 4)
        assert clicker.sent == len(ds.clicks)
        answers = collect(
            kafka, RECOMMENDATIONS, lambda v: True, len(ds.clicks), timeout=600, settle=3
        )
        counts = Counter(a["event_id"] for a in answers)
        missing = {c.event_id for c in ds.clicks} - set(counts)
        assert not missing, f"{len(missing)} clicks unanswered, e.g. {sorted(missing)[:5]}"
        after = worker_health(settings)["feature_store"]
        assert after["down_for_s"] is None and after["outages"] >= 1, after
        # The lag drains: every offset is committed once the rows are written.
        deadline = time.monotonic() + 120
        while any(p.lag for p in consumer_lag(kafka, GROUP, [CLICKS])):
            assert time.monotonic() < deadline, consumer_lag(kafka, GROUP, [CLICKS])
            time.sleep(0.5)
        drained_s = time.monotonic() - restarted

    # Features converge: every user's row counts all their clicks and ends on the newest.
    from services.features import FeastFeatureStore

    store = FeastFeatureStore(
        FeatureSettings(
            online_store="redis", redis_url=redis_server.url, data_dir=tmp_path / "stack" / "feast"
        )
    )
    try:
        per_user = Counter(c.user_id for c in ds.clicks)
        newest = {c.user_id: c for c in ds.clicks}  # the last sent (one partition per user)
        rows = store.get_user_features(sorted(per_user))
    finally:
        store.close()
    wrong = {
        u: (rows[u].click_count if rows[u] else None, n)
        for u, n in per_user.items()
        if rows[u] is None or rows[u].click_count != n
    }
    assert not wrong, f"rows that did not converge (got, want): {dict(list(wrong.items())[:5])}"
    assert all(rows[u].last_item_id == newest[u].item_id for u in per_user)  # type: ignore[union-attr]
    record(
        "feature_store_outage",
        clicks=len(ds.clicks),
        rate_per_s=rate,
        outage_s=outage_s,
        outage_noticed_after_s=round(noticed_s, 1),
        answered=len(counts),
        lost=len(missing),
        duplicate_answers=sum(n - 1 for n in counts.values()),
        failed_writes=health["failures"],
        lag_drained_after_restart_s=round(drained_s, 1),
        users_converged=len(per_user) - len(wrong),
        users=len(per_user),
    )
