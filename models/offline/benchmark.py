"""Run models through the offline protocols on one data set: what the CLI reports."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from models.offline.base import SequentialRecommender
from models.offline.baselines import ItemKNNRecommender, MarkovRecommender, PopularityRecommender
from models.offline.data import Interactions
from models.offline.metrics import evaluate
from models.offline.splits import TrainData, cold_start_split, leave_one_out

logger = logging.getLogger(__name__)

ModelFactory = Callable[[], SequentialRecommender]


def default_baselines() -> dict[str, ModelFactory]:
    """The baselines every report carries, by display name."""
    return {
        "Pop": PopularityRecommender,
        "ItemKNN": ItemKNNRecommender,
        "Markov-1": MarkovRecommender,
        "Markov-10": lambda: MarkovRecommender(history_length=10, decay=0.8),
    }


@dataclass(frozen=True)
class ProtocolRun:
    """One protocol's test metrics (and fit/eval seconds) for each model."""

    name: str
    description: str
    results: dict[str, dict[str, float]] = field(default_factory=dict)
    timings: dict[str, dict[str, float]] = field(default_factory=dict)


def load_ml100k(data_dir: Path | None = None) -> Interactions:
    """ml-100k's ratings as interactions over its whole catalog (fetched on first use)."""
    from services.data.movielens import ensure_ml100k, load_clicks, load_items

    directory = ensure_ml100k(data_dir)
    catalog = [item.item_id for item in load_items(directory)]
    return Interactions.from_clicks(load_clicks(directory), catalog=catalog)


def run_benchmark(
    interactions: Interactions,
    models: Mapping[str, ModelFactory] | None = None,
    *,
    ks: Sequence[int] = (10,),
    cold_fraction: float = 0.1,
    seed: int = 0,
    chunk_size: int = 256,
) -> list[ProtocolRun]:
    """Fit and test every model on leave-one-out (history masked and not) and cold start."""
    factories = dict(models) if models is not None else default_baselines()
    loo = leave_one_out(interactions)
    cold = cold_start_split(interactions, fraction=cold_fraction, seed=seed)
    masked = ProtocolRun(
        "leave_one_out",
        "Leave-one-out by time; full ranking over the catalog, the user's history masked.",
    )
    unmasked = ProtocolRun(
        "leave_one_out_unmasked",
        "The same fitted models and cases with no history mask, as RecBole evaluates "
        "sequential models: the protocol of the published anchors.",
    )
    cold_run = ProtocolRun(
        "cold_start",
        f"Leave-one-out with {len(cold.held_out_items)} items ({cold_fraction:.0%}, seed "
        f"{seed}) held out of training; only test cases whose target is held out.",
    )
    for name, make in factories.items():
        model = make()
        fit_s = _fit_timed(model, loo.train)
        started = time.perf_counter()
        masked.results[name] = evaluate(model, loo, ks, chunk_size=chunk_size)
        eval_s = time.perf_counter() - started
        masked.timings[name] = {"fit_s": fit_s, "eval_s": eval_s}
        started = time.perf_counter()
        unmasked.results[name] = evaluate(
            model, loo, ks, exclude_history=False, chunk_size=chunk_size
        )
        unmasked.timings[name] = {"fit_s": fit_s, "eval_s": time.perf_counter() - started}

        model = make()
        fit_s = _fit_timed(model, cold.train)
        started = time.perf_counter()
        cold_run.results[name] = evaluate(model, cold, ks, chunk_size=chunk_size)
        cold_run.timings[name] = {"fit_s": fit_s, "eval_s": time.perf_counter() - started}
        logger.info("%s: %s", name, masked.results[name])
    return [masked, unmasked, cold_run]


def _fit_timed(model: SequentialRecommender, data: TrainData) -> float:
    started = time.perf_counter()
    model.fit(data)
    return time.perf_counter() - started
