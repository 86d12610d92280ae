"""The trainer as a long-running service: keep the log, retrain when due or asked.

One thread keeps the event log caught up with ``clicks`` and ``items`` and starts a
retraining when ``interval_s`` has passed since the last one or ``every_clicks`` new
clicks arrived, whichever comes first. Another reads ``recommendations`` into the online
monitor (services/trainer/online.py): a segment whose online HR@10 drops (river's ADWIN)
starts a retraining before either, and a challenger that passed offline is tried in
shadow on live clicks before it is released. A small HTTP endpoint answers health and status
and takes on-demand requests (``POST /train``, what ``streamrec train`` sends).
Retrainings never overlap: one runs at a time, and the model folder's lock also keeps a
user's ``streamrec deploy`` from interleaving with a release.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from services.kafka.settings import KafkaSettings
from services.trainer.event_log import EventLog
from services.trainer.job import NotEnoughData, Outcome, retrain, write_outcome
from services.trainer.layout import ModelFolder
from services.trainer.online import Drift, OnlineMonitor
from services.trainer.online_reader import RecommendationReader
from services.trainer.release import Releaser
from services.trainer.settings import TrainerSettings
from services.trainer.shadow_trial import ShadowTrial
from services.trainer.triton import TritonControl

log = logging.getLogger(__name__)


def build_releaser(settings: TrainerSettings) -> Releaser:
    folder = ModelFolder(settings.model_repository, settings.model)
    control = TritonControl(settings.triton_http_url, settings.admin_key)
    return Releaser(folder, control, keep=settings.keep_versions)


class Trainer:
    """Triggers, one retraining at a time, and the status the HTTP endpoint shows."""

    def __init__(self, settings: TrainerSettings, kafka: KafkaSettings) -> None:
        self.settings, self.kafka = settings, kafka
        self.event_log = EventLog(settings.data_dir)
        self.releaser = build_releaser(settings)
        self.requested = threading.Event()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.jobs: list[dict[str, Any]] = []
        self.last_run = time.monotonic()
        self.clicks_at_last_run = self.event_log.click_count()
        # Online HR@10 per version and segment, from the published recommendations; a
        # segment's drop queues a retraining. Read only while the service runs.
        self.monitor = OnlineMonitor(
            delta=settings.drift_delta,
            min_judged=settings.drift_min_judged,
            on_drift=self.on_drift,
        )
        self.reader: RecommendationReader | None = None
        self.last_drift_request = float("-inf")

    def start_monitor(self) -> bool:
        """Read ``recommendations`` into the monitor; True once positioned. First unloads
        a shadow an earlier run of the service may have left behind."""
        try:
            self.releaser.clear_shadow()
        except Exception:  # Triton may still be starting: the trial's own unload will do
            log.warning("could not check for a leftover shadow model", exc_info=True)
        self.reader = RecommendationReader(self.kafka, self.monitor)
        return self.reader.start()

    def on_drift(self, drift: Drift) -> None:
        log.warning("%s", drift.describe())
        s = self.settings
        if not s.drift:
            return
        now = time.monotonic()
        busy = any(j["state"] in ("queued", "running") for j in self.jobs)
        if busy or now - self.last_drift_request < s.drift_cooldown_s:
            return
        self.last_drift_request = now
        self.request(drift.describe())

    def _shadow(self) -> ShadowTrial | None:
        """A trial on live traffic, when there is live traffic to judge it by."""
        if self.reader is None or self.settings.shadow_s <= 0:
            return None
        return ShadowTrial(
            self.releaser,
            self.monitor,
            self.settings.shadow_s,
            self.settings.shadow_min_judged,
            stopping=self.stopping,
        )

    def request(self, reason: str) -> int:
        """Queue a retraining; returns its job number."""
        with self.lock:
            number = len(self.jobs) + 1
            job: dict[str, Any] = {
                "id": number,
                "state": "queued",
                "reason": reason,
                "queued_at": time.time(),
            }
            self.jobs.append(job)
        self.requested.set()
        return number

    def due(self) -> str | None:
        s = self.settings
        new = self.event_log.click_count() - self.clicks_at_last_run
        if s.every_clicks and new >= s.every_clicks:
            return f"{new} new clicks (every {s.every_clicks})"
        if s.interval_s and time.monotonic() - self.last_run >= s.interval_s and new > 0:
            return f"{s.interval_s:.0f} s since the last retraining"
        return None

    def run_once(self, job: dict[str, Any] | None = None) -> Outcome | None:
        if job is not None:
            job["state"] = "running"
        self.last_run = time.monotonic()
        self.clicks_at_last_run = self.event_log.click_count()
        try:
            outcome = retrain(self.settings, self.event_log, self.releaser, self._shadow())
        except NotEnoughData as exc:
            log.info("retraining skipped: %s", exc)
            if job is not None:
                job.update(state="skipped", reason=str(exc))
            return None
        except Exception as exc:  # a failed retraining must not stop the service
            log.exception("retraining failed")
            if job is not None:
                job.update(state="failed", reason=f"{type(exc).__name__}: {exc}")
            return None
        write_outcome(self.settings, outcome)
        if job is not None:
            release = outcome.release
            job.update(
                state="done",
                decision=outcome.decision,
                reason=outcome.reason,
                version=release.version if release else None,
                challenger=outcome.challenger,
                champion=outcome.champion,
                online=outcome.online,
            )
        return outcome

    def train_now(self, reason: str) -> dict[str, Any]:
        """Catch up with the topics and retrain in this thread; returns the finished job
        (what ``/jobs/N`` shows: state, decision, reason, both models' numbers)."""
        job = self.jobs[self.request(reason) - 1]
        try:
            self.event_log.catch_up(self.kafka)
        except Exception as exc:  # the broker is part of the answer: say so, don't crash
            job.update(state="failed", reason=f"reading the topics failed: {exc}")
            return job
        self.run_once(job)
        return job

    def loop(self, poll_s: float = 5.0) -> None:
        while not self.stopping.is_set():
            try:
                self.event_log.catch_up(self.kafka, idle_s=1.0, max_s=60.0)
            except Exception:
                log.exception("catching up with the topics failed; retrying")
            pending = [j for j in self.jobs if j["state"] == "queued"]
            if pending:
                self.requested.clear()
                for job in pending[:-1]:
                    job.update(state="merged", reason="served by a later request")
                self.run_once(pending[-1])
                continue
            reason = self.due()
            if reason:
                self.run_once(self.jobs[self.request(reason) - 1])
                continue
            self.requested.wait(poll_s)

    def status(self) -> dict[str, Any]:
        folder = self.releaser.folder
        return {
            "model": folder.model,
            "serving": folder.serving(),
            "versions": folder.versions(),
            "logged_clicks": self.event_log.click_count(),
            "online": {
                **self.monitor.snapshot(),
                "reading": self.reader is not None and self.reader.error is None,
                "error": self.reader.error if self.reader else None,
            },
            "jobs": self.jobs[-20:],
        }


def serve_http(trainer: Trainer, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._send(200, {"ok": True})
            elif self.path == "/status":
                self._send(200, trainer.status())
            elif self.path.startswith("/jobs/"):
                tail = self.path.removeprefix("/jobs/")
                jobs = [j for j in trainer.jobs if str(j["id"]) == tail]
                self._send(200 if jobs else 404, jobs[0] if jobs else {"error": "no such job"})
            else:
                self._send(404, {"error": f"no {self.path}"})

        def do_POST(self) -> None:
            if self.path == "/train":
                self._send(202, {"id": trainer.request("requested on demand")})
            else:
                self._send(404, {"error": f"no {self.path}"})

        def log_message(self, *args: Any) -> None:
            pass  # status polls would flood the log

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="trainer-http").start()
    return server
