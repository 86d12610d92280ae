"""One Triton model over gRPC (asyncio), shared by the scorer and item-encoder clients."""

from __future__ import annotations

from typing import Any


class TritonModelClient:
    """A model name, a URL, a timeout, and an aio client created on first use.

    The aio client binds to the event loop that is running when it is created, and the
    worker's loop only exists once Faust starts: hence lazy.
    """

    def __init__(self, url: str, model: str, timeout_s: float) -> None:
        import tritonclient.grpc.aio as grpcclient

        self._mod = grpcclient
        self._client: Any = None
        self.url, self.model, self.timeout_s = url, model, timeout_s

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = self._mod.InferenceServerClient(url=self.url)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
