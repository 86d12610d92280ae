"""Train the served sequence ranker from click and item events; write a Triton version folder.

    python -m models.train_ranker --dataset ml-100k --out triton_models/scorer/1/
    python -m models.train_ranker --clicks clicks.jsonl --items items.jsonl --out DIR

The input is the system's own event format (``ClickEvent`` and ``ItemEvent`` as JSON lines,
what the ``clicks`` and ``items`` topics carry), so the same code trains on a dataset file
or on a log of the stream. Each user's last click is the time-ordered validation target for
early stopping; the other clicks train. The folder gets ``model.onnx`` (the served
:class:`models.ranker.IndexedRanker`), ``ranker.safetensors`` (the checkpoint) and
``export.json`` (what it was trained on, and how well it did).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.offline.data import Interactions
from models.ranker import RankerConfig, flops_per_request
from models.ranker_training import (
    RankerRecommender,
    SideFeatures,
    SideTimeline,
    TrainConfig,
    TrainResult,
    global_ranks,
)
from services.contract.events import ClickEvent, ItemEvent

MODEL_FILE, CHECKPOINT_FILE, MANIFEST_FILE = "model.onnx", "ranker.safetensors", "export.json"


@dataclass
class TrainedRanker:
    recommender: RankerRecommender
    result: TrainResult
    n_users: int
    n_items: int
    n_clicks: int
    seconds: float


def embed_items(items: Sequence[ItemEvent], extra_ids: Iterable[str]) -> np.ndarray:
    """MiniLM vectors of ``items``, then of ``extra_ids`` (clicked, not in the catalog)."""
    from models.text_encoder import TextEncoder, item_text

    texts = [item_text(i) for i in items] + list(extra_ids)
    return TextEncoder().encode(texts, progress=True)


def train_from_events(
    items: Sequence[ItemEvent],
    clicks: Sequence[ClickEvent],
    train_cfg: TrainConfig | None = None,
    cfg: RankerConfig | None = None,
    embeddings: np.ndarray | None = None,
    warm_start: Path | None = None,
) -> TrainedRanker:
    """Fit on every user's clicks but the last; early-stop on the last (NDCG@10).

    ``warm_start``: a checkpoint (``ranker.safetensors``) to continue from; its config
    replaces ``cfg``. The ranker reads item text embeddings, not item ids, so a checkpoint
    carries over to a catalog that has grown since.
    """
    started = time.perf_counter()
    catalog = [i.item_id for i in items]
    interactions = Interactions.from_clicks(clicks, catalog=catalog)
    if interactions.n_users == 0:
        raise ValueError("no clicks to train on")
    if embeddings is None:
        embeddings = embed_items(items, interactions.item_ids[len(catalog) :])
    if embeddings.shape[0] != interactions.n_items:
        raise ValueError(
            f"{embeddings.shape[0]} embeddings for {interactions.n_items} items "
            "(catalog first, then clicked items missing from it)"
        )
    start_from = None
    if warm_start is not None:
        start_from = RankerRecommender.load_model(warm_start)
        cfg = start_from.cfg
    rec = RankerRecommender(embeddings, cfg, train_cfg)
    if start_from is not None:
        rec.model.load_state_dict(start_from.state_dict())
    sequences = [np.asarray(s, np.int64) for s in interactions.sequences]
    # Point in time: each example sees the statistics of the clicks before its target only,
    # as the worker does live (models/ranker_training.py:SideTimeline).
    ranks = global_ranks(interactions.timestamps)
    timeline = SideTimeline(sequences, ranks, rec.n_items)
    train = [s[:-1] if len(s) >= 3 else s for s in sequences]
    train_ranks = [r[:-1] if len(r) >= 3 else r for r in ranks]
    valid = [
        (s[:-1], int(s[-1]), int(r[-1]))
        for s, r in zip(sequences, ranks, strict=True)
        if len(s) >= 3
    ]
    result = rec.fit(train, valid, ranks=train_ranks, timeline=timeline)  # type: ignore[arg-type]
    rec.side = SideFeatures.from_sequences(sequences, rec.n_items)
    return TrainedRanker(
        recommender=rec,
        result=result,
        n_users=interactions.n_users,
        n_items=interactions.n_items,
        n_clicks=interactions.n_interactions,
        seconds=time.perf_counter() - started,
    )


def write_version(trained: TrainedRanker, folder: Path, source: str) -> Path:
    """Write the Triton version folder (ONNX, checkpoint, manifest); returns the ONNX path."""
    from models.ranker_export import export_onnx

    folder.mkdir(parents=True, exist_ok=True)
    rec = trained.recommender
    rec.save(folder / CHECKPOINT_FILE)
    export_onnx(rec.model, folder / MODEL_FILE)
    manifest = {
        "source": source,
        "users": trained.n_users,
        "items": trained.n_items,
        "clicks": trained.n_clicks,
        "best_epoch": trained.result.best_epoch,
        "valid_ndcg_at_10": round(trained.result.best_valid, 4),
        "history": trained.result.history,
        "train_seconds": round(trained.seconds, 1),
        "config": rec.cfg.to_dict(),
        "train_config": {
            k: v for k, v in vars(rec.train_cfg).items() if k not in ("progress", "threads")
        },
        "mflop_per_request_h50_c100": round(flops_per_request(rec.cfg) / 1e6, 1),
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n")
    return folder / MODEL_FILE


def _read_jsonl(path: Path, kind: type[ClickEvent] | type[ItemEvent]) -> list:
    with path.open(encoding="utf-8") as fh:
        return [kind.model_validate_json(line) for line in fh if line.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.train_ranker", description=__doc__.split("\n", 1)[0]
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=["ml-100k"], help="a bundled dataset")
    source.add_argument("--clicks", type=Path, help="ClickEvent JSON lines")
    parser.add_argument("--items", type=Path, help="ItemEvent JSON lines (with --clicks)")
    parser.add_argument("--out", type=Path, required=True, help="Triton version folder")
    parser.add_argument("--epochs", type=int, default=6, help="at most; early-stopped")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    if args.dataset:
        from services.data import movielens

        path = movielens.ensure_ml100k()
        items, clicks = movielens.load_items(path), movielens.load_clicks(path)
        label = "ml-100k"
    else:
        if args.items is None:
            parser.error("--clicks needs --items")
        items, clicks = _read_jsonl(args.items, ItemEvent), _read_jsonl(args.clicks, ClickEvent)
        label = f"{args.clicks.name} + {args.items.name}"
    trained = train_from_events(
        items, clicks, TrainConfig(epochs=args.epochs, patience=2, seed=args.seed)
    )
    onnx_path = write_version(trained, args.out, label)
    print(
        f"trained on {label}: {trained.n_clicks} clicks, {trained.n_users} users, "
        f"{trained.n_items} items in {trained.seconds:.0f} s; best epoch "
        f"{trained.result.best_epoch}, validation NDCG@10 {trained.result.best_valid:.4f}; "
        f"wrote {onnx_path}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
