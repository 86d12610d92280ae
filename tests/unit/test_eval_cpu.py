"""CPU time of the stack's process trees (a fake /proc) and the sampler's windows."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from services.eval.cpu import CpuSampler, process_tree_cpu_s


def fake_proc(root: Path, procs: dict[int, tuple[int, int, int, int, int]]) -> Path:
    """``pid -> (ppid, utime, stime, cutime, cstime)`` as /proc/<pid>/stat files."""
    for pid, (ppid, utime, stime, cutime, cstime) in procs.items():
        (root / str(pid)).mkdir()
        # The name may hold spaces and parentheses: only the last ")" ends it.
        fields = ["S", ppid, 1, 1, 0, -1, 0, 0, 0, 0, 0, utime, stime, cutime, cstime, 20, 0]
        (root / str(pid) / "stat").write_text(f"{pid} (odd (name) x) " + " ".join(map(str, fields)))
    (root / "self").mkdir()  # not a pid: skipped
    return root


def test_a_tree_is_its_processes_and_all_their_descendants(tmp_path: Path) -> None:
    tick = os.sysconf("SC_CLK_TCK")
    proc = fake_proc(
        tmp_path,
        {
            10: (1, 100, 50, 0, 0),  # tritonserver
            11: (10, 200, 10, 5, 5),  # its Python-backend stub (with a reaped child)
            12: (11, 30, 0, 0, 0),  # a grandchild
            20: (1, 1000, 0, 0, 0),  # another tree
        },
    )
    assert process_tree_cpu_s(10, proc) == pytest.approx((150 + 220 + 30) / tick)
    assert process_tree_cpu_s(12, proc) == pytest.approx(30 / tick)
    assert process_tree_cpu_s(99, proc) is None


def test_the_sampler_interpolates_windows_and_keeps_a_dead_trees_last_reading() -> None:
    now = [0.0]
    readings = {"worker-0": [0.0, 2.0, 5.0, None], "tritonserver": [0.0, 1.0, 1.0, 3.0]}
    step = {"i": 0}

    def read(pid: int) -> float | None:
        name = "worker-0" if pid == 1 else "tritonserver"
        return readings[name][step["i"]]

    sampler = CpuSampler({"worker-0": 1, "tritonserver": 2}, read=read, clock=lambda: now[0])
    for i, t in enumerate((0.0, 1.0, 2.0, 3.0)):
        step["i"], now[0] = i, t
        sampler.sample()
    assert sampler.between(0.0, 2.0) == {"worker-0": 5.0, "tritonserver": 1.0}
    assert sampler.between(0.5, 1.5)["worker-0"] == pytest.approx(2.5)  # 1.0 -> 3.5
    # The worker died before the last sample: it keeps 5.0, the window does not go negative.
    assert sampler.between(2.0, 3.0) == {"worker-0": 0.0, "tritonserver": 2.0}
    assert sampler.between(-5.0, 10.0) == {"worker-0": 5.0, "tritonserver": 3.0}
