"""The quality replay without Kafka or Triton: the worker's core, in this process.

``python -m services.eval`` judges the running system end to end, and takes minutes per
run on 2 cores. Tuning a ranking choice (a weight, a candidate share, a new ranker) needs
many runs, so this replays the same stream through the same :class:`RecommenderCore`
the worker runs, in micro-batches, with the ranker's ONNX file run by onnxruntime here
instead of by Triton, and judges it with the same protocol beside the same baselines.

What it leaves out, so its figures are a guide and the end-to-end replay is the record:
the shared-state feed's lag (records apply at once here), Faust's batch boundaries (fixed
size here), and the item encoder (MiniLM runs here, not in Triton; same weights).

    python -m services.eval.inprocess --model triton_models/scorer/1/model.onnx
    python -m services.eval.inprocess --model none          # the collaborative fallback
    python -m services.eval.inprocess --no-text-embeddings  # IDs and collaborative only
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from models.serving import RANK_INPUTS, RANK_OUTPUT, OnnxModel, run_ranker
from services.eval import protocol
from services.eval.app import baseline_quality
from services.eval.item_vectors import item_embeddings
from services.eval.stream import ReplayStream, load_stream
from services.recommender.app import in_memory_core
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.pipeline import Click, RankingConfig
from services.recommender.scorer import FusedScorer, Scored, ScoringBatch
from services.recommender.settings import WorkerSettings

log = logging.getLogger(__name__)


class LocalRankerScorer:
    """The served ranker's ONNX file run in this process (what Triton's model.py does)."""

    def __init__(self, path: Path) -> None:
        self.model = OnnxModel(path, RANK_INPUTS, (RANK_OUTPUT,))
        self.version = f"local:{path}"

    async def score(self, batch: ScoringBatch) -> Scored:
        (scores,) = run_ranker(self.model, [batch.request])
        return Scored(scores, self.version)


@dataclass(frozen=True)
class InProcessResult:
    quality: protocol.Quality
    baselines: dict[str, protocol.Quality]
    seconds: float
    degraded_batches: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "system": self.quality.as_dict(),
            "baselines": {name: q.as_dict() for name, q in self.baselines.items()},
            "seconds": round(self.seconds, 1),
            "degraded_batches": self.degraded_batches,
        }


async def replay(
    stream: ReplayStream,
    embeddings: EmbeddingIndex,
    scorer: Any,
    config: RankingConfig | None = None,
    batch_size: int = 64,
    k: int = 10,
) -> tuple[protocol.Quality, int, float]:
    """Every click through a fresh core in ``batch_size`` batches; the system's quality.

    The warm-up clicks only build state (:meth:`RecommenderCore.absorb`): their answers
    are not judged, and ranking them would triple the replay's time.
    """
    core = in_memory_core(scorer=scorer, embeddings=embeddings, config=config or RankingConfig())
    for item in stream.items:
        core.catalog.upsert(item)
    pairs = protocol.consecutive_pairs(stream.clicks, stream.split)
    answers: dict[str, list[str]] = {}
    degraded = 0
    started = time.monotonic()
    bounds = list(range(0, stream.split, batch_size)) + list(
        range(stream.split, len(stream.clicks), batch_size)
    )
    bounds.append(len(stream.clicks))
    for start, stop in itertools.pairwise(bounds):
        now = time.monotonic()
        batch = [Click(c, 0, now) for c in stream.clicks[start:stop]]
        if start < stream.split:
            await core.absorb(batch)
            continue
        result = await core.process(batch)
        degraded += int(result.degraded)
        for rec in result.recommendations:
            answers[rec.event_id] = [i.item_id for i in rec.items]
    return protocol.score(pairs, answers, k), degraded, time.monotonic() - started


def run(
    model: Path | None,
    dataset: str = "ml-100k",
    limit: int | None = None,
    config: RankingConfig | None = None,
    batch_size: int = 64,
    collaborative_weight: float = 0.0,
    warmup_fraction: float = 0.8,
) -> InProcessResult:
    stream = load_stream(dataset, limit=limit, warmup_fraction=warmup_fraction)
    embeddings = item_embeddings(stream)
    scorer: Any = LocalRankerScorer(model) if model is not None else None
    if scorer is not None and collaborative_weight > 0:
        scorer = FusedScorer(scorer, collaborative_weight)
    quality, degraded, seconds = asyncio.run(replay(stream, embeddings, scorer, config, batch_size))
    pairs = protocol.consecutive_pairs(stream.clicks, stream.split)
    base, _ = baseline_quality(stream, pairs, quality.k)
    return InProcessResult(quality, base, seconds, degraded)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m services.eval.inprocess", description=__doc__)
    parser.add_argument(
        "--model",
        default="triton_models/scorer/1/model.onnx",
        help="the ranker's ONNX file, or 'none' for the collaborative fallback",
    )
    parser.add_argument("--dataset", default="ml-100k", choices=["ml-100k", "synthetic"])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument(
        "--warmup-fraction",
        type=float,
        default=0.8,
        help="share of the clicks that only warm up; with --limit 80000 and 0.875 the judged "
        "clicks are 70-80%% of ml-100k: a validation window before the test part",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--diversity", type=float, default=RankingConfig.diversity)
    parser.add_argument("--max-candidates", type=int, default=RankingConfig.max_candidates)
    parser.add_argument(
        "--no-text-embeddings",
        action="store_true",
        help="rank on IDs and collaborative signals only (the worker's text_embeddings off)",
    )
    parser.add_argument(
        "--collaborative-weight",
        type=float,
        default=WorkerSettings.model_fields["collaborative_weight"].default,
        help="added times the collaborative score to the ranker's (the worker's setting)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    config = replace(
        RankingConfig(),
        diversity=args.diversity,
        max_candidates=args.max_candidates,
        text_embeddings=not args.no_text_embeddings,
    )
    model = None if args.model == "none" else Path(args.model)
    result = run(
        model,
        args.dataset,
        args.limit,
        config,
        args.batch_size,
        args.collaborative_weight,
        args.warmup_fraction,
    )
    json.dump(result.as_dict(), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
