"""One Triton model over gRPC (asyncio), shared by the scorer and item-encoder clients."""

from __future__ import annotations

from typing import Any

# gRPC waits before reconnecting to a server that refused it: 1 s, growing 1.6-fold up to
# 120 s. After a 30 s outage its next attempt could come 20 s after Triton is back, every
# scorer call failing at once ("failed to connect") until then, so recovery would wait on
# the back-off, not on Triton. Capped, a Triton that is back is found within a second.
RECONNECT_BACKOFF_MS = (250, 1000)  # first wait, longest wait


def channel_args(client_module: Any) -> list[tuple[str, int]]:
    """tritonclient's own channel options (message sizes, keepalive), plus the capped
    reconnect back-off: giving ``channel_args`` replaces all of its defaults."""
    keepalive = client_module.KeepAliveOptions()
    first, longest = RECONNECT_BACKOFF_MS
    return [
        ("grpc.max_send_message_length", client_module.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", client_module.MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.initial_reconnect_backoff_ms", first),
        ("grpc.max_reconnect_backoff_ms", longest),
    ]


def rank_inputs(client_module: Any, request: Any) -> list[Any]:
    """The scorer's four inputs for ``request`` (a ``models.serving.RankRequest``), with
    the leading request axis of 1 its dynamic batcher merges on. ``client_module`` is
    ``tritonclient.grpc``/``.grpc.aio`` or ``tritonclient.http``: their ``InferInput``
    agree."""
    import numpy as np

    from models.serving import RANK_INPUTS

    inputs = []
    arrays = (request.items, request.history_idx, request.candidate_idx, request.side)
    for name, array in zip(RANK_INPUTS, arrays, strict=True):
        data = np.ascontiguousarray(array)[None]
        dtype = "INT32" if data.dtype == np.int32 else "FP32"
        tensor = client_module.InferInput(name, list(data.shape), dtype)
        tensor.set_data_from_numpy(data)
        inputs.append(tensor)
    return inputs


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
            self._client = self._mod.InferenceServerClient(
                url=self.url, channel_args=channel_args(self._mod)
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
