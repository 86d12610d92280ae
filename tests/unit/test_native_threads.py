"""The worker's native thread pools are capped (services/recommender/threads.py).

Each check runs in a fresh interpreter: the limit is process-wide, and the defect it
guards against depends on what was imported before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def _run(code: str, **env: str) -> dict[str, int]:
    environ = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={**environ, **env},
    )
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_limit_set_before_numpy_is_imported_still_reaches_its_blas() -> None:
    # The worker set threadpoolctl's limit before anything had imported numpy: it found
    # no BLAS loaded, limited nothing, and OpenBLAS ran two spinning threads.
    sizes = _run(
        "import json, sys\n"
        "assert 'numpy' not in sys.modules\n"
        "from services.recommender.threads import limit_native_threads\n"
        "limit_native_threads(1)\n"
        "from threadpoolctl import threadpool_info\n"
        "print(json.dumps({p['filepath']: p['num_threads'] for p in threadpool_info()}))\n"
    )
    assert any("openblas" in path for path in sizes), sizes
    assert set(sizes.values()) == {1}, sizes


def test_the_report_names_each_pool_and_torchs_own() -> None:
    sizes = _run(
        "import json, torch\n"
        "from services.recommender.threads import limit_native_threads\n"
        "print(json.dumps(limit_native_threads(1)))\n"
    )
    assert sizes["torch"] == 1
    assert any(name.startswith("openblas:") for name in sizes), sizes
    assert set(sizes.values()) == {1}, sizes


def test_the_report_reads_the_pools_as_they_are() -> None:
    # What /healthz shows with STREAMREC_NATIVE_THREADS=0: the pools as loaded, here two
    # BLAS threads.
    sizes = _run(
        "import json, numpy\n"
        "from services.recommender.threads import pool_sizes\n"
        "print(json.dumps(pool_sizes()))\n",
        OPENBLAS_NUM_THREADS="2",
    )
    assert [n for name, n in sizes.items() if name.startswith("openblas:")] == [2], sizes
