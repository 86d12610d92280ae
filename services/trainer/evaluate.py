"""Champion against challenger on the most recent clicks, both in their served form.

The holdout is the last share of the log in time. Every holdout click whose user
clicked before is a case: the history is everything that user clicked before it, the
target is the click. Each model ranks the whole catalog (the user's seen items
excluded) through its ``model.onnx`` — what Triton would run — with side features as
the worker had them just before the click (``SideTimeline``: point in time). So a model
deployed from outside, with no checkpoint, is judged exactly like one trained here.

Cold-item HR@10 counts only cases whose target had no click before the holdout began:
the items only text can recommend.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.offline.data import Interactions
from models.ranker_training import SideTimeline, global_ranks
from models.serving import RANK_OUTPUT, OnnxModel

MAX_HISTORY = 50


@dataclass(frozen=True)
class Holdout:
    """Cases over a fixed catalog: ``(history, target, tau)`` plus which targets are cold."""

    histories: list[np.ndarray]
    targets: np.ndarray
    taus: np.ndarray
    cold: np.ndarray
    timeline: SideTimeline
    start_rank: int
    start_time: float  # epoch seconds of the first holdout click: training uses earlier ones

    def __len__(self) -> int:
        return len(self.targets)


@dataclass(frozen=True)
class Scores:
    hr_at_10: float
    ndcg_at_10: float
    cold_hr_at_10: float | None
    cases: int
    cold_cases: int

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def split(
    interactions: Interactions, holdout_fraction: float, max_cases: int, seed: int = 0
) -> Holdout:
    """The last ``holdout_fraction`` of clicks in time as cases (at most ``max_cases``)."""
    sequences = [np.asarray(s, np.int64) for s in interactions.sequences]
    ranks = global_ranks(interactions.timestamps)
    total = interactions.n_interactions
    start = int(total * (1.0 - holdout_fraction))
    timeline = SideTimeline(sequences, ranks, interactions.n_items)
    seen_before = np.zeros(interactions.n_items, bool)
    for seq, rank in zip(sequences, ranks, strict=True):
        seen_before[seq[rank < start]] = True
    histories, targets, taus, cold = [], [], [], []
    for seq, rank in zip(sequences, ranks, strict=True):
        for t in range(1, len(seq)):
            if rank[t] >= start:
                histories.append(seq[:t])
                targets.append(int(seq[t]))
                taus.append(int(rank[t]))
                cold.append(not seen_before[seq[t]])
    idx = np.arange(len(targets))
    if len(idx) > max_cases:
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_cases, replace=False))
    return Holdout(
        histories=[histories[i] for i in idx],
        targets=np.asarray(targets, np.int64)[idx],
        taus=np.asarray(taus, np.int64)[idx],
        cold=np.asarray(cold, bool)[idx],
        timeline=timeline,
        start_rank=start,
        start_time=_time_of_rank(interactions, ranks, start),
    )


def _time_of_rank(interactions: Interactions, ranks: list[np.ndarray], rank: int) -> float:
    times = np.concatenate([np.asarray(t, np.float64) for t in interactions.timestamps])
    at = np.flatnonzero(np.concatenate(ranks) == rank)
    return float(times[at[0]]) if len(at) else math.inf


def evaluate(model_file: Path, embeddings: np.ndarray, holdout: Holdout, chunk: int = 32) -> Scores:
    """HR@10, NDCG@10 and cold-item HR@10 of one served ranker over the whole catalog."""
    model = OnnxModel(model_file, ("ITEMS", "HISTORY_IDX", "CANDIDATE_IDX", "SIDE"), (RANK_OUTPUT,))
    n_items = embeddings.shape[0]
    items = np.ascontiguousarray(embeddings, np.float32)
    hits = np.zeros(len(holdout), bool)
    gains = np.zeros(len(holdout))
    for start in range(0, len(holdout), chunk):
        hists = holdout.histories[start : start + chunk]
        b = len(hists)
        history = np.full((b, MAX_HISTORY), -1, np.int32)
        for i, h in enumerate(hists):
            recent = h[::-1][:MAX_HISTORY]
            history[i, : len(recent)] = recent
        candidates = np.broadcast_to(np.arange(n_items, dtype=np.int32), (b, n_items))
        side = holdout.timeline.features(hists, holdout.taus[start : start + b], candidates)
        scores = model.run(
            {
                "ITEMS": items,
                "HISTORY_IDX": history,
                "CANDIDATE_IDX": np.ascontiguousarray(candidates),
                "SIDE": side,
            }
        )[RANK_OUTPUT]
        for i, h in enumerate(hists):
            row = scores[i].astype(np.float64)
            target = holdout.targets[start + i]
            row[h] = -np.inf
            rank = int((row > row[target]).sum()) + 1
            if rank <= 10:
                hits[start + i] = True
                gains[start + i] = 1.0 / math.log2(rank + 1)
    cold = holdout.cold
    n = max(len(holdout), 1)
    return Scores(
        hr_at_10=float(hits.sum() / n),
        ndcg_at_10=float(gains.sum() / n),
        cold_hr_at_10=float(hits[cold].mean()) if cold.any() else None,
        cases=len(holdout),
        cold_cases=int(cold.sum()),
    )
