"""Shadow scoring: a challenger ranks a share of live clicks, and nobody sees its lists.

The trainer loads a challenger into Triton as ``<model>-shadow`` (its version label in
the config's ``streamrec_version`` parameter) while it decides whether to promote it.
Each worker polls for that model; while it is there, the users in a stable share (by a
hash of the user id, so a user's clicks stay in or out together) are ranked by it too,
at the same time as the served ranking (so a batch waits for the slower of the two, not
their sum). The shadow list is kept in the user's state only: their next click judges
both lists (``Recommendation.judged``), which is how the trainer compares the two
versions' online HR@10 on the same clicks. A failing shadow never touches the served
answer: its errors are counted and logged, that batch goes unjudged, and the lane rests
for ``cooldown_s`` so a slow Triton costs one timeout, not one per batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable
from typing import Any, Protocol

from services.recommender.scorer import Scored, Scorer, ScoringBatch

log = logging.getLogger(__name__)

VERSION_PARAMETER = "streamrec_version"
SHARE_BUCKETS = 10_000


def shadow_model(model: str) -> str:
    return f"{model}-shadow"


def in_share(user_id: str, share: float) -> bool:
    """Whether ``user_id`` falls in the shadow share (stable across workers and restarts)."""
    return zlib.crc32(user_id.encode()) % SHARE_BUCKETS < share * SHARE_BUCKETS


class ShadowProbe(Protocol):
    """Asks the server whether a shadow model is loaded, and its version label."""

    async def active_version(self) -> str | None: ...


class TritonShadowProbe:
    """``is_model_ready`` and the config's version parameter, over Triton's aio gRPC."""

    def __init__(self, url: str, model: str, timeout_s: float = 2.0) -> None:
        import tritonclient.grpc.aio as grpcclient

        self._mod = grpcclient
        self._client: Any = None
        self.url, self.model, self.timeout_s = url, model, timeout_s

    async def active_version(self) -> str | None:
        from tritonclient.utils import InferenceServerException

        if self._client is None:
            self._client = self._mod.InferenceServerClient(url=self.url)
        try:
            if not await asyncio.wait_for(
                self._client.is_model_ready(self.model), timeout=self.timeout_s
            ):
                return None
            config = await asyncio.wait_for(
                self._client.get_model_config(self.model, as_json=True), timeout=self.timeout_s
            )
        except (InferenceServerException, TimeoutError):
            return None  # not loaded (Triton answers "unknown model"), or not answering
        parameters = config.get("config", {}).get("parameters", {})
        label = parameters.get(VERSION_PARAMETER, {}).get("string_value")
        return str(label) if label else f"{self.model}:unlabelled"

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


class ShadowLane:
    """The challenger's lane in one worker: which users, which version, its scores."""

    def __init__(
        self,
        scorer: Scorer,
        probe: ShadowProbe,
        share: float,
        cooldown_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"share must be in [0, 1], got {share}")
        self.scorer, self.probe, self.share = scorer, probe, share
        self.cooldown_s, self._clock = cooldown_s, clock
        self.version: str | None = None
        self.resting_until = 0.0
        self.scored_clicks = 0
        self.failures = 0

    @property
    def active(self) -> bool:
        return self.version is not None and self.share > 0 and self._clock() >= self.resting_until

    def selected(self, user_id: str) -> bool:
        return self.active and in_share(user_id, self.share)

    async def refresh(self) -> None:
        """Ask the server whether a shadow is loaded (the worker does every few seconds)."""
        try:
            version = await self.probe.active_version()
        except Exception as exc:  # a probe failure only pauses the shadow
            log.warning("shadow probe failed: %s", exc)
            version = None
        if version != self.version:
            log.info("shadow scoring: %s", f"version {version}" if version else "off")
        self.version = version

    async def score(self, batch: ScoringBatch) -> Scored | None:
        """The challenger's scores, or None if it failed (the batch goes unjudged)."""
        try:
            scored = await self.scorer.score(batch)
        except Exception as exc:  # whatever it is, it must not reach the served path
            self.failures += 1
            self.resting_until = self._clock() + self.cooldown_s
            log.warning("shadow scoring failed (%s); resting %.0f s", exc, self.cooldown_s)
            return None
        self.scored_clicks += batch.shape[0]
        return scored
