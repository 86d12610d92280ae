"""Offline benchmark on ml-100k: baselines under leave-one-out and cold start.

    python -m models.offline --out results.json [--tune]

Prints a Markdown table per protocol with RecBole's published anchor beside it, and writes
everything (metrics, timings, protocol descriptions) as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from models.offline.baselines import (
    ITEMKNN_GRID,
    MARKOV_GRID,
    ItemKNNRecommender,
    MarkovRecommender,
)
from models.offline.benchmark import default_baselines, load_ml100k, run_benchmark
from models.offline.report import ANCHORS, anchors_text, json_safe, report_table
from models.offline.splits import leave_one_out
from models.offline.tuning import grid_search


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m models.offline", description=__doc__.split("\n", 1)[0]
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--data-dir", type=Path, help="ml-100k directory (default: the cache)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cold-item draw")
    parser.add_argument("--cold-fraction", type=float, default=0.1)
    parser.add_argument("--chunk-size", type=int, default=256, help="cases scored at once")
    parser.add_argument(
        "--tune", action="store_true", help="also rerun the baselines' validation grids"
    )
    parser.add_argument(
        "--with-ranker", action="store_true", help="also train and test the LLM sequence ranker"
    )
    parser.add_argument("--ranker-epochs", type=int, default=6, help="at most, early-stopped")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )

    started = time.perf_counter()
    interactions = load_ml100k(args.data_dir)
    loaded_s = time.perf_counter() - started
    models = default_baselines()
    if args.with_ranker:
        from models.offline.llm_ranker import LLMRanker, item_embeddings
        from models.ranker_training import TrainConfig
        from services.data import movielens

        items = movielens.load_items(args.data_dir or movielens.ensure_ml100k())
        vectors = item_embeddings(interactions, items)
        train_cfg = TrainConfig(epochs=args.ranker_epochs, patience=2, seed=args.seed)
        models["LLM ranker"] = lambda: LLMRanker(vectors, train_cfg=train_cfg)
    runs = run_benchmark(
        interactions,
        models,
        cold_fraction=args.cold_fraction,
        seed=args.seed,
        chunk_size=args.chunk_size,
    )
    print(
        f"# ml-100k: {interactions.n_users} users, {interactions.n_items} items, "
        f"{interactions.n_interactions} interactions (full ranking over all items)\n"
    )
    for run in runs:
        print(f"## {run.name}\n\n{run.description}\n\n{report_table(run.results)}\n")
    print(
        "Anchors (compare with leave_one_out_unmasked: RecBole masks no history for "
        f"sequential models):\n{anchors_text()}\n"
    )
    tuning = {}
    if args.tune:
        split = leave_one_out(interactions)
        for name, make, grid in (
            ("ItemKNN", ItemKNNRecommender, ITEMKNN_GRID),
            ("Markov", MarkovRecommender, MARKOV_GRID),
        ):
            ranked = grid_search(make, grid, split)
            tuning[name] = [{"params": p, "valid": m} for p, m in ranked]
            table = {", ".join(f"{k}={v}" for k, v in p.items()): m for p, m in ranked[:5]}
            print(f"## {name} grid, top 5 by validation NDCG@10\n\n{report_table(table)}\n")
    elapsed_s = time.perf_counter() - started
    print(f"Took {elapsed_s:.1f} s ({loaded_s:.1f} s loading).")

    if args.out is not None:
        payload = {
            "dataset": {
                "name": "ml-100k",
                "users": interactions.n_users,
                "items": interactions.n_items,
                "interactions": interactions.n_interactions,
            },
            "protocols": {
                run.name: {
                    "description": run.description,
                    "results": run.results,
                    "timings_s": run.timings,
                }
                for run in runs
            },
            "anchors": ANCHORS,
            "tuning": tuning,
            "seed": args.seed,
            "elapsed_s": elapsed_s,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(json_safe(payload), indent=2, allow_nan=False) + "\n")
        print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
