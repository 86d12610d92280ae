"""The offline log: feature rows appended as parquet parts, for training.

Feast's file offline store can take pushes (``PushMode.ONLINE_AND_OFFLINE``), but in
Feast 0.67 every such push reads the whole parquet file, concatenates the new rows and
rewrites it in place: the cost of a push grows with the history (0.19 s for 100 rows,
0.54 s once 40,000 rows were logged, on this repo's 2-core box), a crash during the
rewrite loses the history, and the file must exist before the first push. So StreamRec
writes the log itself, where Feast reads it: each view's FileSource path is a folder,
and every flush adds one part to it. ``get_historical_features`` reads the folder as one
table (dask's ``read_parquet``), so point-in-time joins see every part.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from feast import FeatureStore, FeatureView, Field, FileSource
from feast.type_map import feast_value_type_to_pa

from services.features.errors import FeatureStoreError

# Written into an empty folder so reads work before the first flush (dask cannot read a
# folder without parts), and removed by the first flush: dask's division computation
# over an empty part beside full ones trips a pandas FutureWarning.
EMPTY_PART = "00000000T000000000000-empty.parquet"


@dataclass
class _Log:
    """One view's folder, the schema of its parts, and the rows waiting to be written."""

    folder: Path
    schema: pa.Schema
    pending: list[pa.Table] = field(default_factory=list)
    rows: int = 0
    since: float = 0.0  # clock() when the oldest pending rows arrived


class OfflineLog:
    """Buffers each view's pushed rows and writes them as one parquet part per flush.

    A view's buffer is flushed when it holds ``flush_rows`` rows or its oldest rows have
    waited ``flush_s`` seconds (checked when rows arrive), by :meth:`flush`, and at
    interpreter exit. Parts are written under a hidden name and renamed into place, so a
    reader never sees half a part.
    """

    def __init__(
        self,
        store: FeatureStore,
        views: Iterable[str],
        *,
        flush_rows: int = 10_000,
        flush_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flush_rows, self.flush_s, self._clock = flush_rows, flush_s, clock
        self._lock = threading.Lock()
        self._logs = {view: self._open(store, store.get_feature_view(view)) for view in views}
        # The worker never closes its store; a normal exit still writes what is pending.
        atexit.register(self.flush)

    def folder(self, view: str) -> Path:
        return self._logs[view].folder

    def append(self, view: str, frame: pd.DataFrame) -> None:
        """Add a push frame's rows to ``view``'s log; raises if they do not fit its schema."""
        log = self._logs[view]
        table = pa.Table.from_pandas(frame, schema=log.schema, preserve_index=False)
        with self._lock:
            if not log.pending:
                log.since = self._clock()
            log.pending.append(table)
            log.rows += table.num_rows
            if log.rows >= self.flush_rows or self._clock() - log.since >= self.flush_s:
                self._write(log)

    def flush(self) -> int:
        """Write every pending row now; returns how many were written."""
        with self._lock:
            return sum(self._write(log) for log in self._logs.values())

    def close(self) -> None:
        self.flush()
        atexit.unregister(self.flush)

    def _write(self, log: _Log) -> int:
        if not log.pending:
            return 0
        table = pa.concat_tables(log.pending)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        _write_part(log.folder, f"{stamp}-{uuid.uuid4().hex[:8]}.parquet", table)
        (log.folder / EMPTY_PART).unlink(missing_ok=True)
        log.pending.clear()
        log.rows = 0
        return table.num_rows

    @staticmethod
    def _open(store: FeatureStore, view: FeatureView) -> _Log:
        source = view.batch_source
        if not isinstance(source, FileSource):
            raise FeatureStoreError(f"feature view {view.name} needs a FileSource to log to")
        uri = FileSource.get_uri_for_file_path(store.config.repo_path, source.file_options.uri)
        folder = Path(uri)
        schema = _schema(view, source.timestamp_field)
        if not folder.is_dir() or not any(folder.glob("*.parquet")):
            _write_part(folder, EMPTY_PART, schema.empty_table())
        return _Log(folder, schema)


def _schema(view: FeatureView, timestamp_field: str) -> pa.Schema:
    """The parts' schema, from the view itself: join keys, event time, then features."""

    def arrow(fields: Iterable[Field]) -> list[pa.Field]:
        return [pa.field(f.name, feast_value_type_to_pa(f.dtype.to_value_type())) for f in fields]

    return pa.schema(
        [
            *arrow(view.entity_columns),
            pa.field(timestamp_field, pa.timestamp("us", tz="UTC")),
            *arrow(view.features),
        ]
    )


def _write_part(folder: Path, name: str, table: pa.Table) -> None:
    # A leading dot keeps the unfinished file out of every reader's listing; the random
    # suffix keeps writers that start together (each seeding EMPTY_PART) apart.
    tmp = folder / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, folder / name)
    except OSError as exc:
        raise FeatureStoreError(
            f"could not write the offline feature log in {folder} ({exc}). Check that "
            "STREAMREC_FEAST_DATA_DIR is writable and has space, or set "
            "STREAMREC_FEAST_OFFLINE_LOG=false to write the online store only."
        ) from exc
