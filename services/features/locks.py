"""Cross-process locks that make the feature writer's read-compare-write atomic.

Feast has no conditional write, so the latest-event-wins check (read the stored time,
then push) is only a guarantee if no other writer runs in between. The lock lives where
the data lives: a file next to the SQLite database, a key in the Redis database.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from services.features.errors import FeatureStoreError

log = logging.getLogger(__name__)


class WriteLock(Protocol):
    """Mutual exclusion between every process writing the same online store."""

    def hold(self) -> AbstractContextManager[None]: ...


class NullLock:
    """No exclusion, for a store only one thread of one process writes (tests)."""

    @contextmanager
    def hold(self) -> Iterator[None]:
        yield


class FileLock:
    """An exclusive ``flock`` on a file: covers every process on this host.

    flock belongs to the open file, so two threads of one process exclude each other too.
    The kernel drops the lock when its holder dies, so a crash never leaves it stuck.
    """

    def __init__(self, path: Path, timeout_s: float = 30.0) -> None:
        self.path = path
        self.timeout_s = timeout_s

    @contextmanager
    def hold(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            deadline = time.monotonic() + self.timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise FeatureStoreError(
                            f"another process has held {self.path} for over "
                            f"{self.timeout_s:.0f}s; find it with `fuser {self.path}`"
                        ) from None
                    time.sleep(0.005)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


class RedisLock:
    """A Redis lock (redis-py's SET NX PX recipe): covers writers on every host.

    ``expire_s`` frees the lock if its holder dies; a push takes milliseconds, so a
    holder that outlives it has hung and the guarantee is the least of its problems.
    """

    def __init__(
        self, client: Any, name: str, expire_s: float = 30.0, timeout_s: float = 30.0
    ) -> None:
        self._client = client
        self.name = name
        self.expire_s = expire_s
        self.timeout_s = timeout_s

    @contextmanager
    def hold(self) -> Iterator[None]:
        from redis.exceptions import LockError

        lock = self._client.lock(
            self.name, timeout=self.expire_s, blocking_timeout=self.timeout_s, sleep=0.01
        )
        if not lock.acquire():
            raise FeatureStoreError(
                f"another writer has held Redis key {self.name!r} for over "
                f"{self.timeout_s:.0f}s; if no writer is alive, delete the key"
            )
        try:
            yield
        finally:
            try:
                lock.release()
            except LockError:
                # It expired while held and another writer may own it now: not ours to free.
                log.warning("Redis lock %s expired before release; push took too long", self.name)
