"""CPU time of the stack's processes during a replay, read from ``/proc`` (Linux).

A component is a process tree: Triton runs each Python-backend model in a stub process
of its own, so the ranker's and the encoder's work is in tritonserver's children, not in
tritonserver. A tree's CPU time is the user + system time of every live process in it,
plus what each has collected from children that exited and were waited for; differences
between two samples are what the tree spent in between.
"""

from __future__ import annotations

import bisect
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")


def _stat_fields(pid: int, proc: Path) -> list[str] | None:
    try:
        text = (proc / str(pid) / "stat").read_text()
    except OSError:
        return None  # gone, or not ours to read
    # The command name is in parentheses and may hold spaces: split after its last ")".
    return text.rsplit(")", 1)[1].split()


def process_tree(root: int, proc: Path = PROC) -> dict[int, list[str]]:
    """``stat`` fields of ``root`` and its live descendants, by pid; empty if ``root`` is
    not running."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name), proc)
        if fields is None:
            continue
        pid, ppid = int(entry.name), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        stats[pid] = fields
    if root not in stats:
        return {}
    tree, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            tree[pid] = stats[pid]
        todo.extend(children.get(pid, ()))
    return tree


def process_tree_cpu_s(root: int, proc: Path = PROC) -> float | None:
    """CPU seconds of ``root`` and its live descendants; None if ``root`` is not running.

    After the name, ``stat`` holds (``man 5 proc``, fields 3 on): state, ppid, ..., then
    utime, stime, cutime and cstime at fields 14-17, in clock ticks.
    """
    tree = process_tree(root, proc)
    if not tree:
        return None
    ticks = sum(sum(int(v) for v in fields[11:15]) for fields in tree.values())
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuSampler:
    """Samples the CPU seconds of named process trees on a background thread.

    ``samples`` holds ``(time.monotonic(), {name: seconds})``; :meth:`between` interpolates
    between them, so a window needs no sample of its own at its ends.
    """

    pids: Mapping[str, int]
    interval_s: float = 1.0
    read: Callable[[int], float | None] = process_tree_cpu_s
    clock: Callable[[], float] = time.monotonic
    samples: list[tuple[float, dict[str, float]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}

    def sample(self) -> None:
        now = self.clock()
        values = {}
        for name, pid in self.pids.items():
            seconds = self.read(pid)
            # A tree that died keeps its last reading: the window's sum must not fall.
            values[name] = seconds if seconds is not None else self._last.get(name, 0.0)
        self._last = values
        self.samples.append((now, values))

    def start(self) -> None:
        self.sample()
        self._thread = threading.Thread(target=self._run, name="eval-cpu", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.sample()

    def at(self, t: float) -> dict[str, float]:
        """Each tree's CPU seconds at ``t``, interpolated linearly between samples."""
        if not self.samples:
            return {name: 0.0 for name in self.pids}
        i = bisect.bisect_left(self.samples, t, key=lambda s: s[0])
        if i == 0:
            return dict(self.samples[0][1])
        if i == len(self.samples):
            return dict(self.samples[-1][1])
        (t0, v0), (t1, v1) = self.samples[i - 1], self.samples[i]
        w = (t - t0) / (t1 - t0) if t1 > t0 else 1.0
        return {name: v0[name] + w * (v1[name] - v0[name]) for name in v0}

    def between(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each tree spent from ``start`` to ``end``."""
        a, b = self.at(start), self.at(end)
        return {name: max(0.0, b[name] - a[name]) for name in b}
