"""Native thread pools (BLAS, OpenMP) of the worker: one thread each by default.

The worker's matrix products are small (a micro-batch against the catalog's embeddings),
and a pool's idle threads spin for a while after each product before they sleep. On a
2-core machine that spinning took a whole core from tansu and Triton: at 200 clicks/s
the worker used 134% CPU, a third of it in OpenBLAS's ``blas_thread_server``
(docs/BENCHMARKS.md, "Session 16").

threadpoolctl limits only the libraries already loaded: called before numpy is
imported it changes nothing, which is how the worker ran with two BLAS threads for
months. :func:`limit_native_threads` therefore loads them first, and reports what it
found so /healthz can show it.
"""

from __future__ import annotations

import sys
from typing import Any


def limit_native_threads(threads: int) -> dict[str, int]:
    """Cap every loaded BLAS and OpenMP pool (and torch's, if torch is loaded) at
    ``threads``; returns each pool's thread count afterwards (see :func:`pool_sizes`)."""
    import numpy  # noqa: F401  # loads OpenBLAS, so that the limit below reaches it
    from threadpoolctl import threadpool_limits

    # Kept for the life of the process: threadpool_limits restores only when used as a
    # context manager or asked to.
    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        # torch's intra-op pool is its own, whatever OpenMP's limit says.
        torch.set_num_threads(threads)
    return pool_sizes()


def pool_sizes() -> dict[str, int]:
    """Thread count per loaded pool, by API and library ("openblas:libscipy_openblas64_");
    torch's intra-op pool as "torch" when torch is loaded."""
    from threadpoolctl import threadpool_info

    sizes: dict[str, int] = {}
    for pool in threadpool_info():
        info: dict[str, Any] = pool
        library = str(info["filepath"]).rsplit("/", 1)[-1].split("-", 1)[0]
        sizes[f"{info['internal_api']}:{library}"] = int(info["num_threads"])
    torch = sys.modules.get("torch")
    if torch is not None:
        sizes["torch"] = int(torch.get_num_threads())
    return sizes
