"""A data set as the ordered click stream the replay sends, split into warm-up and test.

The order is the protocol's clock: every figure (the system's and the baselines') is
computed on exactly this sequence. ml-100k has many clicks sharing a timestamp (a user
rates several films within the same second), so the order is a *stable* sort by
timestamp: ties keep the order the data set gives them (for ml-100k, the row order of
its ``.inter`` file, which :func:`services.data.movielens.load_clicks` already returns).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from services.contract.events import ClickEvent, ItemEvent

ORDER_DESCRIPTION = "stable sort by timestamp; clicks with equal timestamps keep data-set order"


def order_clicks(clicks: Sequence[ClickEvent]) -> list[ClickEvent]:
    """The clicks in replay order: by timestamp, ties in their given order (stable sort)."""
    return sorted(clicks, key=lambda c: c.ts)


def choose_withheld(item_ids: Iterable[str], fraction: float, seed: int) -> frozenset[str]:
    """A seeded ``fraction`` of the distinct ``item_ids`` (rounded), the same for any order."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the withheld fraction must be in [0, 1), got {fraction}")
    ids = sorted(set(item_ids))
    n = round(len(ids) * fraction)
    if n == 0:
        return frozenset()
    picked = np.random.default_rng(seed).choice(len(ids), size=n, replace=False)
    return frozenset(ids[i] for i in picked.tolist())


@dataclass(frozen=True)
class ReplayStream:
    """The catalog and the time-ordered clicks of one replay.

    ``split`` is the index of the first test click: the clicks before it only warm the
    system (and the baselines) up. ``withheld`` items had their warm-up clicks taken out
    (:meth:`withhold`): they are cold when the judged part begins.
    """

    dataset: str
    items: list[ItemEvent]
    clicks: list[ClickEvent]
    split: int
    withheld: frozenset[str] = frozenset()
    withheld_warmup_clicks: int = 0  # warm-up clicks taken out for them

    @classmethod
    def build(
        cls,
        dataset: str,
        items: Sequence[ItemEvent],
        clicks: Sequence[ClickEvent],
        *,
        warmup_fraction: float = 0.8,
        limit: int | None = None,
    ) -> ReplayStream:
        """Order ``clicks``, keep the first ``limit`` of them, and split warm-up from test."""
        if not 0.0 <= warmup_fraction < 1.0:
            raise ValueError(f"warmup_fraction must be in [0, 1), got {warmup_fraction}")
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        ordered = order_clicks(clicks)[:limit]
        return cls(dataset, list(items), ordered, int(len(ordered) * warmup_fraction))

    def withhold(self, fraction: float, seed: int) -> ReplayStream:
        """The stream without the warm-up clicks on a seeded ``fraction`` of the catalog.

        The items are drawn from the catalog (or, without one, from the clicked items) and
        keep their catalog events; only their clicks before ``split`` go, so the judged
        part is exactly as before and the withheld items enter it never clicked: the
        system can know them by their text only, the baselines not at all.
        """
        pool = [i.item_id for i in self.items] or [c.item_id for c in self.clicks]
        withheld = choose_withheld(pool, fraction, seed)
        warmup = [c for c in self.clicks[: self.split] if c.item_id not in withheld]
        return replace(
            self,
            clicks=warmup + self.clicks[self.split :],
            split=len(warmup),
            withheld=withheld,
            withheld_warmup_clicks=self.split - len(warmup),
        )

    def for_run(self, run_id: str) -> ReplayStream:
        """The same stream with every event_id and user_id prefixed by ``run_id``.

        The worker drops a click whose event_id its user already has, and keeps user
        state for as long as it runs; fresh ids give each run its own answers and users.
        Items keep their ids: they are the catalog, shared by design.
        """
        clicks = [
            c.model_copy(
                update={"event_id": f"{run_id}-{c.event_id}", "user_id": f"{run_id}-{c.user_id}"}
            )
            for c in self.clicks
        ]
        return replace(self, clicks=clicks)

    @property
    def test_clicks(self) -> int:
        return len(self.clicks) - self.split

    def summary(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "items": len(self.items),
            "clicks": len(self.clicks),
            "users": len({c.user_id for c in self.clicks}),
            "warmup_clicks": self.split,
            "test_clicks": self.test_clicks,
            "order": ORDER_DESCRIPTION,
            "withheld_items": len(self.withheld),
            "withheld_warmup_clicks": self.withheld_warmup_clicks,
        }


def load_stream(
    dataset: str,
    *,
    warmup_fraction: float = 0.8,
    limit: int | None = None,
    seed: int = 0,
    withhold_fraction: float = 0.0,
) -> ReplayStream:
    """``ml-100k`` (from the hash-checked cache) or ``synthetic`` as a replay stream,
    ``withhold_fraction`` of its items withheld from the warm-up (seeded by ``seed``)."""
    from services.cli import _load_dataset

    if dataset not in ("ml-100k", "synthetic"):
        raise ValueError(f"unknown dataset {dataset!r}; use ml-100k or synthetic")
    items, clicks = _load_dataset(dataset, seed)
    stream = ReplayStream.build(
        dataset, items, clicks, warmup_fraction=warmup_fraction, limit=limit
    )
    return stream.withhold(withhold_fraction, seed) if withhold_fraction else stream
