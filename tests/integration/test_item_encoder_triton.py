"""The item encoder served by a real tritonserver (Python backend), item_encoder loaded alone."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models.encoder_export import ExportResult, export_item_encoder
from models.tokenization import EMBEDDING_DIM, OnnxTextEncoder
from services.stack.settings import StackSettings
from tests.support.infra import free_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MODEL = "item_encoder"
TEXTS = [
    "Jurassic Park (1993). Categories: Action, Adventure, Sci-Fi",
    "Telescope for beginners. Categories: Astronomy. See Saturn's rings",
    "Cast iron skillet. Categories: Kitchen, Cookware. Pre-seasoned pan for searing, "
    "baking and campfire cooking, ready to use out of the box",
    "Kind of Blue. Categories: Music, Jazz. Artist: Miles Davis. Year: 1959",
    "Le Fabuleux Destin d'Amélie Poulain. Language: French. 東京 🚀",
]


@pytest.fixture(scope="module")
def exported() -> ExportResult:
    """The repository's model files: exported here if `make install` has not built them."""
    # keep_fp32=False accepts an export with or without the fp32 file, so this skips
    # whenever the int8 model is up to date.
    return export_item_encoder(REPO / "triton_models" / MODEL / "1", keep_fp32=False)


@pytest.fixture(scope="module")
def triton(
    exported: ExportResult, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StackSettings]:
    """tritonserver alone, with only the item encoder loaded, on free ports."""
    from services.stack.components import build_components
    from services.stack.supervisor import Supervisor

    ports = free_ports(5)
    settings = StackSettings(
        broker_port=ports[0],
        triton_http_port=ports[1],
        triton_grpc_port=ports[2],
        triton_metrics_port=ports[3],
        worker_web_port=ports[4],
        run_dir=tmp_path_factory.mktemp("item-encoder-triton"),
        triton_models=(MODEL,),
    )
    components = [c for c in build_components(settings) if c.name == "tritonserver"]
    supervisor = Supervisor(settings, components)
    supervisor.start()  # waits until the model is ready; raises with the log tail if not
    try:
        yield settings
    finally:
        supervisor.stop()


@pytest.fixture(scope="module")
def local(exported: ExportResult) -> OnnxTextEncoder:
    """The same int8 model in this process, for comparison."""
    return OnnxTextEncoder(exported.int8, exported.tokenizer)


def _infer_grpc(settings: StackSettings, texts: list[str]) -> np.ndarray:
    import tritonclient.grpc as grpcclient

    data = np.array([[t.encode()] for t in texts], dtype=np.object_)
    inp = grpcclient.InferInput("TEXT", list(data.shape), "BYTES")
    inp.set_data_from_numpy(data)
    with grpcclient.InferenceServerClient(settings.triton_grpc_url) as client:
        out = client.infer(MODEL, [inp]).as_numpy("EMBEDDING")
    assert out is not None
    return out


def test_triton_embeddings_match_in_process_onnx(
    triton: StackSettings, local: OnnxTextEncoder
) -> None:
    served = _infer_grpc(triton, TEXTS)
    expected = local.encode(TEXTS)
    assert served.shape == (len(TEXTS), EMBEDDING_DIM) and served.dtype == np.float32
    cosine = np.sum(served * expected, axis=1)
    assert cosine.min() >= 0.999, cosine
    np.testing.assert_allclose(np.linalg.norm(served, axis=1), 1.0, atol=1e-5)


def test_concurrent_requests_are_batched_and_answered_in_order(
    triton: StackSettings, local: OnnxTextEncoder
) -> None:
    requests = [[t] for t in TEXTS] * 4  # single-text requests the dynamic batcher merges
    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(lambda texts: _infer_grpc(triton, texts), requests))
    expected = local.encode(TEXTS)
    for texts, answer in zip(requests, answers, strict=True):
        # int8 activations are quantised per batch, so a text's embedding moves a
        # little with its batch-mates; a wrong row would be far below this.
        assert float(answer[0] @ expected[TEXTS.index(texts[0])]) >= 0.98


def test_invalid_utf8_gets_an_error_and_the_model_keeps_serving(triton: StackSettings) -> None:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    inp = httpclient.InferInput("TEXT", [1, 1], "BYTES")
    inp.set_data_from_numpy(np.array([[b"\xff\xfe broken"]], dtype=np.object_))
    # Closed on exit: an open keep-alive connection holds tritonserver's shutdown.
    with (
        httpclient.InferenceServerClient(f"{triton.host}:{triton.triton_http_port}") as client,
        pytest.raises(InferenceServerException, match="not valid UTF-8"),
    ):
        client.infer(MODEL, [inp])
    assert _infer_grpc(triton, TEXTS[:1]).shape == (1, EMBEDDING_DIM)


def test_smoke_client_passes(triton: StackSettings) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "triton_models" / MODEL / "client.py"),
            "--url",
            f"{triton.host}:{triton.triton_http_port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.startswith("OK")
