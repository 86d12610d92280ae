"""Item text -> embedding, through Triton's ``item_encoder`` (the worker's only encoder)."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from services.recommender.embeddings import DIM
from services.recommender.triton import TritonModelClient

INPUT, OUTPUT = "TEXT", "EMBEDDING"
# The model's max_batch_size (triton_models/item_encoder/config.pbtxt): larger lists
# are sent as several requests, concurrently.
REQUEST_TEXTS = 64


class EncoderError(RuntimeError):
    """The encoder could not answer; the items stay pending and are retried."""


class ItemEncoder(Protocol):
    async def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class TritonItemEncoder(TritonModelClient):
    """Asks Triton's ``item_encoder`` over gRPC; the aio client is created on first use."""

    def __init__(self, url: str, model: str = "item_encoder", timeout_s: float = 10.0) -> None:
        super().__init__(url, model, timeout_s)

    async def _request(self, texts: Sequence[str]) -> np.ndarray:
        from tritonclient.utils import InferenceServerException

        data = np.array([[t.encode("utf-8")] for t in texts], dtype=np.object_)
        inp = self._mod.InferInput(INPUT, list(data.shape), "BYTES")
        inp.set_data_from_numpy(data)
        try:
            result = await asyncio.wait_for(
                self.client.infer(self.model, [inp]), timeout=self.timeout_s
            )
        except (InferenceServerException, TimeoutError, OSError) as exc:
            raise EncoderError(f"Triton at {self.url} ({self.model}): {exc}") from exc
        out = result.as_numpy(OUTPUT)
        if out is None or out.shape != (len(texts), DIM) or not np.isfinite(out).all():
            got = None if out is None else out.shape
            raise EncoderError(f"{self.model} returned shape {got}, expected {(len(texts), DIM)}")
        return out

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIM), np.float32)
        chunks = [texts[i : i + REQUEST_TEXTS] for i in range(0, len(texts), REQUEST_TEXTS)]
        parts = await asyncio.gather(*(self._request(c) for c in chunks))
        return np.concatenate(parts, axis=0)


class HashingEncoder:
    """A deterministic stand-in for unit tests: texts sharing words get similar vectors."""

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), DIM), np.float32)
        for i, text in enumerate(texts):
            for word in text.lower().split():
                rng = np.random.default_rng(zlib.crc32(word.encode()))
                out[i] += rng.normal(size=DIM).astype(np.float32)
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out
