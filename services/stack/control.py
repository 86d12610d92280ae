"""``up`` / ``down`` / ``status`` of the embedded stack, for the CLI and the tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

from services.stack import health
from services.stack.settings import TRITON_ADMIN_HEADER, StackSettings
from services.stack.supervisor import StackError, Supervisor, tail


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); it is not running.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def supervisor_pid(settings: StackSettings) -> int | None:
    try:
        pid = int(settings.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _pid_alive(pid) else None


def run_foreground(settings: StackSettings, on_ready: Any = None) -> int:
    """Start the stack and supervise it until SIGINT/SIGTERM; returns an exit code."""
    from services.stack.components import build_components

    settings.run_dir.mkdir(parents=True, exist_ok=True)
    other = supervisor_pid(settings)
    if other is not None:
        print(
            f"a stack is already running from {settings.run_dir} (supervisor pid {other}); "
            "`streamrec down` stops it, or set STREAMREC_RUN_DIR and ports for a second one",
            file=sys.stderr,
        )
        return 1
    settings.pid_file.write_text(str(os.getpid()))
    stop = threading.Event()
    started = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if started.is_set():
            stop.set()
        else:
            raise KeyboardInterrupt  # abort start-up; Supervisor.start() cleans up

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        supervisor = Supervisor(settings, build_components(settings))
        try:
            supervisor.start()
        except StackError as exc:
            print(f"streamrec: stack failed to start: {exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
        started.set()
        if on_ready is not None:
            on_ready(supervisor)
        try:
            supervisor.monitor(stop)
        finally:
            supervisor.stop()
        return 0
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        settings.pid_file.unlink(missing_ok=True)


def up_detached(settings: StackSettings, timeout: float | None = None) -> dict[str, Any]:
    """Start a supervisor in the background and wait until the stack is ready.

    The supervisor is double-forked (``setsid --fork``) so it belongs to no
    terminal and is not our child: it outlives `streamrec up --detach`, and a
    long-lived caller (a test session) never holds a zombie of it.
    """
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    if supervisor_pid(settings) is not None:
        raise StackError(f"a stack is already running from {settings.run_dir}")
    settings.state_file.unlink(missing_ok=True)
    settings.pid_file.unlink(missing_ok=True)
    log_path = settings.logs_dir / "supervisor.log"
    env = {**os.environ, **settings.to_env(), "PYTHONUNBUFFERED": "1"}
    with log_path.open("ab") as log_file:
        subprocess.run(
            ["setsid", "--fork", sys.executable, "-m", "services.stack", "up"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            check=True,
        )
    wait_s = timeout or settings.startup_timeout_s * 3
    deadline = time.monotonic() + wait_s
    launched = time.monotonic()
    while time.monotonic() < deadline:
        state = read_state(settings)
        pid = supervisor_pid(settings)
        if state and state.get("ready") and pid is not None and state.get("supervisor_pid") == pid:
            return state
        # Give the new process a moment to write its pid file before judging it dead.
        if pid is None and time.monotonic() - launched > 15:
            raise StackError(f"the stack failed to start; log {log_path}:\n{tail(log_path, 30)}")
        time.sleep(0.3)
    down(settings)
    raise StackError(f"the stack was not ready after {wait_s:.0f}s; see {settings.logs_dir}")


def read_state(settings: StackSettings) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(settings.state_file.read_text())
        return data
    except (OSError, ValueError):
        return None


def down(settings: StackSettings, timeout: float = 90.0) -> bool:
    """Stop the supervisor (which stops its components); True if something was running."""
    pid = supervisor_pid(settings)
    state = read_state(settings) or {}
    if pid is None:
        _kill_leftovers(state)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if _pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    _kill_leftovers(read_state(settings) or state)
    settings.pid_file.unlink(missing_ok=True)
    return True


def _kill_leftovers(state: dict[str, Any]) -> None:
    """A supervisor killed with -9 cannot stop its children; do it for it."""
    for comp in (state.get("components") or {}).values():
        pid = comp.get("pid")
        if _pid_alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)


def status(settings: StackSettings) -> dict[str, Any]:
    """Live status: each component's process and health, topics, served model versions."""
    state = read_state(settings) or {}
    pid = supervisor_pid(settings)
    components: dict[str, Any] = {}
    for name, comp in (state.get("components") or {}).items():
        alive = pid is not None and _pid_alive(comp.get("pid"))
        components[name] = {**comp, "alive": alive}
        if not alive:
            components[name]["status"] = "stopped"
    report: dict[str, Any] = {
        "running": pid is not None,
        "supervisor_pid": pid,
        "run_dir": str(settings.run_dir),
        "components": components,
    }
    if pid is None:
        return report
    if health.broker_ready(settings.kafka()):
        report["topics"] = _topic_partitions(settings)
    if health.triton_ready(settings.triton_http_url):
        report["models"] = _model_versions(settings)
    return report


def _topic_partitions(settings: StackSettings) -> dict[str, int]:
    from confluent_kafka.admin import AdminClient

    md = AdminClient(settings.kafka().confluent_config()).list_topics(timeout=5)
    return {t: len(m.partitions) for t, m in sorted(md.topics.items())}


def _model_versions(settings: StackSettings) -> list[dict[str, Any]]:
    import httpx

    # The repository index is behind Triton's admin key (see components.triton_argv).
    key = settings.admin_key()
    resp = httpx.post(
        f"{settings.triton_http_url}/v2/repository/index",
        json={},
        headers={TRITON_ADMIN_HEADER: key} if key else None,
        timeout=5,
    )
    if resp.status_code != 200:
        return []
    result: list[dict[str, Any]] = resp.json()
    return result
