"""Asking a running trainer service to retrain, and waiting for its decision.

What ``streamrec train`` and the retraining replay (``python -m services.eval
--retrain-after-warmup``) send: ``POST /train``, then ``GET /jobs/N`` until the job ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

FINISHED = ("done", "skipped", "failed", "merged")


class TrainerUnavailable(RuntimeError):
    """No trainer service answered at the URL."""


def request_training(base_url: str) -> int:
    """Queue a retraining; returns the job number. Raises :class:`TrainerUnavailable`."""
    try:
        answer = httpx.post(f"{base_url}/train", timeout=5)
        answer.raise_for_status()
        return int(answer.json()["id"])
    except httpx.HTTPError as exc:
        raise TrainerUnavailable(f"no trainer service answers at {base_url}: {exc}") from exc


def wait_for_job(
    base_url: str,
    job: int,
    timeout_s: float,
    poll_s: float = 2.0,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll ``/jobs/N`` until the job has ended; returns it. Raises ``TimeoutError``."""
    deadline = time.monotonic() + timeout_s
    while True:
        state = httpx.get(f"{base_url}/jobs/{job}", timeout=5).json()
        if state.get("state") in FINISHED:
            return state
        if time.monotonic() >= deadline:
            raise TimeoutError(f"job {job} still {state.get('state')} after {timeout_s:.0f} s")
        sleep(poll_s)


def succeeded(job: dict[str, Any]) -> bool:
    """A retraining ran and was not rejected (keeping the champion is a success)."""
    return job.get("state") == "done" and job.get("decision") != "rejected"
