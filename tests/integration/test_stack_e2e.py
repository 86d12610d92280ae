"""The whole embedded stack, real processes: tansu, tritonserver, Feast (SQLite), the worker."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from services.contract.events import (
    CLICKS,
    CLICKS_DLQ,
    ITEMS,
    ITEMS_DLQ,
    RECOMMENDATIONS,
    ClickEvent,
)
from services.data import synthetic
from services.kafka.io import EventProducer, produce_events
from services.kafka.settings import KafkaSettings
from tests.support.streams import collect

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def kafka(stack) -> KafkaSettings:  # type: ignore[no-untyped-def]
    return KafkaSettings(bootstrap=stack.bootstrap)


def stack_env(stack) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {
        **os.environ,
        "STREAMREC_RUN_DIR": str(stack.run_dir),
        "STREAMREC_BROKER_PORT": str(stack.broker_port),
        "STREAMREC_TRITON_HTTP_PORT": str(stack.triton_http_port),
        "STREAMREC_TRITON_GRPC_PORT": str(stack.triton_grpc_port),
        "STREAMREC_TRITON_METRICS_PORT": str(stack.triton_metrics_port),
        "STREAMREC_WORKER_WEB_PORT": str(stack.worker_web_port),
        "STREAMREC_TRAINER_PORT": str(stack.trainer_port),
        "STREAMREC_DASHBOARD_PORT": str(stack.dashboard_port),
    }


def feed_applied(stack) -> int:  # type: ignore[no-untyped-def]
    """Shared records (item-activity, item-embeddings) the worker has applied so far."""
    import httpx

    health = httpx.get(f"http://{stack.host}:{stack.worker_web_port}/healthz", timeout=5).json()
    applied: int = health["feed"]["applied"]
    return applied


def wait_for_feed(stack, at_least: int, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while feed_applied(stack) < at_least:
        assert time.monotonic() < deadline, f"the worker applied fewer than {at_least} records"
        time.sleep(0.2)


def scorer_requests(stack) -> int:  # type: ignore[no-untyped-def]
    """Requests Triton's ``scorer`` has answered (its statistics extension)."""
    url = f"http://{stack.host}:{stack.triton_http_port}/v2/models/scorer/stats"
    stats = httpx.get(url, timeout=5).json()["model_stats"]
    return sum(int(m["inference_stats"]["success"]["count"]) for m in stats)


def worker_batches(stack) -> int:  # type: ignore[no-untyped-def]
    health = httpx.get(f"http://{stack.host}:{stack.worker_web_port}/healthz", timeout=5).json()
    return int(health["batches"])


def test_thousand_clicks_get_exactly_thousand_recommendations(stack, kafka, unique) -> None:  # type: ignore[no-untyped-def]
    ds = synthetic.generate(n_users=60, n_items=150, n_clicks=1000, seed=7)
    prefix = f"e2e-{unique}-"
    clicks = [c.model_copy(update={"event_id": prefix + c.event_id}) for c in ds.clicks]
    before = feed_applied(stack)
    produce_events(kafka, ITEMS, ds.items)
    # A batch is ranked on the shared state as the feed had it when the batch began; on a
    # fresh stack, without the catalog, a first batch would have nothing to recommend.
    wait_for_feed(stack, before + len(ds.items))
    requests_before, batches_before = scorer_requests(stack), worker_batches(stack)
    produce_events(kafka, CLICKS, clicks)

    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), 1000)

    # 1,000 clicks produced at once come in batches of more than the test stack's chunk
    # (32 clicks): those are ranked as several pipelined requests, by the real Triton.
    requests = scorer_requests(stack) - requests_before
    batches = worker_batches(stack) - batches_before
    assert requests >= 1000 / 32 and requests > batches, (requests, batches)

    counts = Counter(r["event_id"] for r in recs)
    assert len(recs) == 1000, f"got {len(recs)} recommendations for 1000 clicks"
    assert set(counts) == {c.event_id for c in clicks} and max(counts.values()) == 1
    by_event = {c.event_id: c for c in clicks}
    for rec in recs:
        click = by_event[rec["event_id"]]
        assert rec["user_id"] == click.user_id
        assert rec["model_version"] == "scorer:1", "ranked by the Triton-served scorer"
        assert rec["degraded"] is False
        assert 0 < len(rec["items"]) <= 10
        assert click.item_id not in {i["item_id"] for i in rec["items"]}
        assert all(i["reasons"] for i in rec["items"])


def test_malformed_clicks_and_items_are_dead_lettered_with_their_reason(
    stack, kafka, unique
) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(kafka)
    bad_clicks = {
        f"not json {unique}".encode(): "not valid JSON",
        json.dumps({"user_id": f"u-{unique}", "note": unique}).encode(): "item_id: Field required",
        b"\xff\xfe" + unique.encode(): "not valid UTF-8",
        json.dumps(
            {"user_id": unique, "item_id": "i", "ts": "2999-01-01T00:00:00Z"}
        ).encode(): "in the future",
    }
    for raw in bad_clicks:
        producer.send(CLICKS, raw, key=f"u-{unique}".encode())
    good_id = f"good-{unique}"
    good = {
        "event_id": good_id,
        "user_id": f"u-{unique}",
        "item_id": "i1",
        "ts": int(time.time() * 1000),
    }
    producer.send(CLICKS, json.dumps(good).encode(), key=f"u-{unique}".encode())
    producer.send(ITEMS, json.dumps({"item_id": f"item-{unique}"}).encode(), key=unique.encode())
    producer.flush()

    def mine(v: dict) -> bool:  # type: ignore[type-arg]
        return unique in v.get("payload", "") or unique in (v.get("key") or "")

    dead = collect(kafka, CLICKS_DLQ, mine, len(bad_clicks))
    assert len(dead) == len(bad_clicks)
    for record in dead:
        raw = (
            record["payload"].encode()
            if record["payload_encoding"] == "utf-8"
            else __import__("base64").b64decode(record["payload"])
        )
        assert bad_clicks[raw] in record["error"]
        assert record["source_topic"] == CLICKS and record["offset"] >= 0
    item_dead = collect(kafka, ITEMS_DLQ, mine, 1)
    assert len(item_dead) == 1 and "title" in item_dead[0]["error"]
    # The good click in the same stream still gets its answer.
    recs = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"] == good_id, 1)
    assert len(recs) == 1


def test_replayed_click_gets_no_second_recommendation(stack, kafka, unique) -> None:  # type: ignore[no-untyped-def]
    producer = EventProducer(kafka)
    click = {
        "event_id": f"dup-{unique}",
        "user_id": f"d-{unique}",
        "item_id": "i1",
        "ts": int(time.time() * 1000),
    }
    for _ in range(3):
        producer.send(CLICKS, json.dumps(click).encode(), key=click["user_id"].encode())
    producer.flush()
    recs = collect(
        kafka, RECOMMENDATIONS, lambda v: v["event_id"] == click["event_id"], 1, settle=5
    )
    assert len(recs) == 1


def test_worker_writes_user_features_to_feast(stack, kafka, unique) -> None:  # type: ignore[no-untyped-def]
    from services.features.settings import FeatureSettings
    from services.features.store import FeastFeatureStore

    user = f"f-{unique}"
    now = int(time.time() * 1000)
    for i, item in enumerate(("i1", "i2", "i3")):
        produce_events(
            kafka,
            CLICKS,
            [
                __import__("services.contract.events", fromlist=["ClickEvent"]).ClickEvent(
                    event_id=f"feat-{unique}-{i}", user_id=user, item_id=item, ts=now + i
                )
            ],
        )
    collect(kafka, RECOMMENDATIONS, lambda v: v["user_id"] == user, 3)
    store = FeastFeatureStore(FeatureSettings(data_dir=stack.run_dir / "feast"))
    try:
        deadline = time.monotonic() + 20
        row = None
        while time.monotonic() < deadline:
            row = store.get_user_features([user])[user]
            if row is not None and row.click_count == 3:
                break
            time.sleep(0.5)
    finally:
        store.close()
    assert row is not None and row.click_count == 3
    assert row.last_item_id == "i3" and row.recent_items[:3] == ("i3", "i2", "i1")


def test_status_cli_reports_every_component_healthy(stack) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "status", "--json"],
        env=stack_env(stack),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report = json.loads(out.stdout)
    assert report["running"]
    assert {n: c["status"] for n, c in report["components"].items()} == {
        "broker": "healthy",
        "dashboard": "healthy",
        "tritonserver": "healthy",
        "trainer": "healthy",
        "worker-0": "healthy",
    }
    assert report["topics"][CLICKS] == stack.topic_partitions
    ready = {m["name"] for m in report["models"] if m.get("state") == "READY"}
    assert {"scorer", "item_encoder"} <= ready


def test_scorer_smoke_client_passes_against_the_served_model(stack) -> None:  # type: ignore[no-untyped-def]
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "triton_models" / "scorer" / "client.py"),
            "--url",
            f"{stack.host}:{stack.triton_http_port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK")


def test_triton_outage_degrades_loses_nothing_and_recovers(stack, kafka, unique) -> None:  # type: ignore[no-untyped-def]
    from services.stack.control import read_state
    from services.stack.health import triton_ready

    ds = synthetic.generate(n_users=20, n_items=50, n_clicks=200, seed=3)
    prefix = f"outage-{unique}-"
    clicks = [c.model_copy(update={"event_id": prefix + c.event_id}) for c in ds.clicks]
    pid = read_state(stack)["components"]["tritonserver"]["pid"]  # type: ignore[index]
    os.kill(pid, signal.SIGKILL)
    produce_events(kafka, CLICKS, clicks[:100])
    during = collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), 100)
    assert len(during) == 100
    assert any(r["degraded"] for r in during), "ranked by the fallback while Triton was down"
    # The supervisor restarts Triton; the worker's breaker closes again by itself.
    deadline = time.monotonic() + 90
    while not triton_ready(f"http://{stack.host}:{stack.triton_http_port}", ["scorer"]):
        assert time.monotonic() < deadline, "Triton was not restarted"
        time.sleep(1)
    time.sleep(6)  # past the breaker's cool-down
    produce_events(kafka, CLICKS, clicks[100:])
    after = collect(
        kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), 200, timeout=60
    )
    assert len(after) == 200 and len({r["event_id"] for r in after}) == 200
    late = [r for r in after if r["event_id"] in {c.event_id for c in clicks[150:]}]
    assert late and not any(r["degraded"] for r in late)


def test_cli_produce_and_tail_show_titles_and_reasons(stack, kafka, unique, tmp_path) -> None:  # type: ignore[no-untyped-def]
    user = f"cli-{unique}"
    item = {"item_id": f"movie-{unique}", "title": f"The Film {unique}"}
    produce_events(
        kafka,
        ITEMS,
        [__import__("services.contract.events", fromlist=["ItemEvent"]).ItemEvent(**item)],
    )
    # Another user links the new movie to a second one, so our user's answer cites it.
    lines = [
        {
            "event_id": f"cli-{unique}-1",
            "user_id": f"other-{unique}",
            "item_id": item["item_id"],
            "ts": 1_750_000_000_000,
        },
        {
            "event_id": f"cli-{unique}-2",
            "user_id": f"other-{unique}",
            "item_id": f"next-{unique}",
            "ts": 1_750_000_001_000,
        },
        {
            "event_id": f"cli-{unique}-3",
            "user_id": user,
            "item_id": item["item_id"],
            "ts": 1_750_000_002_000,
        },
    ]
    path = tmp_path / "clicks.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    env = stack_env(stack)
    produced = subprocess.run(
        [sys.executable, "-m", "services.cli", "produce", str(path), "--topic", "clicks"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert produced.returncode == 0, produced.stderr
    assert "sent 3 records to clicks" in produced.stdout
    tailed = subprocess.run(
        [
            sys.executable,
            "-m",
            "services.cli",
            "tail",
            "--user",
            user,
            "--count",
            "1",
            "--from-beginning",
            "--idle",
            "30",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert tailed.returncode == 0, tailed.stderr
    assert f"user {user} (event cli-{unique}-3, scorer:" in tailed.stdout
    # Each ranked line shows a title (or the id), the score and at least one reason;
    # which reasons depends on the ranker (tested in tests/unit/test_pipeline.py).
    ranked = [ln for ln in tailed.stdout.splitlines() if re.match(r"\s+\d+\. ", ln)]
    assert ranked, tailed.stdout
    for line in ranked:
        assert re.fullmatch(r"\s+\d+\. .+  \(-?\d+\.\d+\)  \S.*", line), line
        assert f"The Film {unique}" not in line.split("  (")[0]  # the user's own click


def test_a_new_item_is_recommended_by_its_text_before_any_click(stack, kafka, unique) -> None:  # type: ignore[no-untyped-def]
    """Cold start through the real path: items -> Triton item_encoder -> embedding index ->
    semantic candidates -> Triton scorer (the LLM ranker) -> recommendations. How soon is a
    benchmark's question (docs/BENCHMARKS.md); here the probes stop after 60 s."""
    from datetime import UTC, datetime

    from services.contract.events import ClickEvent, ItemEvent

    theme = f"Zorblax quantum submarine {unique}"

    def film(item_id: str, part: str) -> ItemEvent:
        return ItemEvent(
            item_id=item_id,
            title=f"{theme} chronicles part {part}",
            categories=["Deep sea", "Quantum"],
            description=f"The {theme} saga, volume {part}.",
        )

    known = [film(f"zq-{unique}-{i}", str(i)) for i in range(1, 4)]
    produce_events(kafka, ITEMS, known)
    user, prefix = f"zq-fan-{unique}", f"zq-{unique}-click-"

    def click(eid: str, item_id: str) -> ClickEvent:
        return ClickEvent(event_id=eid, user_id=user, item_id=item_id, ts=datetime.now(UTC))

    produce_events(kafka, CLICKS, [click(f"{prefix}{i}", it.item_id) for i, it in enumerate(known)])
    collect(kafka, RECOMMENDATIONS, lambda v: v["event_id"].startswith(prefix), 3)
    new_id = f"zq-{unique}-new"
    produce_events(kafka, ITEMS, [film(new_id, "4")])
    sent = time.monotonic()
    found = None
    n = 0
    while found is None and time.monotonic() - sent < 60:
        eid = f"{prefix}probe-{n}"
        produce_events(kafka, CLICKS, [click(eid, known[n % 3].item_id)])
        rec = collect(kafka, RECOMMENDATIONS, lambda v, e=eid: v["event_id"] == e, 1)[0]
        hits = [i for i in rec["items"] if i["item_id"] == new_id]
        if hits:
            found = (rec, hits[0])
        n += 1
    assert found is not None, "the new item never appeared in a recommendation"
    rec, item = found
    # Nobody clicked the new item: only its text can have put it there.
    assert rec["model_version"].startswith("scorer:") and not rec["degraded"]
    assert isinstance(rec["segment"], int)
    assert any(r.startswith("similar description to «") for r in item["reasons"]), item


def test_train_asks_the_stack_trainer_and_waits_for_its_answer(stack) -> None:  # type: ignore[no-untyped-def]
    """`streamrec train --wait` goes through the trainer service: the request is queued,
    the service catches up with the topics and answers. The test stack's trainer needs a
    million clicks (tests/conftest.py), so the answer is a skip that says why."""
    out = subprocess.run(
        [sys.executable, "-m", "services.cli", "train", "--wait", "--timeout", "120"],
        env=stack_env(stack),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert "retraining queued as job" in out.stdout, out.stdout + out.stderr
    answer = json.loads(out.stdout[out.stdout.index("{") :])
    assert answer["state"] == "skipped" and "training needs 1000000" in answer["reason"]
    assert out.returncode == 1
    status = httpx.get(f"http://{stack.host}:{stack.trainer_port}/status", timeout=5).json()
    assert status["serving"] == 1 and status["logged_clicks"] > 0


def _worker_shadow(stack) -> str | None:  # type: ignore[no-untyped-def]
    health = httpx.get(f"http://{stack.host}:{stack.worker_web_port}/healthz", timeout=5).json()
    return health["shadow"]["version"]  # type: ignore[no-any-return]


def _wait_for_shadow(stack, want: str | None, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while _worker_shadow(stack) != want:
        assert time.monotonic() < deadline, f"the worker's shadow never became {want}"
        time.sleep(0.3)


def test_a_challenger_in_shadow_is_judged_by_real_clicks_and_never_published(
    stack, kafka, unique
) -> None:  # type: ignore[no-untyped-def]
    """The served scorer's own files loaded as the shadow: the worker finds it, ranks its
    share of users with it too, publishes only the served lists, and each user's next
    click judges both (the same model, so the same verdicts). The trainer's monitor
    counts the verdicts; when the shadow is unloaded the worker stops."""
    from services.recommender.settings import WorkerSettings
    from services.recommender.shadow import in_share
    from services.trainer.layout import ModelFolder
    from services.trainer.release import Releaser
    from services.trainer.triton import TritonControl

    ds = synthetic.generate(n_users=60, n_items=150, n_clicks=1000, seed=7)
    before = feed_applied(stack)
    produce_events(kafka, ITEMS, ds.items)
    wait_for_feed(stack, before + len(ds.items))
    control = TritonControl(stack.triton_http_url, stack.admin_key())
    releaser = Releaser(ModelFolder(stack.model_repository, "scorer"), control)
    label = f"scorer:challenger-{unique}"
    users = [f"shadow-{unique}-{i}" for i in range(80)]
    share = WorkerSettings().shadow_share
    selected = {u for u in users if in_share(u, share)}
    assert selected, "no user in the shadow share"
    items = [item.item_id for item in ds.items]
    try:
        with releaser.shadow(stack.model_repository / "scorer" / "1", label):
            _wait_for_shadow(stack, label)
            first = [
                ClickEvent(event_id=f"{u}-1", user_id=u, item_id=items[i], ts=1_700_000_000_000)
                for i, u in enumerate(users)
            ]
            produce_events(kafka, CLICKS, first)
            shown = {
                r["user_id"]: [i["item_id"] for i in r["items"]]
                for r in collect(kafka, RECOMMENDATIONS, lambda v: v["user_id"] in users, 80)
            }
            assert len(shown) == 80
            # Half the users click the second item they were shown (a hit), half do not.
            second = [
                ClickEvent(
                    event_id=f"{u}-2",
                    user_id=u,
                    item_id=shown[u][1] if n % 2 == 0 else items[-1 - n],
                    ts=1_700_000_060_000,
                )
                for n, u in enumerate(users)
            ]
            produce_events(kafka, CLICKS, second)
            recs = collect(
                kafka,
                RECOMMENDATIONS,
                lambda v: v["event_id"].endswith("-2") and v["user_id"] in users,
                80,
            )
    finally:
        control.close()
    _wait_for_shadow(stack, None)

    assert len(recs) == 80
    published = collect(kafka, RECOMMENDATIONS, lambda v: v["user_id"] in users, 160, settle=1.0)
    assert all(r["model_version"] == "scorer:1" for r in published), "a shadow list was published"
    for rec in recs:
        lanes = {j["lane"]: j for j in rec["judged"]}
        clicked = next(c.item_id for c in second if c.user_id == rec["user_id"])
        serving = lanes["serving"]
        assert serving["model_version"] == "scorer:1"
        assert serving["hit"] == (clicked in shown[rec["user_id"]])
        if rec["user_id"] in selected:
            assert lanes["shadow"]["model_version"] == label
            assert lanes["shadow"]["hit"] == serving["hit"]  # the same model in both lanes
        else:
            assert "shadow" not in lanes
    assert sum(r["judged"][0]["hit"] for r in recs) >= 40

    deadline = time.monotonic() + 30
    while True:
        online = httpx.get(f"http://{stack.host}:{stack.trainer_port}/status", timeout=5).json()[
            "online"
        ]
        if online["shadow"].get(label, {}).get("judged") == len(selected):
            break
        assert time.monotonic() < deadline, online
        time.sleep(0.5)
    assert online["versions"]["scorer:1"]["judged"] >= 80
