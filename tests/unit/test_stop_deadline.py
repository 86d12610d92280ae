"""A worker whose stop hangs exits on its own, with every thread's stack in its log.

Session 15: a worker that stopped on skipped messages hung in Faust's stop for minutes,
its partitions read by nobody, because the stack's supervisor restarts a worker only
once it has exited (services/recommender/transport.py, ``App.on_stop``).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

from services.recommender.transport import STOP_OVERDUE_EXIT

HANGING_STOP = textwrap.dedent(
    """
    import asyncio, logging, sys
    import faust
    from services.recommender.transport import App

    logging.basicConfig(level=logging.INFO)

    async def hang(self):  # Faust's own stop, stuck (as it was waiting for its streams)
        await asyncio.sleep(60)

    faust.App.on_stop = hang
    app = App("stop-deadline", broker="kafka://127.0.0.1:1")
    app.stop_timeout_s = float(sys.argv[1])
    asyncio.run(app.on_stop())
    print("stop returned")
    """
)


def _run(timeout_s: float) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-c", HANGING_STOP, str(timeout_s)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run, time.monotonic() - started


def test_a_stop_that_overruns_its_deadline_ends_the_process_with_the_stacks() -> None:
    run, took = _run(1.0)
    assert run.returncode == STOP_OVERDUE_EXIT, run.stderr[-2000:]
    assert "stop returned" not in run.stdout
    assert "the worker's stop has not finished after 1s" in run.stderr
    # faulthandler's dump: the main thread, stuck in the event loop's wait.
    assert "(most recent call first)" in run.stderr and "selectors.py" in run.stderr
    assert took < 60, "it must not wait for the hung stop"
