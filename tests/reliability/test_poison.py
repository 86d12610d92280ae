"""Poison messages in a replay (issue 7, test 7): 1% of the clicks are malformed in every
way we know of. Each bad one becomes a dead letter carrying its reason and its raw bytes,
every good one gets exactly one answer, the worker never restarts, and after the cause is
fixed `streamrec dlq replay` sends the fixable ones back to be answered."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.contract.events import CLICKS, CLICKS_DLQ, ITEMS, RECOMMENDATIONS, ItemEvent
from services.data import synthetic
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings
from services.stack.control import read_state
from services.stack.settings import StackSettings
from tests.support.private_stack import private_stack, worker_health
from tests.support.reliability import record, scale
from tests.support.streams import collect

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

REPO = Path(__file__).resolve().parents[2]
BIG = 2 * 1024 * 1024  # a 2 MB value: over the worker's 64 KB limit and librdkafka's 1 MB


def _now_ms() -> int:
    return int(time.time() * 1000)


# Each kind: (name, the bytes for poison number n, a fragment of the reason it must get).
# Built per message so every payload is unique and can be matched to its dead letter.
Kind = tuple[str, Callable[[str], bytes], str]
KINDS: list[Kind] = [
    ("invalid_json", lambda tag: f'{{"event_id": "{tag}", "user_id": '.encode(), "not valid JSON"),
    (
        "missing_field",
        lambda tag: json.dumps({"event_id": tag, "user_id": "u", "ts": _now_ms()}).encode(),
        "item_id: Field required",
    ),
    (
        "wrong_type",
        lambda tag: json.dumps(
            {"event_id": tag, "user_id": ["u"], "item_id": {"id": 1}, "ts": "yesterday"}
        ).encode(),
        "user_id",
    ),
    ("not_utf8", lambda tag: b"\xff\xfe\xfa" + tag.encode() + b"\x80", "not valid UTF-8"),
    (
        "oversized",
        lambda tag: json.dumps(
            {"event_id": tag, "user_id": "u", "item_id": "i0", "ts": _now_ms(), "pad": "x" * BIG}
        ).encode(),
        "bytes",
    ),
    (
        "unknown_item",
        lambda tag: json.dumps(
            {"event_id": tag, "user_id": f"user-{tag}", "item_id": f"late-{tag}", "ts": _now_ms()}
        ).encode(),
        "unknown item_id",
    ),
    (
        "far_future",
        lambda tag: json.dumps(
            {
                "event_id": tag,
                "user_id": "u",
                "item_id": "i0",
                "ts": (datetime.now(UTC) + timedelta(days=3650)).isoformat(),
            }
        ).encode(),
        "in the future",
    ),
]


def raw_payload(dead: dict[str, Any]) -> bytes:
    if dead["payload_encoding"] == "base64":
        return base64.b64decode(dead["payload"])
    return str(dead["payload"]).encode()


def wait_catalog(settings: StackSettings, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            held = worker_health(settings).get("catalog_items") or 0
        except Exception:  # the worker's web server may still be starting
            held = 0
        if held >= at_least:
            return
        assert time.monotonic() < deadline, f"the worker holds {held} of {at_least} items"
        time.sleep(0.5)


def cli(settings: StackSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**__import__("os").environ, **settings.to_env()},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def worker_restarts(settings: StackSettings) -> int:
    components = (read_state(settings) or {}).get("components", {})
    return sum(c.get("restarts", 0) for name, c in components.items() if name.startswith("worker"))


def test_one_percent_poison_is_dead_lettered_and_the_rest_answered_once(tmp_path: Path) -> None:
    n_clicks = scale(2000, 10_000)
    rate = scale(None, 500)
    ds = synthetic.generate(n_users=100, n_items=200, n_clicks=n_clicks, seed=23)
    # Strict about unknown items: this stream's catalog is published (and applied) first.
    strict = {"STREAMREC_UNKNOWN_ITEMS": "dead-letter"}
    with private_stack(tmp_path / "stack", env=strict) as settings:
        kafka = KafkaSettings(bootstrap=settings.bootstrap)
        produce_events(kafka, ITEMS, ds.items)
        wait_catalog(settings, len(ds.items))
        restarts_before = worker_restarts(settings)

        # Every 100th message is poison, the kinds in turn.
        producer = EventProducer(kafka, **{"message.max.bytes": BIG + 1024 * 1024})
        poison: dict[str, tuple[str, bytes, str]] = {}  # key -> (kind, raw, reason)
        sent_good: list[str] = []
        started = time.monotonic()
        for n, click in enumerate(ds.clicks):
            if n % 100 == 50:
                name, make, reason = KINDS[len(poison) % len(KINDS)]
                key = f"poison-{len(poison)}"
                raw = make(key)
                poison[key] = (name, raw, reason)
                producer.send(CLICKS, raw, key=key.encode())
            producer.send_event(CLICKS, click)
            sent_good.append(click.event_id)
            if rate:
                ahead = (n + 1) / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
        producer.flush()

        answers = collect(
            kafka, RECOMMENDATIONS, lambda v: True, len(sent_good), timeout=600, settle=3
        )
        dead = collect(
            kafka,
            CLICKS_DLQ,
            lambda v: (v.get("key") or "").startswith("poison-"),
            len(poison),
            timeout=120,
            settle=2,
        )

        counts = Counter(a["event_id"] for a in answers)
        missing = set(sent_good) - set(counts)
        assert not missing, f"{len(missing)} good clicks unanswered, e.g. {sorted(missing)[:5]}"
        assert max(counts.values()) == 1, counts.most_common(3)
        assert not set(counts) - set(sent_good), "an answer to a click that was never sent"
        by_key = {d["key"]: d for d in dead}
        assert len(dead) == len(by_key) == len(poison), (len(dead), len(poison))
        # accepted + dead-lettered = input, exactly.
        assert len(counts) + len(by_key) == len(sent_good) + len(poison)
        for key, (name, raw, reason) in poison.items():
            d = by_key[key]
            assert reason in d["error"], (name, d["error"])
            assert d["source_topic"] == CLICKS and d["offset"] >= 0
            assert d["payload_size"] == len(raw)
            if name == "oversized":
                assert d["payload_truncated"] and raw.startswith(raw_payload(d))
            else:
                assert not d["payload_truncated"] and raw_payload(d) == raw, name
        assert worker_restarts(settings) == restarts_before, "a worker restarted"

        # The fix for the unknown items: publish them; then replay those dead letters.
        late = [
            json.loads(raw)["item_id"] for name, raw, _ in poison.values() if name == "unknown_item"
        ]
        produce_events(
            kafka, ITEMS, [ItemEvent(item_id=i, title=f"Late arrival {i}") for i in late]
        )
        wait_catalog(settings, len(ds.items) + len(late))
        replay = cli(settings, "dlq", "replay", "--match", "unknown item_id")
        assert replay.returncode == 0, replay.stdout + replay.stderr
        fixed_ids = {
            json.loads(raw)["event_id"]
            for name, raw, _ in poison.values()
            if name == "unknown_item"
        }
        fixed = collect(
            kafka, RECOMMENDATIONS, lambda v: v["event_id"] in fixed_ids, len(fixed_ids)
        )
        assert {a["event_id"] for a in fixed} == fixed_ids
        assert len(fixed) == len(fixed_ids), "a replayed dead letter was answered twice"
        record(
            "poison",
            clicks=len(sent_good),
            poison=len(poison),
            kinds=dict(Counter(name for name, _, _ in poison.values())),
            answered=len(counts),
            dead_lettered=len(by_key),
            lost=len(missing),
            duplicate_answers=sum(c - 1 for c in counts.values()),
            worker_restarts=worker_restarts(settings) - restarts_before,
            replayed_after_fix=len(fixed),
            seconds=round(time.monotonic() - started, 1),
        )
