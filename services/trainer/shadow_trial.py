"""A challenger's shadow trial: served to nobody, judged by everybody's next click.

Between the offline verdict and the release, the challenger is loaded as
``<model>-shadow`` (:meth:`Releaser.shadow`) for up to ``window_s`` seconds or until
``min_judged`` clicks judged both it and the served version. Its online HR@10 against
the served version's on those same clicks goes into the decision record and, with
``shadow_rule``, into the decision itself (:func:`services.trainer.online.shadow_verdict`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.trainer.online import OnlineMonitor, PairedTally
from services.trainer.release import Releaser


@dataclass(frozen=True)
class ShadowResult:
    label: str
    tally: PairedTally
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "seconds": round(self.seconds, 1), **self.tally.to_dict()}


class ShadowTrial:
    def __init__(
        self,
        releaser: Releaser,
        monitor: OnlineMonitor,
        window_s: float,
        min_judged: int,
        poll_s: float = 1.0,
        stopping: threading.Event | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.releaser, self.monitor = releaser, monitor
        self.window_s, self.min_judged, self.poll_s = window_s, min_judged, poll_s
        # Set when the service is asked to stop: the trial ends at once, so the shadow is
        # unloaded before the process is killed.
        self.stopping = stopping or threading.Event()
        self._clock, self._sleep = clock, sleep

    def __call__(self, staged: Path) -> ShadowResult:
        # Unique per trial: verdicts of an earlier challenger never count for this one.
        label = f"{self.releaser.model}:challenger-{time.time_ns() // 1_000_000}"
        with self.releaser.shadow(staged, label):
            started = self._clock()  # the window counts from when it serves
            while self._clock() - started < self.window_s and not self.stopping.is_set():
                if self.monitor.paired(label).judged >= self.min_judged:
                    break
                self._sleep(self.poll_s)
        return ShadowResult(label, self.monitor.paired(label), self._clock() - started)
