"""Export the item text encoder to ONNX (fp32 and int8) for Triton; skip when up to date.

The graph takes ``input_ids`` and ``attention_mask`` (int64, dynamic batch and token
axes) and returns ``embedding`` [batch, 384]: mean pooling and L2 normalisation are
inside it, so every runtime (Triton, onnxruntime in tests) gets finished embeddings.

int8 is dynamic quantisation after onnxruntime's pre-processing (shape inference and
graph optimisation, which fuses LayerNorm/GELU before the weights are quantised) with
per-channel weight scales: plain ``quantize_dynamic`` on the raw export dropped the
cosine to fp32 to about 0.95 on item texts; this recipe keeps it near 0.99.

The output folder gets ``model.onnx`` (int8, what Triton serves), ``model_fp32.onnx``
(the reference, optional), ``tokenizer.json`` and ``export.json``, a stamp holding a
fingerprint of the source weights, the export recipe's version and the tool versions.
A second run with the same fingerprint returns at once.

    python -m models.encoder_export triton_models/item_encoder/1/
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

from models.tokenization import EMBEDDING_DIM, INPUT_NAMES, OUTPUT_NAME

log = logging.getLogger(__name__)

# Bump when the graph, the opset or the quantisation recipe changes: existing
# exports then no longer match and are rebuilt.
EXPORT_VERSION = 1
OPSET = 17
INT8_FILE = "model.onnx"
FP32_FILE = "model_fp32.onnx"
TOKENIZER_FILE = "tokenizer.json"
STAMP_FILE = "export.json"
# The files whose bytes determine the export.
SOURCE_FILES = ("config.json", "model.safetensors", "tokenizer.json")


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    fingerprint: str
    skipped: bool  # True when the folder was already up to date
    seconds: float

    @property
    def int8(self) -> Path:
        return self.out_dir / INT8_FILE

    @property
    def fp32(self) -> Path:
        return self.out_dir / FP32_FILE

    @property
    def tokenizer(self) -> Path:
        return self.out_dir / TOKENIZER_FILE


def fingerprint(model_dir: Path) -> str:
    """sha256 over the source weights, config and tokenizer, the recipe and tool versions."""
    h = hashlib.sha256()
    tools = " ".join(f"{d}{version(d)}" for d in ("torch", "transformers", "onnxruntime"))
    h.update(f"v{EXPORT_VERSION} opset{OPSET} {tools}".encode())
    for name in SOURCE_FILES:
        h.update(name.encode())
        with (model_dir / name).open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def _stamp_matches(out_dir: Path, expected: str, need_fp32: bool) -> bool:
    try:
        stamp = json.loads((out_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    if stamp.get("fingerprint") != expected:
        return False
    sizes: dict[str, int] = stamp.get("files", {})
    wanted = [INT8_FILE, TOKENIZER_FILE] + ([FP32_FILE] if need_fp32 else [])
    for name in wanted:
        path = out_dir / name
        # The size catches a file truncated or replaced since the export.
        if name not in sizes or not path.is_file() or path.stat().st_size != sizes[name]:
            return False
    return True


def export_fp32(model_dir: Path, path: Path) -> None:
    """Export the torch encoder (pooling and normalisation included) to ONNX at ``path``."""
    import torch

    from models.text_encoder import load_encoder

    # Eager attention exports as plain MatMul/Softmax, which onnxruntime's optimiser
    # and quantiser handle; the torch side's default SDPA is held to it by the tests.
    model = load_encoder(model_dir, attn_implementation="eager")
    # A padded row in the sample keeps the trace honest about masking.
    input_ids = torch.tensor(
        [[101, 7592, 2088, 2003, 1037, 3231, 102], [101, 7592, 102, 0, 0, 0, 0]]
    )
    attention_mask = (input_ids != 0).to(torch.int64)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of dynamo (which needs
        # onnxscript, not installed); transformers' shape checks raise TracerWarnings
        # that do not apply to the dynamic axes declared below.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # transformers builds the padding mask as mask[batch_arange, kv_arange]; the
        # warning is about negative indices, and aranges have none.
        warnings.filterwarnings(
            "ignore", message="Exporting aten::index operator", category=UserWarning
        )
        torch.onnx.export(
            model,
            (input_ids, attention_mask),
            buf,  # type: ignore[arg-type]  # the exporter writes to any binary file object
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                INPUT_NAMES[0]: {0: "batch", 1: "tokens"},
                INPUT_NAMES[1]: {0: "batch", 1: "tokens"},
                OUTPUT_NAME: {0: "batch"},
            },
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
    _write_atomic(path, buf.getvalue())


def quantize_int8(fp32_path: Path, int8_path: Path) -> None:
    """Dynamic int8 quantisation: pre-process, then per-channel weights (see module doc)."""
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=int8_path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        out = Path(tmp) / "int8.onnx"
        # onnxruntime's symbolic shape inference stops with "Incomplete symbolic shape
        # inference" on this graph; ONNX shape inference and the optimiser still run.
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_dynamic(str(pre), str(out), per_channel=True, weight_type=QuantType.QInt8)
        out.replace(int8_path)


def export_item_encoder(
    out_dir: Path,
    model_dir: Path | None = None,
    keep_fp32: bool = True,
    force: bool = False,
) -> ExportResult:
    """Write the int8 (and fp32) ONNX encoder and its tokenizer to ``out_dir``, if stale.

    Idempotent: when ``export.json`` matches the fingerprint of the source and every
    file is in place, this returns with ``skipped=True`` after hashing the weights
    (well under a second).
    """
    from models.text_encoder import minilm_path

    started = time.perf_counter()
    model_dir = model_dir or minilm_path()
    expected = fingerprint(model_dir)
    if not force and _stamp_matches(out_dir, expected, need_fp32=keep_fp32):
        return ExportResult(out_dir, expected, True, time.perf_counter() - started)

    out_dir.mkdir(parents=True, exist_ok=True)
    # A stale stamp must not vouch for half-written files if this run dies.
    (out_dir / STAMP_FILE).unlink(missing_ok=True)
    fp32 = out_dir / FP32_FILE
    log.info("exporting the item encoder from %s to %s", model_dir, out_dir)
    export_fp32(model_dir, fp32)
    quantize_int8(fp32, out_dir / INT8_FILE)
    _write_atomic(out_dir / TOKENIZER_FILE, (model_dir / TOKENIZER_FILE).read_bytes())
    if not keep_fp32:
        fp32.unlink()
    files = [INT8_FILE, TOKENIZER_FILE] + ([FP32_FILE] if keep_fp32 else [])
    stamp = {
        "fingerprint": expected,
        "export_version": EXPORT_VERSION,
        "source": str(model_dir),
        "embedding_dim": EMBEDDING_DIM,
        "files": {name: (out_dir / name).stat().st_size for name in files},
    }
    _write_atomic(out_dir / STAMP_FILE, (json.dumps(stamp, indent=2) + "\n").encode())
    return ExportResult(out_dir, expected, False, time.perf_counter() - started)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out_dir", type=Path, help="e.g. triton_models/item_encoder/1/")
    parser.add_argument("--force", action="store_true", help="export even when up to date")
    parser.add_argument(
        "--no-fp32", dest="keep_fp32", action="store_false", help=f"do not keep {FP32_FILE}"
    )
    args = parser.parse_args(argv)
    # Our progress at INFO; the quantiser logs a line per tensor at INFO, so the
    # root logger stays at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    result = export_item_encoder(args.out_dir, keep_fp32=args.keep_fp32, force=args.force)
    if result.skipped:
        print(f"item encoder in {args.out_dir} is up to date ({result.fingerprint[:12]})")
    else:
        for path in (result.int8, result.fp32, result.tokenizer):
            if path.is_file():
                print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
        print(f"in {result.seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
