"""The supervisor with real (tiny) processes: order, health, restart, clean stop."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest

from services.stack.components import Component
from services.stack.settings import StackSettings
from services.stack.supervisor import StackError, Supervisor


def proc(name: str, script: str, healthy=lambda: True) -> Component:  # type: ignore[no-untyped-def]
    return Component(
        name=name,
        argv=[sys.executable, "-c", script],
        healthy=healthy,
        endpoint=name,
        stop_timeout_s=5,
    )


def settings(tmp_path: Path, **kw: object) -> StackSettings:
    return StackSettings(run_dir=tmp_path, startup_timeout_s=10, **kw)  # type: ignore[arg-type]


SLEEP = (
    "import time, signal, sys; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0)); "
    "print('up', flush=True); time.sleep(60)"
)


def test_starts_in_order_and_stops_in_reverse(tmp_path: Path) -> None:
    order: list[str] = []

    def printed_up(name: str) -> bool:
        log = tmp_path / "logs" / f"{name}.log"
        return log.exists() and "up" in log.read_text()

    comps = [proc(n, SLEEP, healthy=lambda n=n: printed_up(n)) for n in ("a", "b")]
    for c in comps:
        c.after_start = lambda n=c.name: order.append(n)  # type: ignore[misc]
    sup = Supervisor(settings(tmp_path), comps)
    sup.start()
    assert order == ["a", "b"]
    state = sup.state()
    assert state["ready"] and all(c["status"] == "healthy" for c in state["components"].values())
    pids = [r.proc.pid for r in sup.running]  # type: ignore[union-attr]
    sup.stop()
    assert all(r.proc.poll() is not None for r in sup.running)  # type: ignore[union-attr]
    assert len(set(pids)) == 2
    assert "up" in (tmp_path / "logs" / "a.log").read_text()


def test_a_component_that_dies_while_starting_fails_with_its_log(tmp_path: Path) -> None:
    comps = [
        proc("a", SLEEP),
        proc("bad", "import sys; print('boom: port in use'); sys.exit(3)", healthy=lambda: False),
    ]
    sup = Supervisor(settings(tmp_path), comps)
    with pytest.raises(StackError, match="bad exited with code 3") as info:
        sup.start()
    assert "boom: port in use" in str(info.value)
    assert sup.running[0].proc.poll() is not None  # type: ignore[union-attr]  # 'a' was stopped too


def test_crashed_component_is_restarted(tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    script = (
        f"import pathlib, time, sys; p = pathlib.Path({str(marker)!r}); "
        "n = int(p.read_text()) if p.exists() else 0; p.write_text(str(n + 1)); "
        "time.sleep(0.5 if n == 0 else 60)"
    )
    sup = Supervisor(settings(tmp_path), [proc("flaky", script, healthy=marker.exists)])
    sup.start()
    stop = threading.Event()
    t = threading.Thread(target=sup.monitor, args=(stop, 0.1))
    t.start()
    deadline = time.monotonic() + 10
    while marker.read_text() != "2" and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    t.join()
    assert marker.read_text() == "2"
    assert sup.state()["components"]["flaky"]["restarts"] == 1
    sup.stop()


def test_gives_up_after_max_restarts(tmp_path: Path) -> None:
    sup = Supervisor(
        settings(tmp_path, max_restarts=1), [proc("dies", "import time; time.sleep(0.3)")]
    )
    sup.start()
    stop = threading.Event()
    t = threading.Thread(target=sup.monitor, args=(stop, 0.1))
    t.start()
    deadline = time.monotonic() + 15
    while sup.state()["components"]["dies"]["status"] != "failed" and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    t.join()
    assert sup.state()["components"]["dies"]["status"] == "failed"
    sup.stop()
