"""Item encoders for unit tests that need Triton's encoder to fail and come back."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from services.recommender.encoder import EncoderError, HashingEncoder


class FlakyEncoder(HashingEncoder):
    """A :class:`HashingEncoder` that raises like an unreachable Triton while ``up`` is False."""

    def __init__(self, up: bool = False) -> None:
        self.up = up

    async def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not self.up:
            raise EncoderError("triton down")
        return await super().encode(texts)
