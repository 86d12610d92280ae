"""Text → token ids → ONNX embedding without torch: what the item encoder runs inside Triton.

Triton's Python environment has numpy, onnxruntime and ``tokenizers`` only, so this
module must stay free of torch and transformers. ``models.text_encoder`` is the torch
reference it is tested against, token for token and embedding for embedding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np

from models.serving import ModelLoadError, OnnxModel

# The ONNX graph's contract (models/encoder_export.py writes it; Triton's model.py reads it).
INPUT_NAMES = ("input_ids", "attention_mask")  # int64 [batch, tokens]
OUTPUT_NAME = "embedding"  # float32 [batch, EMBEDDING_DIM], unit L2 norm
EMBEDDING_DIM = 384
# all-MiniLM-L6-v2 was trained on 128-token inputs; item texts rarely need more.
DEFAULT_MAX_LENGTH = 128


class TextTokenizer:
    """A ``tokenizers`` tokenizer that truncates to ``max_length`` and pads to the batch's longest.

    The padding and truncation stored in ``tokenizer.json`` are overridden: the
    MiniLM file pads every input to 128 tokens, which wastes most of the encoder's
    time on short item titles.
    """

    def __init__(self, path: Path, max_length: int = DEFAULT_MAX_LENGTH) -> None:
        from tokenizers import Tokenizer

        if not path.is_file():
            raise ModelLoadError(f"tokenizer file {path} does not exist")
        if max_length < 2:
            raise ValueError(f"max_length must leave room for [CLS] and [SEP], got {max_length}")
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as exc:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"cannot load {path} as a tokenizers file: {exc}") from exc
        pad_id = tok.token_to_id("[PAD]")
        if pad_id is None:
            raise ModelLoadError(f"{path} has no [PAD] token; is it a BERT WordPiece tokenizer?")
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(pad_id=pad_id, pad_token="[PAD]")  # length=None: batch longest
        self._tok = tok
        self.max_length = max_length

    def __call__(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask``, int64 [len(texts), longest]."""
        encodings = self._tok.encode_batch(list(texts))
        return {
            "input_ids": np.array([e.ids for e in encodings], dtype=np.int64).reshape(
                len(texts), -1
            ),
            "attention_mask": np.array(
                [e.attention_mask for e in encodings], dtype=np.int64
            ).reshape(len(texts), -1),
        }


def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first.

    Padding to the batch's longest is cheap only when a batch's texts are about as
    long as each other; sorting first cuts the padded tokens several-fold on item
    catalogues that mix bare titles with long descriptions.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    # Stable sort, so equal lengths keep their input order (deterministic batches).
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def decode_texts(values: Iterable[object]) -> list[str]:
    """Triton TYPE_STRING elements (bytes) as str; ValueError names the first bad element."""
    texts = []
    for i, value in enumerate(values):
        if isinstance(value, bytes):
            try:
                texts.append(value.decode("utf-8"))
            except UnicodeDecodeError as exc:
                raise ValueError(f"TEXT[{i}] is not valid UTF-8: {exc}") from exc
        elif isinstance(value, str):
            texts.append(value)
        else:
            raise ValueError(f"TEXT[{i}] is {type(value).__name__}, expected bytes")
    return texts


class OnnxTextEncoder:
    """Texts → unit-norm embeddings with the exported ONNX encoder (fp32 or int8)."""

    def __init__(
        self,
        model_path: Path,
        tokenizer_path: Path,
        max_length: int = DEFAULT_MAX_LENGTH,
        intra_op_threads: int = 1,
    ) -> None:
        self.tokenizer = TextTokenizer(tokenizer_path, max_length=max_length)
        self.model = OnnxModel(
            model_path, INPUT_NAMES, (OUTPUT_NAME,), intra_op_threads=intra_op_threads
        )

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """float32 [len(texts), EMBEDDING_DIM], rows in input order."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        # Tokenise once, padded to the longest text; each batch is then cut back to
        # its own longest (padding is on the right).
        tokens = self.tokenizer(texts)
        lengths = tokens["attention_mask"].sum(axis=1)
        for idx in length_batches(lengths, batch_size):
            width = int(lengths[idx].max())
            batch = {name: arr[idx, :width] for name, arr in tokens.items()}
            out[idx] = self.model.run(batch)[OUTPUT_NAME]
        return out

    def encode_groups(
        self, groups: Sequence[Sequence[str]], batch_size: int = 64
    ) -> list[np.ndarray]:
        """Several requests' texts in one pass; one [len(group), EMBEDDING_DIM] array per group.

        Triton hands the Python backend a list of requests; encoding them together lets
        length batching mix texts across requests.
        """
        flat = [t for group in groups for t in group]
        out = self.encode(flat, batch_size=batch_size)
        bounds = np.cumsum([0, *(len(g) for g in groups)])
        return [out[a:b] for a, b in pairwise(bounds)]
