"""Scoring candidates: the Triton-served model, a local fallback, and a circuit breaker."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from models.candidate_features import BASELINE_WEIGHTS
from models.serving import RANK_OUTPUT, RankRequest
from services.recommender.triton import TritonModelClient, rank_inputs

log = logging.getLogger(__name__)


class ScorerError(RuntimeError):
    """The scorer could not answer (unavailable, timed out, or a malformed reply)."""


@dataclass(frozen=True)
class ScoringBatch:
    """One micro-batch to rank: the ranker's request and the raw candidate features.

    ``features`` [B, C, 4] are the live values (models/candidate_features.py); the
    request's SIDE is what the ranker was trained to read (``model_side``).
    """

    request: RankRequest
    features: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        b, c = self.request.candidate_idx.shape
        return int(b), int(c)


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray  # [batch, candidates]
    model_version: str


class Scorer(Protocol):
    async def score(self, batch: ScoringBatch) -> Scored: ...


class LinearScorer:
    """Hand-set weights over the features, in numpy: the fallback when Triton is down."""

    version = "fallback-linear"

    def __init__(self, weights: tuple[float, ...] = BASELINE_WEIGHTS) -> None:
        self.weights = np.asarray(weights, np.float32)

    async def score(self, batch: ScoringBatch) -> Scored:
        return Scored(batch.features @ self.weights, self.version)


class FusedScorer:
    """The ranker's scores plus ``weight`` times the collaborative (fallback) scores.

    The ranker reads the same side features but learns them from a few epochs of sampled
    negatives; adding the plain co-visitation-led score back gives the final order both
    views. The weight is chosen on validation clicks with the in-process replay
    (docs/BENCHMARKS.md; 2 by default); 0 serves the ranker alone. The version stays the ranker's.
    """

    def __init__(self, ranker: Scorer, weight: float, collaborative: Scorer | None = None) -> None:
        if weight < 0:
            raise ValueError(f"weight must be >= 0, got {weight}")
        self.ranker, self.weight = ranker, weight
        self.collaborative = collaborative or LinearScorer()

    async def score(self, batch: ScoringBatch) -> Scored:
        scored = await self.ranker.score(batch)
        if self.weight == 0:
            return scored
        collaborative = await self.collaborative.score(batch)
        fused = scored.scores + np.float32(self.weight) * collaborative.scores
        return Scored(fused.astype(np.float32, copy=False), scored.model_version)


class TritonScorer(TritonModelClient):
    """Asks Triton's ``scorer`` (the LLM ranker) over gRPC; one request per call (a chunk of a
    micro-batch: ``RankingConfig.scoring_chunk``)."""

    def __init__(self, url: str, model: str = "scorer", timeout_s: float = 2.0) -> None:
        super().__init__(url, model, timeout_s)

    def _inputs(self, request: RankRequest) -> list[Any]:
        return rank_inputs(self._mod, request)

    async def score(self, batch: ScoringBatch) -> Scored:
        from tritonclient.utils import InferenceServerException

        try:
            result = await asyncio.wait_for(
                self.client.infer(
                    self.model,
                    self._inputs(batch.request),
                    outputs=[self._mod.InferRequestedOutput(RANK_OUTPUT)],
                ),
                timeout=self.timeout_s,
            )
        except TimeoutError as exc:  # a hung or overloaded server; str(exc) is empty
            raise ScorerError(
                f"Triton at {self.url} ({self.model}): no answer within {self.timeout_s} s"
            ) from exc
        except (InferenceServerException, OSError) as exc:
            raise ScorerError(f"Triton at {self.url} ({self.model}): {exc}") from exc
        scores = result.as_numpy(RANK_OUTPUT)
        if scores is None or scores.shape != (1, *batch.shape):
            got = None if scores is None else scores.shape
            raise ScorerError(f"{self.model} returned shape {got}, expected {(1, *batch.shape)}")
        if not np.all(np.isfinite(scores)):
            raise ScorerError(f"{self.model} returned non-finite scores")
        version = result.get_response().model_version
        return Scored(scores[0], f"{self.model}:{version}")


class CircuitBreaker:
    """Rank with the fallback while the primary scorer is failing, then retry it.

    After a failure the primary is skipped for ``cooldown_s`` (so a dead Triton
    costs one timeout, not one per batch); the next batch after that tries it again.
    """

    def __init__(
        self,
        primary: Scorer,
        fallback: Scorer,
        cooldown_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary, self.fallback, self.cooldown_s = primary, fallback, cooldown_s
        self.clock = clock  # injectable, so tests need not sleep through a cool-down
        self.open_until = 0.0
        self.failures = 0

    @property
    def is_open(self) -> bool:
        return self.clock() < self.open_until

    async def score(self, batch: ScoringBatch) -> tuple[Scored, bool]:
        """Scores and whether they are degraded (came from the fallback)."""
        if not self.is_open:
            try:
                scored = await self.primary.score(batch)
                if self.failures:
                    log.info("scorer recovered after %d failed batch(es)", self.failures)
                self.failures = 0
                return scored, False
            except ScorerError as exc:
                self.failures += 1
                self.open_until = self.clock() + self.cooldown_s
                log.warning("scorer failed (%s); ranking degraded for %.0fs", exc, self.cooldown_s)
        return await self.fallback.score(batch), True
