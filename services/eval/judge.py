"""Every figure of one recommender's answers to the judged clicks, and how they compare.

Beside the pair protocol's HR@k, NDCG@k and MRR@k (``protocol.py``): catalog coverage
(distinct items in the judged top-k lists over the catalog), intra-list diversity (mean
pairwise cosine distance of a list's items' text embeddings, averaged over the lists), and
the same rates on the pairs split by their next item: *warm* (an item the warm-up had
clicks on), *withheld* (one of the items whose warm-up clicks were taken out,
``ReplayStream.withhold``) and, of those, *withheld, first click* (the pair's next click is
the item's first in the whole stream: nobody had clicked it yet, so only its text can
bring it in).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from services.contract.events import ClickEvent
from services.eval.protocol import Pair, score
from services.recommender.embeddings import EmbeddingIndex
from services.recommender.rerank import intra_list_diversity

# The figures compared between the system and each baseline; higher is better for all.
COMPARED = ("hr", "ndcg", "mrr", "warm_hr", "withheld_hr", "coverage", "intra_list_diversity")


@dataclass(frozen=True)
class PairSubsets:
    """The judged pairs by what their next item was when the judged part began."""

    warm: list[Pair]
    withheld: list[Pair]
    withheld_first_click: list[Pair]

    def sizes(self) -> dict[str, int]:
        return {name: len(group) for name, group in self.groups().items()}

    def groups(self) -> dict[str, list[Pair]]:
        return {
            "warm": self.warm,
            "withheld": self.withheld,
            "withheld_first_click": self.withheld_first_click,
        }


def first_clicks(clicks: Iterable[ClickEvent]) -> set[str]:
    """Event ids of the clicks that are the first on their item in the stream."""
    seen: set[str] = set()
    first = set()
    for click in clicks:
        if click.item_id not in seen:
            seen.add(click.item_id)
            first.add(click.event_id)
    return first


def split_pairs(
    pairs: Sequence[Pair], clicks: Sequence[ClickEvent], withheld: Iterable[str]
) -> PairSubsets:
    held = set(withheld)
    first = first_clicks(clicks)
    cold = [p for p in pairs if p.next_item_id in held]
    return PairSubsets(
        warm=[p for p in pairs if p.next_item_id not in held],
        withheld=cold,
        withheld_first_click=[p for p in cold if p.next_event_id in first],
    )


def mean_intra_list_diversity(
    lists: Iterable[Sequence[str]], vectors: EmbeddingIndex
) -> float | None:
    """Mean over the lists of their intra-list diversity (items without a vector left
    out); None when there is no list."""
    values = [intra_list_diversity(vectors.vectors(list(items))) for items in lists]
    return float(np.mean(values)) if values else None


def judge(
    pairs: Sequence[Pair],
    answers: Mapping[str, Sequence[str]],
    k: int,
    catalog: Collection[str],
    subsets: PairSubsets,
    vectors: EmbeddingIndex | None = None,
) -> dict[str, Any]:
    """Every figure of ``answers`` on the judged ``pairs``, as the report stores them;
    coverage is of ``catalog`` (the replayed dataset's item ids)."""
    quality = score(pairs, answers, k, catalog)
    judged = [answers[p.event_id][:k] for p in pairs if p.event_id in answers]
    ild = mean_intra_list_diversity(judged, vectors) if vectors is not None else None
    out: dict[str, Any] = {
        **quality.as_dict(),
        "coverage": round(quality.covered / len(catalog), 6) if catalog else None,
        "intra_list_diversity": None if ild is None else round(ild, 6),
    }
    for name, group in subsets.groups().items():
        q = score(group, answers, k)
        out[name] = {
            f"hr@{k}": round(q.hr, 6),
            f"ndcg@{k}": round(q.ndcg, 6),
            f"mrr@{k}": round(q.mrr, 6),
            "pairs": q.pairs,
            "hits": q.hits,
        }
    return out


def figure(figures: Mapping[str, Any], name: str, k: int) -> float | None:
    """One of :data:`COMPARED` from a :func:`judge` dict."""
    if name in ("hr", "ndcg", "mrr"):
        value = figures.get(f"{name}@{k}")
    elif name == "warm_hr":
        value = (figures.get("warm") or {}).get(f"hr@{k}")
    elif name == "withheld_hr":
        withheld = figures.get("withheld") or {}
        value = withheld.get(f"hr@{k}") if withheld.get("pairs") else None
    else:
        value = figures.get(name)
    return None if value is None else float(value)


def verdicts(
    models: Mapping[str, Mapping[str, Any]], system: str, baselines: Iterable[str], k: int
) -> dict[str, dict[str, dict[str, Any]]]:
    """For each baseline and figure: both values and whether the system is strictly above.

    A tie is not a win: the report says plainly where the system does not beat a baseline.
    """
    out: dict[str, dict[str, dict[str, Any]]] = {}
    mine = models[system]
    for name in baselines:
        theirs = models[name]
        row = {}
        for fig in COMPARED:
            a, b = figure(mine, fig, k), figure(theirs, fig, k)
            if a is None or b is None:
                continue
            row[fig] = {"system": a, "baseline": b, "beats": a > b}
        out[name] = row
    return out


def rolling_hit_rate(
    ranks_by_model: Mapping[str, Sequence[int]], window: int | None = None, points: int = 200
) -> dict[str, Any]:
    """HR@k over a sliding window of judged pairs, at up to ``points`` positions.

    ``x`` is the index of the window's last pair (pairs in stream order of their second
    click); the window is a twentieth of the pairs (at least 50) unless given.
    """
    n = max((len(r) for r in ranks_by_model.values()), default=0)
    if n == 0:
        return {"window": 0, "x": [], "models": {name: [] for name in ranks_by_model}}
    w = min(n, window or max(50, n // 20))
    ends = np.unique(np.linspace(w, n, num=min(points, n - w + 1)).round().astype(int))
    series = {}
    for name, found in ranks_by_model.items():
        hits = np.concatenate([[0], np.cumsum(np.asarray(found) > 0)])
        series[name] = [round(float(v), 4) for v in (hits[ends] - hits[ends - w]) / w]
    return {"window": int(w), "x": [int(e) for e in ends], "models": series}
