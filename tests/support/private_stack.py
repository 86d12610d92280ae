"""A whole stack of one test's own: its ports, run folder and feature store.

Fault tests kill and stop its processes, which must never touch the session's shared
`stack` (every later test would see the damage). Start one with :func:`private_stack`;
:func:`pid_of` and :func:`kill9` reach its components through the supervisor's state file.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from services.stack.control import down, read_state, up_detached
from services.stack.settings import StackSettings
from tests.support.infra import free_ports


def private_settings(run_dir: Path, **overrides: Any) -> StackSettings:
    """Settings on free ports and ``run_dir``; the trainer and dashboard are off unless
    ``overrides`` turn them on."""
    # The last port starts a run free for every worker (they listen on consecutive ones).
    ports = free_ports(7, run=int(overrides.get("workers", 1)))
    fields: dict[str, Any] = {
        "broker_port": ports[0],
        "triton_http_port": ports[1],
        "triton_grpc_port": ports[2],
        "triton_metrics_port": ports[3],
        "trainer_port": ports[4],
        "dashboard_port": ports[5],
        "worker_web_port": ports[6],
        "run_dir": run_dir,
        "topic_partitions": 4,
        "trainer": False,
        "dashboard": False,
    }
    fields.update(overrides)
    return StackSettings(**fields)


@contextmanager
def private_stack(
    run_dir: Path, env: dict[str, str] | None = None, **overrides: Any
) -> Iterator[StackSettings]:
    """Start a stack with `up --detach`, yield its settings, stop it with `down`.

    ``env`` adds environment variables for every component (worker and trainer settings
    are read from the environment). On the way out the tail of any log holding a
    traceback is printed, so a failing test shows what its processes said.
    """
    settings = private_settings(run_dir, **overrides)
    extra = {"STREAMREC_FEAST_DATA_DIR": str(run_dir / "feast"), **(env or {})}
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        up_detached(settings)
        try:
            yield settings
        finally:
            down(settings)
            for log in sorted(settings.logs_dir.glob("*.log")):
                text = log.read_text(errors="replace")
                if "Traceback" in text:
                    print(f"--- {log.name} (tail) ---\n{text[-3000:]}")
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def pid_of(settings: StackSettings, component: str) -> int:
    """The running pid of a component ("broker", "tritonserver", "worker-0", ...)."""
    state = read_state(settings) or {}
    info = state.get("components", {}).get(component) or {}
    pid = info.get("pid")
    if not pid:
        raise LookupError(f"{component} has no pid in {settings.state_file}: {info}")
    return int(pid)


def kill9(settings: StackSettings, component: str) -> int:
    """SIGKILL a component (no clean shutdown, no final commit); returns the killed pid."""
    pid = pid_of(settings, component)
    os.kill(pid, signal.SIGKILL)
    return pid


def wait_restarted(
    settings: StackSettings, component: str, old_pid: int, timeout: float = 120
) -> int:
    """Wait until the supervisor runs ``component`` under a new pid; returns it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = pid_of(settings, component)
        except LookupError:
            pid = None
        if pid is not None and pid != old_pid:
            return pid
        time.sleep(0.3)
    raise TimeoutError(f"{component} was not restarted within {timeout:.0f}s")


def worker_health(settings: StackSettings, index: int = 0) -> dict[str, Any]:
    """The /healthz of worker ``index`` (workers listen on consecutive ports)."""
    port = settings.worker_web_port + index
    body: dict[str, Any] = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).json()
    return body
