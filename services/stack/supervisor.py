"""Start the stack's processes in order, keep them healthy, and stop them cleanly.

The supervisor owns the run directory: one log file per component under
``logs/``, and ``state.json``, rewritten atomically, which ``streamrec status``
reads. A component that exits unexpectedly is restarted with backoff, up to
``max_restarts`` within ``restart_window_s``; after that it is marked failed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from services.stack.components import Component
from services.stack.settings import StackSettings

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """The stack could not start; the message names the component and its log."""


@dataclass
class _Running:
    component: Component
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    status: str = "stopped"  # starting | healthy | unhealthy | restarting | failed | stopped
    restarts: deque[float] = field(default_factory=deque)
    last_error: str | None = None


def tail(path: Path, lines: int = 20) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16_384))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class Supervisor:
    def __init__(self, settings: StackSettings, components: list[Component]) -> None:
        self.settings = settings
        settings.logs_dir.mkdir(parents=True, exist_ok=True)
        self.running = [
            _Running(component=c, log_path=settings.logs_dir / f"{c.name}.log") for c in components
        ]
        self.started_at = datetime.now(UTC)
        self.ready = False
        self._lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start every component in order, waiting for each to turn healthy."""
        try:
            for r in self.running:
                self._launch(r)
                self._await_healthy(r, self.settings.startup_timeout_s)
            self.ready = True
        except BaseException:
            self.stop()
            raise
        finally:
            self.write_state()

    def _launch(self, r: _Running) -> None:
        if r.log_file is not None:
            r.log_file.close()  # a restart reopens the same log
        r.log_file = r.log_path.open("ab")
        r.log_file.write(f"\n=== start {datetime.now(UTC).isoformat()} ===\n".encode())
        r.log_file.flush()
        log.info("starting %s", r.component.name)
        if r.component.before_start is not None:
            r.component.before_start()
        r.proc = subprocess.Popen(
            r.component.argv,
            env=r.component.env,
            stdout=r.log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # Own process group: a Ctrl-C in the terminal reaches the supervisor only,
            # which then stops components in reverse order.
            start_new_session=True,
        )
        r.status = "starting"
        self.write_state()

    def _await_healthy(self, r: _Running, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        assert r.proc is not None
        while time.monotonic() < deadline:
            if r.proc.poll() is not None:
                r.status = "failed"
                raise StackError(
                    f"{r.component.name} exited with code {r.proc.returncode} while starting; "
                    f"log {r.log_path}:\n{tail(r.log_path)}"
                )
            if r.component.healthy():
                if r.component.after_start is not None:
                    r.component.after_start()
                r.status = "healthy"
                log.info("%s healthy at %s", r.component.name, r.component.endpoint)
                self.write_state()
                return
            time.sleep(0.25)
        r.status = "failed"
        raise StackError(
            f"{r.component.name} did not turn healthy within {timeout:.0f}s; "
            f"log {r.log_path}:\n{tail(r.log_path)}"
        )

    def monitor(self, stop: threading.Event, interval: float = 1.0) -> None:
        """Restart crashed components and refresh their health until ``stop`` is set."""
        last_probe = 0.0
        while not stop.wait(interval):
            probe = time.monotonic() - last_probe > 5.0
            for r in self.running:
                if r.proc is None or r.status == "failed":
                    continue
                code = r.proc.poll()
                if code is not None:
                    self._restart(r, code)
                elif probe:
                    r.status = "healthy" if r.component.healthy() else "unhealthy"
            if probe:
                last_probe = time.monotonic()
            self.write_state()

    def _restart(self, r: _Running, code: int) -> None:
        now = time.monotonic()
        while r.restarts and now - r.restarts[0] > self.settings.restart_window_s:
            r.restarts.popleft()
        r.last_error = f"exited with code {code}"
        if len(r.restarts) >= self.settings.max_restarts:
            r.status = "failed"
            log.error(
                "%s exited (code %s) %d times in %.0fs; giving up. Log: %s",
                r.component.name,
                code,
                len(r.restarts) + 1,
                self.settings.restart_window_s,
                r.log_path,
            )
            return
        r.restarts.append(now)
        r.status = "restarting"
        log.warning("%s exited with code %s; restarting", r.component.name, code)
        time.sleep(min(2 ** len(r.restarts) * 0.25, 10.0))
        self._launch(r)
        try:
            self._await_healthy(r, self.settings.startup_timeout_s)
        except StackError as exc:
            r.last_error = str(exc)
            r.status = "unhealthy"

    def stop(self) -> None:
        """Stop components in reverse start order: workers finish before the broker goes."""
        for r in reversed(self.running):
            proc = r.proc
            if proc is None:
                continue
            if proc.poll() is None:
                log.info("stopping %s", r.component.name)
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=r.component.stop_timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", r.component.name)
                    proc.kill()
                    proc.wait(timeout=5)
            r.status = "stopped"
            if r.log_file is not None:
                r.log_file.close()
                r.log_file = None
        self.ready = False
        self.write_state()

    # -- state -------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        return {
            "supervisor_pid": os.getpid(),
            "started_at": self.started_at.isoformat(),
            "ready": self.ready,
            "settings": json.loads(self.settings.model_dump_json()),
            "components": {
                r.component.name: {
                    "pid": r.proc.pid if r.proc else None,
                    "status": r.status,
                    "endpoint": r.component.endpoint,
                    "restarts": len(r.restarts),
                    "last_error": r.last_error,
                    "log": str(r.log_path),
                }
                for r in self.running
            },
        }

    def write_state(self) -> None:
        with self._lock:
            path = self.settings.state_file
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.state(), indent=2))
            tmp.replace(path)
