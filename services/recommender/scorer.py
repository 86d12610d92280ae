"""Scoring candidates: the Triton-served model, a local fallback, and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models.candidate_features import BASELINE_WEIGHTS

log = logging.getLogger(__name__)

INPUT, OUTPUT = "FEATURES", "SCORES"


class ScorerError(RuntimeError):
    """The scorer could not answer (unavailable, timed out, or a malformed reply)."""


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray  # [batch, candidates]
    model_version: str


class Scorer(Protocol):
    async def score(self, features: np.ndarray) -> Scored: ...


class LinearScorer:
    """The baseline weights in numpy: the fallback when Triton is down, and a test double."""

    version = "fallback-linear"

    def __init__(self, weights: tuple[float, ...] = BASELINE_WEIGHTS) -> None:
        self.weights = np.asarray(weights, np.float32)

    async def score(self, features: np.ndarray) -> Scored:
        return Scored(features @ self.weights, self.version)


class TritonScorer:
    """Asks Triton's ``scorer`` model over gRPC; one request per micro-batch."""

    def __init__(self, url: str, model: str = "scorer", timeout_s: float = 2.0) -> None:
        import tritonclient.grpc.aio as grpcclient

        self._mod = grpcclient
        # The aio client binds to the running event loop: create it on first use.
        self._client: grpcclient.InferenceServerClient | None = None
        self.url, self.model, self.timeout_s = url, model, timeout_s

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._mod.InferenceServerClient(url=self.url)
        return self._client

    async def score(self, features: np.ndarray) -> Scored:
        from tritonclient.utils import InferenceServerException

        inp = self._mod.InferInput(INPUT, list(features.shape), "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(features, dtype=np.float32))
        try:
            result = await asyncio.wait_for(
                self.client.infer(
                    self.model, [inp], outputs=[self._mod.InferRequestedOutput(OUTPUT)]
                ),
                timeout=self.timeout_s,
            )
        except (InferenceServerException, TimeoutError, OSError) as exc:
            raise ScorerError(f"Triton at {self.url} ({self.model}): {exc}") from exc
        scores = result.as_numpy(OUTPUT)
        if scores is None or scores.shape != features.shape[:2]:
            got = None if scores is None else scores.shape
            raise ScorerError(f"{self.model} returned shape {got}, expected {features.shape[:2]}")
        if not np.all(np.isfinite(scores)):
            raise ScorerError(f"{self.model} returned non-finite scores")
        version = result.get_response().model_version
        return Scored(scores, f"{self.model}:{version}")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class CircuitBreaker:
    """Rank with the fallback while the primary scorer is failing, then retry it.

    After a failure the primary is skipped for ``cooldown_s`` (so a dead Triton
    costs one timeout, not one per batch); the next batch after that tries it again.
    """

    def __init__(self, primary: Scorer, fallback: Scorer, cooldown_s: float = 5.0) -> None:
        self.primary, self.fallback, self.cooldown_s = primary, fallback, cooldown_s
        self.open_until = 0.0
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return time.monotonic() < self.open_until

    async def score(self, features: np.ndarray) -> tuple[Scored, bool]:
        """Scores and whether they are degraded (came from the fallback)."""
        if not self.is_open:
            try:
                scored = await self.primary.score(features)
                if self.failures:
                    log.info("scorer recovered after %d failed batch(es)", self.failures)
                self.failures = 0
                return scored, False
            except ScorerError as exc:
                self.failures += 1
                self.open_until = time.monotonic() + self.cooldown_s
                log.warning("scorer failed (%s); ranking degraded for %.0fs", exc, self.cooldown_s)
        return await self.fallback.score(features), True
