"""Choose the default MMR diversity weight: accuracy against diversity on ml-100k.

    python -m models.offline.diversity [--ranker itemknn|llm] [--weights 0 0.1 ...]

Under the leave-one-out protocol (history masked), a base ranker's top ``--candidates``
items per case are re-ranked by :func:`services.recommender.rerank.mmr` on the cached
MiniLM item embeddings, at each weight; the top 10 is then scored for NDCG@10 and HR@10
(the target's position in it), intra-list diversity (mean pairwise cosine distance of its
embeddings) and catalog coverage (distinct items over all cases / catalog size).

The weight is *chosen on the validation cases* — the largest whose NDCG@10 is at most
``--max-loss`` (relative, default 2%) below weight 0's — and the test table is reported
beside it, so the choice does not peek at the numbers it is judged by.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.offline.base import SequentialRecommender
from models.offline.data import IntArray
from models.offline.splits import EvalCases
from services.recommender.rerank import catalog_coverage, intra_list_diversity, mmr

logger = logging.getLogger(__name__)

WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5)


@dataclass(frozen=True)
class Candidates:
    """Each case's top candidates by base score, best first, history items excluded."""

    items: IntArray  # [cases, C] dense item ids
    scores: np.ndarray  # [cases, C] base-ranker scores, finite
    targets: IntArray  # [cases]


def top_candidates(
    model: SequentialRecommender, cases: EvalCases, size: int = 100, chunk_size: int = 256
) -> Candidates:
    """The ``size`` best-scored items per case, the case's history masked as in evaluation.

    Ties go to the lower item id (a stable sort), so weight 0's NDCG can differ from
    :func:`models.offline.metrics.evaluate`'s, which averages over ties, in the last digits.
    """
    items: list[IntArray] = []
    scores: list[np.ndarray] = []
    for start in range(0, len(cases), chunk_size):
        histories = list(cases.histories[start : start + chunk_size])
        chunk = np.array(model.score(histories), dtype=np.float64)
        rows = np.arange(len(histories))
        lengths = [len(h) for h in histories]
        if sum(lengths):
            chunk[np.repeat(rows, lengths), np.concatenate(histories)] = -np.inf
        order = np.argsort(-chunk, axis=1, kind="stable")[:, :size]
        items.append(order.astype(np.int64))
        scores.append(np.take_along_axis(chunk, order, axis=1))
    return Candidates(np.concatenate(items), np.concatenate(scores), cases.targets)


def rerank_metrics(
    candidates: Candidates, embeddings: np.ndarray, diversity: float, k: int = 10
) -> dict[str, float]:
    """NDCG@k, HR@k, intra-list diversity and catalog coverage of the MMR top ``k``."""
    gains = 1.0 / np.log2(np.arange(2, k + 2))
    ndcg = np.zeros(len(candidates.targets))
    ild = np.zeros(len(candidates.targets))
    lists: list[list[str]] = []
    elapsed = 0.0
    for case, (items, scores) in enumerate(zip(candidates.items, candidates.scores, strict=True)):
        # A history-masked slot (-inf) can only appear when the catalog runs out of items.
        finite = np.isfinite(scores)
        items, scores = items[finite], scores[finite]
        vectors = embeddings[items]
        started = time.perf_counter()
        top = items[mmr(scores, vectors, k, diversity)]
        elapsed += time.perf_counter() - started
        hit = np.flatnonzero(top == candidates.targets[case])
        ndcg[case] = gains[hit[0]] if len(hit) else 0.0
        ild[case] = intra_list_diversity(embeddings[top])
        lists.append([str(i) for i in top])
    return {
        "ndcg@10": float(ndcg.mean()),
        "hr@10": float((ndcg > 0).mean()),
        "ild@10": float(ild.mean()),
        "coverage@10": catalog_coverage(lists, len(embeddings)),
        "mmr_us": 1e6 * elapsed / max(len(lists), 1),
    }


def recommend(results: dict[float, dict[str, float]], max_loss: float = 0.02) -> float:
    """The largest weight whose NDCG@10 is at most ``max_loss`` (relative) below weight 0's."""
    reference = results[0.0]["ndcg@10"]
    allowed = [w for w, m in results.items() if m["ndcg@10"] >= (1.0 - max_loss) * reference]
    return max(allowed)


def table(results: dict[float, dict[str, float]]) -> str:
    """A Markdown table, one row per weight, with NDCG@10's change against weight 0."""
    reference = results[0.0]["ndcg@10"]
    lines = [
        "| diversity | NDCG@10 | ΔNDCG | HR@10 | ILD@10 | coverage@10 | mmr µs/call |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for weight, m in results.items():
        change = m["ndcg@10"] / reference - 1.0 if reference else float("nan")
        lines.append(
            f"| {weight:g} | {m['ndcg@10']:.4f} | {change:+.1%} | {m['hr@10']:.4f} | "
            f"{m['ild@10']:.4f} | {m['coverage@10']:.4f} | {m['mmr_us']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.offline.diversity", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--ranker", choices=("itemknn", "llm"), default="itemknn")
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    parser.add_argument("--candidates", type=int, default=100, help="re-ranked pool per case")
    parser.add_argument("--max-loss", type=float, default=0.02, help="relative NDCG@10 loss")
    parser.add_argument("--data-dir", type=Path, help="ml-100k directory (default: the cache)")
    parser.add_argument("--ranker-epochs", type=int, default=6, help="LLM ranker, at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    weights = sorted(set(args.weights) | {0.0})  # 0 is the reference every row compares to

    from models.offline.benchmark import load_ml100k
    from models.offline.llm_ranker import item_embeddings
    from models.offline.splits import leave_one_out
    from services.data import movielens

    started = time.perf_counter()
    interactions = load_ml100k(args.data_dir)
    items = movielens.load_items(args.data_dir or movielens.ensure_ml100k())
    embeddings = item_embeddings(interactions, items)
    split = leave_one_out(interactions)
    model = _make_ranker(args.ranker, embeddings, args.ranker_epochs, args.seed)
    model.fit(split.train)

    results: dict[str, dict[float, dict[str, float]]] = {}
    for stage in ("valid", "test"):
        pool = top_candidates(model, getattr(split, stage), args.candidates)
        results[stage] = {w: rerank_metrics(pool, embeddings, w) for w in weights}
    choice = recommend(results["valid"], args.max_loss)

    print(
        f"# MMR diversity on ml-100k, {args.ranker} top-{args.candidates} re-ranked "
        f"({interactions.n_items} items, leave-one-out, history masked)\n"
    )
    for stage in ("valid", "test"):
        print(f"## {stage} ({len(getattr(split, stage))} cases)\n\n{table(results[stage])}\n")
    test_change = results["test"][choice]["ndcg@10"] / results["test"][0.0]["ndcg@10"] - 1.0
    print(
        f"Recommended default diversity: {choice:g} (largest weight within "
        f"{args.max_loss:.0%} of weight 0's validation NDCG@10; on test {test_change:+.1%})."
    )
    if choice == max(weights) and choice < 1.0:
        print("It is the largest weight tried: pass larger --weights to find where NDCG drops.")
    print(f"Took {time.perf_counter() - started:.1f} s.")
    return 0


def _make_ranker(
    name: str, embeddings: np.ndarray, epochs: int, seed: int
) -> SequentialRecommender:
    if name == "llm":
        from models.offline.llm_ranker import LLMRanker
        from models.ranker_training import TrainConfig

        return LLMRanker(embeddings, train_cfg=TrainConfig(epochs=epochs, patience=2, seed=seed))
    from models.offline.baselines import ItemKNNRecommender

    return ItemKNNRecommender()


if __name__ == "__main__":
    sys.exit(main())
