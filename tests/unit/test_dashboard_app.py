"""The dashboard's poller (with an in-memory HTTP probe) and its HTTP server (in-process)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.dashboard import page
from services.dashboard.app import create_app
from services.dashboard.collector import Collector
from services.dashboard.probes import ComponentPoller, ProbeFailed
from services.dashboard.stats import LiveStats
from services.kafka.titles import Titles

WORKER_HEALTH = {
    "status": "ok",
    "clicks": 40,
    "recommendations": 38,
    "dead_letters": 2,
    "degraded": 0,
    "duplicates": 0,
    "catalog_items": 150,
    "users_in_memory": 12,
    "scorer_breaker_open": False,
}


class FakeProbe:
    """Answers by URL: a (status, body) pair, or None for 'nothing listens there'."""

    def __init__(self, answers: dict[str, tuple[int, Any] | None]) -> None:
        self.answers = answers
        self.posted: list[tuple[str, Any]] = []

        self.slow: set[str] = set()

    def _answer(self, url: str) -> tuple[int, Any]:
        if url in self.slow:
            raise ProbeFailed(f"ReadTimeout: {url}", timed_out=True)
        answer = self.answers.get(url)
        if answer is None:
            raise ProbeFailed(f"ConnectError: nothing at {url}")
        return answer

    def get(self, url: str) -> tuple[int, Any]:
        return self._answer(url)

    def post(self, url: str, body: Any) -> tuple[int, Any]:
        self.posted.append((url, body))
        return self._answer(url)


def test_poller_reports_each_component_and_a_down_one_without_failing() -> None:
    probe = FakeProbe(
        {
            "http://w0/healthz": (200, WORKER_HEALTH),
            "http://w1/healthz": (503, {**WORKER_HEALTH, "status": "starting", "dead_letters": 1}),
            "http://trainer/status": (
                200,
                {
                    "serving": 1,
                    "versions": [1],
                    "logged_clicks": 99,
                    "online": {"versions": {"scorer:1": {"judged": 10, "hr_at_10": 0.2}}},
                    "jobs": [{"id": 1, "state": "skipped", "reason": "too few", "extra": "x"}],
                },
            ),
            "http://triton/v2/models/stats": (
                200,
                {
                    "model_stats": [
                        {"name": "scorer", "version": "1", "inference_count": 40},
                        {"name": "item_encoder", "version": "1", "inference_count": 7},
                        {"name": "scorer-shadow", "version": "3"},
                    ]
                },
            ),
        }
    )
    poller = ComponentPoller(
        probe,
        ["http://w0", "http://w1/", "http://w2"],
        "http://trainer",
        "http://triton",
        clock=lambda: 5.0,
    )
    snap = poller.poll()

    states = [(w["url"], w["state"]) for w in snap["workers"]]
    assert states == [("http://w0", "up"), ("http://w1", "starting"), ("http://w2", "down")]
    assert "nothing at http://w2/healthz" in snap["workers"][2]["error"]
    assert snap["dead_letters"] == {"total": 3, "workers_answering": 2, "workers": 3}
    assert snap["workers"][0]["catalog_items"] == 150
    trainer = snap["trainer"]
    assert trainer["serving"] == 1 and trainer["online"]["scorer:1"]["hr_at_10"] == 0.2
    assert trainer["last_job"] == {
        "id": 1,
        "state": "skipped",
        "decision": None,
        "reason": "too few",
        "version": None,
    }
    assert probe.posted == []  # read-only: nothing on Triton's (restricted) repository API
    assert snap["triton"]["serving"] == {
        "item_encoder": ["1"],
        "scorer": ["1"],
        "scorer-shadow": ["3"],
    }
    scorer = next(m for m in snap["triton"]["models"] if m["name"] == "scorer")
    assert scorer == {"name": "scorer", "version": "1", "state": "READY", "reason": None,
                      "inferences": 40}  # fmt: skip
    assert poller.snapshot() is snap

    # Everything gone: every component is shown down, nothing raises.
    probe.answers.clear()
    gone = poller.poll()
    assert [w["state"] for w in gone["workers"]] == ["down"] * 3
    assert gone["trainer"]["state"] == "down" and gone["triton"]["state"] == "down"
    assert gone["dead_letters"]["workers_answering"] == 0


def test_a_slow_component_keeps_its_last_answer_marked_slow() -> None:
    probe = FakeProbe(
        {
            "http://w0/healthz": (200, WORKER_HEALTH),
            "http://triton/v2/models/stats": (200, {"model_stats": []}),
        }
    )
    poller = ComponentPoller(probe, ["http://w0", "http://w1"], None, "http://triton")
    poller.poll()
    probe.slow = {"http://w0/healthz", "http://w1/healthz"}
    snap = poller.poll()
    w0, w1 = snap["workers"]
    assert w0["state"] == "slow" and w0["dead_letters"] == 2 and "ReadTimeout" in w0["error"]
    assert w1["state"] == "down"  # never answered: nothing to keep
    assert snap["dead_letters"] == {"total": 2, "workers_answering": 0, "workers": 2}


def test_no_trainer_is_not_polled() -> None:
    probe = FakeProbe({"http://triton/v2/models/stats": (200, {"model_stats": []})})
    snap = ComponentPoller(probe, [], None, "http://triton").poll()
    assert snap["trainer"] is None and snap["triton"]["state"] == "up"


class FakeStream:
    def __init__(self) -> None:
        self.positioned = False

    def start(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def status(self) -> dict[str, Any]:
        return {"state": "reading" if self.positioned else "down", "error": None, "titles": 0}

    def is_positioned(self) -> bool:
        return self.positioned


class FakeComponents:
    def start(self) -> None:
        pass

    def stop(self, timeout: float = 5.0) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {"polled_at": None}


def test_server_answers_page_summary_and_health() -> None:
    stream = FakeStream()
    collector = Collector(LiveStats(), Titles(), stream, FakeComponents(), refresh_ms=700)

    async def scenario() -> None:
        async with TestClient(TestServer(create_app(collector))) as client:
            health = await client.get("/healthz")
            assert health.status == 503 and (await health.json())["status"] == "starting"
            stream.positioned = True
            health = await client.get("/healthz")
            assert health.status == 200

            summary = await client.get("/api/summary")
            assert summary.status == 200 and summary.headers["Cache-Control"] == "no-store"
            body = await summary.json()
            assert body["refresh_ms"] == 700
            assert body["stream"]["reader"]["state"] == "reading"
            assert body["stream"]["throughput"]["recommendations_per_s"] == 0

            index = await client.get("/")
            assert index.status == 200 and index.content_type == "text/html"
            html = await index.text()
            assert 'id="latest"' in html and "/api/summary" in html
            csp = index.headers["Content-Security-Policy"]
            assert "default-src 'none'" in csp and "connect-src 'self'" in csp

    asyncio.run(scenario())


def test_page_is_self_contained_and_its_policy_matches_its_inline_code() -> None:
    html = page.render()
    # No external resource: the only absolute URL is the SVG namespace (an identifier).
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"<(link|img|iframe)\b|\bsrc=", html)
    assert "innerHTML" not in page.SCRIPT  # stream text is set with textContent only
    csp = page.content_security_policy()
    assert page._sha256(page.SCRIPT) in csp and page._sha256(page.STYLE) in csp
    assert f"<script>{page.SCRIPT}</script>" in html and f"<style>{page.STYLE}</style>" in html
