"""Polls the stack's components over HTTP: each shown as up, starting or down, never fatal.

Workers: ``/healthz`` (counters: clicks, dead letters, degraded answers, catalog size);
503 with a body means starting. Trainer: ``/status`` (serving version, online hit rate,
last job). Triton: ``GET /v2/models/stats`` (each loaded model version; open without
the admin key).
Short timeouts, one poll every few seconds, on a background thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import httpx

log = logging.getLogger(__name__)


class ProbeFailed(Exception):
    """Nothing answered: refused or reset (the component is down), or no answer within the
    timeout (``timed_out``: it may be alive and busy; a loaded 2-core machine does that)."""

    def __init__(self, detail: str, timed_out: bool = False) -> None:
        super().__init__(detail)
        self.timed_out = timed_out


class HttpProbe(Protocol):
    """GET or POST one URL: (status code, the JSON body or None). Raises
    :class:`ProbeFailed` when nothing answers."""

    def get(self, url: str) -> tuple[int, Any]: ...

    def post(self, url: str, body: Any) -> tuple[int, Any]: ...


class HttpxProbe:
    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.Client(timeout=timeout_s)

    def _call(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        try:
            resp = self._client.request(method, url, json=body)
        except httpx.HTTPError as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ProbeFailed(detail, isinstance(exc, httpx.TimeoutException)) from exc
        try:
            return resp.status_code, resp.json()
        except ValueError:
            return resp.status_code, None

    def get(self, url: str) -> tuple[int, Any]:
        return self._call("GET", url)

    def post(self, url: str, body: Any) -> tuple[int, Any]:
        return self._call("POST", url, body)

    def close(self) -> None:
        self._client.close()


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _down(url: str, error: str) -> dict[str, Any]:
    return {"url": url, "state": "down", "error": error}


def _failed(url: str, exc: ProbeFailed, previous: dict[str, Any] | None) -> dict[str, Any]:
    """Down, or ``slow`` when it timed out after answering before: its last answer is kept
    (marked stale by the state) rather than blanked by one slow poll."""
    if exc.timed_out and previous is not None and previous.get("state") != "down":
        return {**previous, "state": "slow", "error": str(exc)}
    return _down(url, str(exc))


WORKER_COUNTERS = (
    "clicks",
    "recommendations",
    "dead_letters",
    "degraded",
    "duplicates",
    "catalog_items",
    "users_in_memory",
)


class ComponentPoller:
    """The latest answer of every component, refreshed every ``interval_s``."""

    def __init__(
        self,
        probe: HttpProbe,
        worker_urls: Sequence[str],
        trainer_url: str | None,
        triton_url: str,
        interval_s: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.probe = probe
        self.worker_urls = [u.rstrip("/") for u in worker_urls]
        self.trainer_url = trainer_url.rstrip("/") if trainer_url else None
        self.triton_url = triton_url.rstrip("/")
        self.interval_s = interval_s
        self._clock = clock
        self._snapshot: dict[str, Any] = {"polled_at": None}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dashboard-poller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:  # a bug in one answer's handling must not stop the polling
                log.exception("polling the components failed")
            self._stop.wait(self.interval_s)

    def snapshot(self) -> dict[str, Any]:
        return self._snapshot

    def poll(self) -> dict[str, Any]:
        """Ask every component now; the result replaces the snapshot in one assignment."""
        workers = [self._worker(url) for url in self.worker_urls]
        answering = [w for w in workers if w["state"] in ("up", "starting")]
        snapshot = {
            "polled_at": self._clock(),
            "workers": workers,
            "trainer": self._trainer() if self.trainer_url else None,
            "triton": self._triton(),
            # A worker that does not answer has counters nobody can read (a slow one's are
            # its last): the total is a lower bound then, and the page says how many answered.
            "dead_letters": {
                "total": sum(w.get("dead_letters") or 0 for w in workers),
                "workers_answering": len(answering),
                "workers": len(workers),
            },
        }
        self._snapshot = snapshot
        return snapshot

    def _previous(self, key: str, url: str) -> dict[str, Any] | None:
        last = self._snapshot.get(key)
        entries = last if isinstance(last, list) else [last]
        return next((e for e in entries if isinstance(e, dict) and e.get("url") == url), None)

    def _worker(self, url: str) -> dict[str, Any]:
        try:
            status, body = self.probe.get(f"{url}/healthz")
        except ProbeFailed as exc:
            return _failed(url, exc, self._previous("workers", url))
        if not isinstance(body, dict):
            return _down(url, f"HTTP {status} without a JSON body")
        return {
            "url": url,
            # The worker answers 503 with its counters while it is not consuming yet.
            "state": "up" if status == 200 else "starting",
            "error": None,
            "scorer_breaker_open": bool(body.get("scorer_breaker_open")),
            **{key: _int(body.get(key)) for key in WORKER_COUNTERS},
        }

    def _trainer(self) -> dict[str, Any]:
        assert self.trainer_url is not None
        url = self.trainer_url
        try:
            status, body = self.probe.get(f"{url}/status")
        except ProbeFailed as exc:
            return _failed(url, exc, self._previous("trainer", url))
        if status != 200 or not isinstance(body, dict):
            return _down(url, f"HTTP {status}")
        jobs = body.get("jobs") or []
        last = jobs[-1] if jobs and isinstance(jobs[-1], dict) else None
        online = body.get("online")
        if not isinstance(online, dict):
            online = {}
        return {
            "url": url,
            "state": "up",
            "error": None,
            "serving": body.get("serving"),
            "versions": body.get("versions") or [],
            "logged_clicks": _int(body.get("logged_clicks")),
            "last_job": None
            if last is None
            else {k: last.get(k) for k in ("id", "state", "decision", "reason", "version")},
            "online": {
                version: {"judged": t.get("judged"), "hr_at_10": t.get("hr_at_10")}
                for version, t in (online.get("versions") or {}).items()
                if isinstance(t, dict)
            },
        }

    def _triton(self) -> dict[str, Any]:
        # The statistics endpoint, not the repository index: the index is part of the
        # repository API, which Triton restricts to the admin key the dashboard does not
        # hold. Statistics list every loaded (so servable) version of every model.
        url = self.triton_url
        try:
            status, body = self.probe.get(f"{url}/v2/models/stats")
        except ProbeFailed as exc:
            return _failed(url, exc, self._previous("triton", url))
        stats = body.get("model_stats") if isinstance(body, dict) else None
        if status != 200 or not isinstance(stats, list):
            return _down(url, f"HTTP {status}")
        models: list[dict[str, Any]] = sorted(
            (
                {
                    "name": str(m.get("name")),
                    "version": str(m["version"]) if m.get("version") not in (None, "") else None,
                    "state": "READY",
                    "reason": None,
                    "inferences": _int(m.get("inference_count")),
                }
                for m in stats
                if isinstance(m, dict)
            ),
            key=lambda m: (m["name"], m["version"] or ""),
        )
        serving: dict[str, list[str]] = {}
        for m in models:
            if m["version"] is not None:
                serving.setdefault(m["name"], []).append(m["version"])
        return {"url": url, "state": "up", "error": None, "models": models, "serving": serving}
