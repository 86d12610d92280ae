"""Interactions in dense integer ids: every user's time-ordered item sequence.

Offline evaluation works on arrays, not events: users and items get dense ids ``0..n-1`` (the
raw ids are kept for mapping back), and each user's interactions become one ``int64`` array
sorted by time, ties kept in their original order, as a replayed stream would deliver them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from services.contract.events import ClickEvent

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Interactions:
    """Per-user item sequences over a fixed catalog, in dense ids.

    ``sequences[u]`` holds user ``u``'s items oldest first and ``timestamps[u]`` the matching
    times in seconds. ``item_ids`` is the whole catalog: it may hold items nobody interacted
    with (they can still be recommended, and ranked against).
    """

    user_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    sequences: tuple[IntArray, ...]
    timestamps: tuple[FloatArray, ...]

    def __post_init__(self) -> None:
        if len(self.sequences) != len(self.user_ids) or len(self.timestamps) != len(self.user_ids):
            raise ValueError(
                f"{len(self.user_ids)} users but {len(self.sequences)} sequences and "
                f"{len(self.timestamps)} timestamp arrays"
            )

    @classmethod
    def from_clicks(cls, clicks: Iterable[ClickEvent], catalog: Iterable[str] = ()) -> Interactions:
        """Build from contract click events; ``catalog`` adds (and orders first) known items."""
        users: list[str] = []
        items: list[str] = []
        seconds: list[float] = []
        for click in clicks:
            users.append(click.user_id)
            items.append(click.item_id)
            seconds.append(click.ts.timestamp())
        return cls.from_arrays(users, items, seconds, catalog=catalog)

    @classmethod
    def from_arrays(
        cls,
        users: Sequence[str],
        items: Sequence[str],
        timestamps: Sequence[float] | FloatArray,
        *,
        catalog: Iterable[str] = (),
    ) -> Interactions:
        """Build from parallel columns (one row per interaction, in arrival order).

        Dense ids follow ``catalog`` order, then first appearance in the rows, so they are
        deterministic for a given input.
        """
        if not len(users) == len(items) == len(timestamps):
            raise ValueError(
                f"columns differ in length: {len(users)} users, {len(items)} items, "
                f"{len(timestamps)} timestamps"
            )
        item_index = _first_seen_index(catalog, items)
        user_index = _first_seen_index((), users)
        user_col = np.fromiter((user_index[u] for u in users), np.int64, len(users))
        item_col = np.fromiter((item_index[i] for i in items), np.int64, len(items))
        ts_col = np.asarray(timestamps, dtype=np.float64)
        # lexsort is stable and sorts by its last key first: user, then time, then arrival.
        order = np.lexsort((np.arange(len(users)), ts_col, user_col))
        bounds = np.cumsum(np.bincount(user_col, minlength=len(user_index)))[:-1]
        return cls(
            user_ids=tuple(user_index),
            item_ids=tuple(item_index),
            sequences=tuple(np.split(item_col[order], bounds)),
            timestamps=tuple(np.split(ts_col[order], bounds)),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    @cached_property
    def user_index(self) -> dict[str, int]:
        """Raw user id -> dense id."""
        return {u: k for k, u in enumerate(self.user_ids)}

    @cached_property
    def item_index(self) -> dict[str, int]:
        """Raw item id -> dense id."""
        return {i: k for k, i in enumerate(self.item_ids)}


def _first_seen_index(first: Iterable[str], rest: Iterable[str]) -> dict[str, int]:
    index: dict[str, int] = {}
    for key in first:
        index.setdefault(key, len(index))
    for key in rest:
        index.setdefault(key, len(index))
    return index
