"""The Feast store in a process of its own: the worker's feature writes off its GIL.

Flat out, the worker is bound by one core, the one its interpreter lock allows
(docs/BENCHMARKS.md, "Session 18"). Its feature writes ran in threads of the same
process: Feast's row handling, the latest-event guard and the offline log's parquet
appends held the lock the ranking wanted, while the machine's second core sat a third
idle. Here a child process owns the :class:`FeastFeatureStore`, and the worker sends it
each micro-batch's rows over a pipe and waits for the count: the same calls, the same
store, the same guard and lock (``FeastFeatureStore`` already serialises writers of one
store across processes), on the other core. The worker's part is pickling the rows.

Errors keep their meaning. Opening the store happens in the child before the worker
goes on, so a store that cannot be opened still stops the worker at start-up with Feast's
message. A write that fails in the child raises :class:`FeatureStoreError` with the
child's message, and the worker retries it as before. A child that died (killed, out of
memory) is replaced on the next call; a write it was in the middle of raises, so the
caller's retry writes it again (the guard makes that harmless). When the worker exits,
or when the child finds the pipe closed because the worker died, the child writes the
offline log's pending rows and exits.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import multiprocessing as mp
import os
import signal
import threading
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from services.features.errors import FeatureStoreError
from services.features.model import ItemActivityFeatures, ItemFeatures, UserFeatures
from services.features.settings import FeatureSettings

__all__ = ["FeatureWriterProcess"]

log = logging.getLogger(__name__)

# The store's methods the child runs; anything else is refused.
_METHODS = frozenset(
    {
        "push_user_features",
        "push_item_features",
        "push_item_activity",
        "get_user_features",
        "get_item_features",
        "get_item_activity",
        "flush_offline",
    }
)
# Opening the store imports Feast and reads (or applies) the registry: seconds here.
START_TIMEOUT_S = 180.0
# What close() gives the child to write the offline log's pending rows.
CLOSE_TIMEOUT_S = 60.0


class FeatureWriterProcess:
    """``OnlineFeatureStore`` whose calls run in a child process owning a Feast store.

    Thread-safe: calls are serialised over the one pipe (the worker's clicks and items
    agents both write). Each call blocks its thread until the child answers, as a call on
    :class:`FeastFeatureStore` blocks; an asyncio caller runs it in an executor.
    """

    def __init__(
        self, settings: FeatureSettings, *, start_timeout_s: float = START_TIMEOUT_S
    ) -> None:
        self._settings = settings
        self._start_timeout_s = start_timeout_s
        # Spawned, not forked: the worker holds threads (Kafka clients, gRPC) by the time
        # a replacement is started, and a fork copies their locks in whatever state.
        self._context = mp.get_context("spawn")
        self._lock = threading.Lock()
        self._process: BaseProcess | None = None
        self._conn: Connection | None = None
        self._closed = False
        self.restarts = 0  # children replaced after one died
        self._start()
        # A worker never closes its store; a normal exit still flushes the offline log.
        atexit.register(self.close)

    @property
    def pid(self) -> int | None:
        """The child's pid (None once closed)."""
        return self._process.pid if self._process is not None else None

    def push_user_features(self, rows: Sequence[UserFeatures]) -> int:
        return int(self._call("push_user_features", list(rows)))

    def push_item_features(self, rows: Sequence[ItemFeatures]) -> int:
        return int(self._call("push_item_features", list(rows)))

    def push_item_activity(self, rows: Sequence[ItemActivityFeatures]) -> int:
        return int(self._call("push_item_activity", list(rows)))

    def get_user_features(self, user_ids: Sequence[str]) -> dict[str, UserFeatures | None]:
        result: dict[str, UserFeatures | None] = self._call("get_user_features", list(user_ids))
        return result

    def get_item_features(self, item_ids: Sequence[str]) -> dict[str, ItemFeatures | None]:
        result: dict[str, ItemFeatures | None] = self._call("get_item_features", list(item_ids))
        return result

    def get_item_activity(self, item_ids: Sequence[str]) -> dict[str, ItemActivityFeatures | None]:
        result: dict[str, ItemActivityFeatures | None] = self._call(
            "get_item_activity", list(item_ids)
        )
        return result

    def flush_offline(self) -> int:
        """Write the offline log's pending rows now; returns how many."""
        return int(self._call("flush_offline"))

    def close(self) -> None:
        """Ask the child to flush the offline log and exit; kill it if it does not."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            atexit.unregister(self.close)
            process, conn = self._process, self._conn
            self._process = self._conn = None
            if process is None or conn is None:
                return
            try:
                conn.send(("close", ()))
                if conn.poll(CLOSE_TIMEOUT_S):
                    conn.recv()
            except (EOFError, OSError):
                pass  # it had already gone
            finally:
                conn.close()
            process.join(CLOSE_TIMEOUT_S)
            if process.is_alive():
                log.warning("the feature writer (pid %s) did not exit; killing it", process.pid)
                process.kill()
                process.join()

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            if self._closed:
                raise FeatureStoreError("the feature store was closed")
            if self._process is None or not self._process.is_alive():
                self._replace()
            process, conn = self._process, self._conn
            assert process is not None and conn is not None
            try:
                conn.send((method, args))
                kind, value = conn.recv()
            except (EOFError, OSError) as exc:  # the child died mid-call
                process.join(1.0)
                self._discard()
                raise FeatureStoreError(
                    f"the feature writer process (pid {process.pid}) exited during "
                    f"{method} (exit code {process.exitcode}); a new one takes the retry"
                ) from exc
        if kind == "error":
            raise FeatureStoreError(value)
        return value

    def _replace(self) -> None:
        """A new child for one that died (holding ``_lock``)."""
        old = self._process
        if old is not None:
            log.warning(
                "the feature writer (pid %s) exited with code %s; starting a new one",
                old.pid,
                old.exitcode,
            )
            self._discard()
        self._start()
        self.restarts += 1

    def _discard(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._process = self._conn = None

    def _start(self) -> None:
        ours, theirs = self._context.Pipe()
        process = self._context.Process(
            target=_serve,
            args=(theirs, self._settings, logging.getLogger().level),
            name="feature-writer",
        )
        process.start()
        theirs.close()  # so the child's exit reads as EOF here
        try:
            if not ours.poll(self._start_timeout_s):
                raise FeatureStoreError(
                    f"the feature writer did not open the store within {self._start_timeout_s:.0f}s"
                )
            kind, value = ours.recv()
        except EOFError:
            process.join(5.0)
            ours.close()
            raise FeatureStoreError(
                f"the feature writer exited (code {process.exitcode}) before it opened the "
                "store; its log says why"
            ) from None
        except BaseException:
            process.kill()
            process.join()
            ours.close()
            raise
        if kind == "error":
            process.join(5.0)
            ours.close()
            raise FeatureStoreError(value)
        self._process, self._conn = process, ours
        log.info("feature writer started (pid %s)", process.pid)


def _serve(conn: Connection, settings: FeatureSettings, log_level: int) -> None:
    """The child: open the store, then answer calls until told to close or orphaned."""
    # A Ctrl-C in a terminal reaches the whole process group; the worker's own shutdown
    # closes this process after its last write, which is when the offline log is flushed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        level=log_level,
        format=f"%(asctime)s %(levelname)s feature-writer[{os.getpid()}]: %(message)s",
    )
    from services.features.feast_store import FeastFeatureStore

    try:
        store = FeastFeatureStore(settings)
    except Exception as exc:
        conn.send(("error", _describe(exc)))
        conn.close()
        return
    conn.send(("ready", os.getpid()))
    try:
        while True:
            try:
                method, args = conn.recv()
            except EOFError:  # the worker is gone: flush what is pending and leave
                break
            if method == "close":
                break
            if method not in _METHODS:
                conn.send(("error", f"the feature writer has no method {method!r}"))
                continue
            try:
                result = getattr(store, method)(*args)
            except Exception as exc:  # sent back whole: the worker retries or reports it
                conn.send(("error", _describe(exc)))
            else:
                conn.send(("ok", result))
    finally:
        try:
            store.close()
        finally:
            with contextlib.suppress(OSError):
                conn.send(("closed", None))
            conn.close()


def _describe(exc: BaseException) -> str:
    # FeatureStoreError's message already says what to do; anything else gets its type.
    if isinstance(exc, FeatureStoreError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
