"""Progress for long replays: a tqdm bar when tqdm is installed, else a line every few seconds."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO


class Progress:
    """A counter towards ``total`` that shows itself; safe to update from one other thread."""

    def __init__(
        self,
        desc: str,
        total: int | None,
        unit: str = "ev",
        *,
        enabled: bool = True,
        position: int = 0,
        stream: TextIO | None = None,
        every_s: float = 5.0,
    ) -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.n = 0
        self._stream = stream or sys.stderr
        self._every_s = every_s
        self._last_line = time.monotonic()
        self._lock = threading.Lock()
        self._bar: Any = None
        self._enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._bar = tqdm(
                total=total, desc=desc, unit=unit, position=position, file=self._stream
            )

    def update(self, n: int = 1) -> None:
        with self._lock:
            self.n += n
            if self._bar is not None:
                self._bar.update(n)
            elif self._enabled and time.monotonic() - self._last_line >= self._every_s:
                self._last_line = time.monotonic()
                self._line()

    def close(self) -> None:
        with self._lock:
            if self._bar is not None:
                self._bar.close()
            elif self._enabled:
                self._line()

    def _line(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}", file=self._stream, flush=True)
