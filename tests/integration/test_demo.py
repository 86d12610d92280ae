"""`streamrec demo`, the newcomer's first command, end to end on a stack of its own.

Its own stack (ports and run dir): the demo publishes the whole ml-100k catalog, which
would change the catalog every other test on the shared stack ranks from.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.infra import free_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_answers_every_click_and_stops_its_stack(tmp_path: Path) -> None:
    ports = free_ports(7)
    names = ("BROKER", "TRITON_HTTP", "TRITON_GRPC", "TRITON_METRICS", "WORKER_WEB")
    env = {
        **os.environ,
        "STREAMREC_RUN_DIR": str(tmp_path / "run"),
        "STREAMREC_FEAST_DATA_DIR": str(tmp_path / "feast"),
        **{f"STREAMREC_{name}_PORT": str(port) for name, port in zip(names, ports, strict=False)},
        "STREAMREC_TRAINER_PORT": str(ports[5]),
        "STREAMREC_DASHBOARD_PORT": str(ports[6]),
        # The stack serves the checkout's triton_models/: its trainer must never publish there.
        "STREAMREC_TRAINER_MIN_CLICKS": "1000000",
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--clicks", "300", "--rate", "200"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    assert "300 clicks sent, 300 answered, 0 dead-lettered" in out, out[-3000:]
    # Recommendations are shown as they arrive, with titles and reasons.
    assert re.search(r"after a click on «.+»:", out), out[-3000:]
    assert "stopping the stack" in out
    # It ran from this run dir, and stopped: the supervisor removes its pid file on a
    # clean stop.
    assert (tmp_path / "run" / "logs" / "worker-0.log").exists()
    assert not (tmp_path / "run" / "supervisor.pid").exists()
