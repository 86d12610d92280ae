"""The consecutive-pair protocol: does the answer to a click contain the user's next click?

For every two consecutive clicks ``a -> b`` of one user that both fall in the test part
of the stream (after the warm-up), the recommendation emitted after ``a`` is judged on
``b``'s item: HR@k = 1 when it is among the first k items, NDCG@k = 1/log2(rank + 1)
(one relevant item, so the ideal DCG is 1), MRR@k = 1/rank (0 beyond k). A pair whose
first click got no answer counts as a miss, and is reported apart so a lost answer never
looks like a bad one.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass

from services.contract.events import ClickEvent


@dataclass(frozen=True)
class Pair:
    """A test click and the item its user clicked next (in the click ``next_event_id``)."""

    event_id: str
    user_id: str
    next_item_id: str
    next_event_id: str = ""


def consecutive_pairs(clicks: Sequence[ClickEvent], split: int) -> list[Pair]:
    """Every pair of consecutive clicks of one user with both at index >= ``split``.

    In stream order of the second click, so the result is deterministic.
    """
    pairs: list[Pair] = []
    last: dict[str, int] = {}  # user -> index of their latest click so far
    for index, click in enumerate(clicks):
        before = last.get(click.user_id)
        if before is not None and before >= split:
            first = clicks[before]
            pairs.append(Pair(first.event_id, click.user_id, click.item_id, click.event_id))
        last[click.user_id] = index
    return pairs


@dataclass(frozen=True)
class Quality:
    """HR@k, NDCG@k and MRR@k over the pairs, with how many pairs had an answer at all."""

    k: int
    hr: float
    ndcg: float
    pairs: int
    answered: int
    hits: int
    # Distinct items shown in the top k of the judged answers: catalog coverage's numerator.
    covered: int = 0
    mrr: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        rates = {"hr": self.hr, "ndcg": self.ndcg, "mrr": self.mrr}
        return {
            **{f"{name}@{self.k}": round(value, 6) for name, value in rates.items()},
            **{key: value for key, value in asdict(self).items() if key not in rates},
        }


def ranks(pairs: Sequence[Pair], answers: Mapping[str, Sequence[str]], k: int = 10) -> list[int]:
    """Per pair, the 1-based rank of the next item in the answer's top ``k``; 0 for a miss
    or a pair without an answer."""
    if k < 1:
        raise ValueError(f"k must be positive, got {k}")
    out = []
    for pair in pairs:
        top = list(answers.get(pair.event_id, ())[:k])
        out.append(top.index(pair.next_item_id) + 1 if pair.next_item_id in top else 0)
    return out


def score(
    pairs: Sequence[Pair],
    answers: Mapping[str, Sequence[str]],
    k: int = 10,
    catalog: Collection[str] | None = None,
) -> Quality:
    """HR@k, NDCG@k and MRR@k of ``answers`` (event_id -> ranked item ids, best first).

    ``covered`` counts the distinct items shown that are in ``catalog`` (all of them when
    None): a stack that served other replays before may still show their items, and
    those are not this catalog's coverage.
    """
    found = ranks(pairs, answers, k)
    shown: set[str] = set()
    answered = 0
    for pair in pairs:
        ranked = answers.get(pair.event_id)
        if ranked is not None:
            answered += 1
            shown.update(ranked[:k])
    n = len(pairs)
    hit_ranks = [r for r in found if r]
    return Quality(
        k=k,
        hr=len(hit_ranks) / n if n else 0.0,
        ndcg=sum(1.0 / math.log2(r + 1) for r in hit_ranks) / n if n else 0.0,
        mrr=sum(1.0 / r for r in hit_ranks) / n if n else 0.0,
        pairs=n,
        answered=answered,
        hits=len(hit_ranks),
        covered=len(shown if catalog is None else shown.intersection(catalog)),
    )
