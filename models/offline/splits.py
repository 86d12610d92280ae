"""Train/validation/test splits for next-item prediction: leave-one-out, time cut, cold items.

Every split yields the same three things: :class:`TrainData` that a model may fit on, and
validation and test :class:`EvalCases`, each "given this history, which item comes next?".
A case's history is everything the user did before the target, so it may include items the
model never trained on (the validation item, for a test case; held-out items, when cold).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from models.offline.data import FloatArray, IntArray, Interactions

_EMPTY = np.zeros(0, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class TrainData:
    """What a model may learn from: per-user item sequences (oldest first) over the catalog.

    ``sequences[u]`` is indexed by dense user id and may be empty; ``n_items`` is the whole
    catalog, including items that never occur here (held out, or never interacted with).
    """

    sequences: tuple[IntArray, ...]
    timestamps: tuple[FloatArray, ...]
    n_items: int

    @property
    def n_users(self) -> int:
        return len(self.sequences)

    @property
    def n_interactions(self) -> int:
        return sum(len(s) for s in self.sequences)

    def item_counts(self) -> IntArray:
        """How often each item occurs in training, shape ``[n_items]``."""
        flat = np.concatenate(self.sequences) if self.sequences else _EMPTY
        return np.bincount(flat, minlength=self.n_items).astype(np.int64)

    def user_item_matrix(self) -> sp.csr_matrix:
        """Binary ``[n_users, n_items]`` matrix: 1 where the user interacted with the item."""
        lengths = np.fromiter((len(s) for s in self.sequences), np.int64, self.n_users)
        rows = np.repeat(np.arange(self.n_users), lengths)
        cols = np.concatenate(self.sequences) if self.sequences else _EMPTY
        matrix = sp.csr_matrix(
            (np.ones(len(cols), dtype=np.float32), (rows, cols)),
            shape=(self.n_users, self.n_items),
        )
        # Repeat interactions were summed; the similarity wants "did interact".
        matrix.data[:] = 1.0
        return matrix


@dataclass(frozen=True, eq=False)
class EvalCases:
    """Next-item test cases: for case ``c``, user ``users[c]`` saw ``histories[c]`` (oldest
    first), then ``targets[c]``. Scores are over ``n_items`` (the whole catalog)."""

    users: IntArray
    histories: tuple[IntArray, ...]
    targets: IntArray
    n_items: int

    def __post_init__(self) -> None:
        if not len(self.users) == len(self.histories) == len(self.targets):
            raise ValueError(
                f"{len(self.users)} users, {len(self.histories)} histories and "
                f"{len(self.targets)} targets: one of each per case"
            )

    def __len__(self) -> int:
        return len(self.targets)

    def select(self, mask: npt.NDArray[np.bool_]) -> EvalCases:
        """The cases where ``mask`` (a boolean array, one entry per case) is true."""
        keep = np.flatnonzero(mask)
        return EvalCases(
            users=self.users[keep],
            histories=tuple(self.histories[k] for k in keep),
            targets=self.targets[keep],
            n_items=self.n_items,
        )

    @classmethod
    def build(
        cls, users: list[int], histories: list[IntArray], targets: list[int], n_items: int
    ) -> EvalCases:
        """Cases from parallel lists, one entry per case."""
        return cls(
            users=np.asarray(users, dtype=np.int64),
            histories=tuple(histories),
            targets=np.asarray(targets, dtype=np.int64),
            n_items=n_items,
        )


@dataclass(frozen=True, eq=False)
class Split:
    """A protocol's data: fit on ``train``, early-stop or tune on ``valid``, report ``test``.

    ``held_out_items`` lists the items removed from ``train`` (cold-start protocol only).
    """

    name: str
    train: TrainData
    valid: EvalCases
    test: EvalCases
    held_out_items: IntArray = field(default_factory=lambda: _EMPTY)


def leave_one_out(interactions: Interactions) -> Split:
    """RecBole's sequential split (``LS: valid_and_test``, ordered by time).

    Per user, the last interaction is the test target, the second-to-last the validation
    target and the rest is training; the test history includes the validation item. Users
    with fewer than 3 interactions are training only.
    """
    train_seqs: list[IntArray] = []
    train_ts: list[FloatArray] = []
    valid: tuple[list[int], list[IntArray], list[int]] = ([], [], [])
    test: tuple[list[int], list[IntArray], list[int]] = ([], [], [])
    for user, (seq, ts) in enumerate(
        zip(interactions.sequences, interactions.timestamps, strict=True)
    ):
        if len(seq) < 3:
            train_seqs.append(seq)
            train_ts.append(ts)
            continue
        train_seqs.append(seq[:-2])
        train_ts.append(ts[:-2])
        _append(valid, user, seq[:-2], int(seq[-2]))
        _append(test, user, seq[:-1], int(seq[-1]))
    n = interactions.n_items
    return Split(
        name="leave_one_out",
        train=TrainData(tuple(train_seqs), tuple(train_ts), n),
        valid=EvalCases.build(*valid, n_items=n),
        test=EvalCases.build(*test, n_items=n),
    )


def time_split(
    interactions: Interactions,
    *,
    valid_start: float = 0.8,
    test_start: float = 0.9,
    cuts: tuple[float, float] | None = None,
) -> Split:
    """Two global time cuts: train before the first, validate between them, test after.

    The cuts default to the ``valid_start`` and ``test_start`` quantiles of all timestamps;
    ``cuts`` gives them in seconds instead. Every interaction after a cut is a case, with
    the user's whole earlier sequence as history, as a replayed stream would present it;
    cases with an empty history (a user's very first interaction) are left out. Unlike
    leave-one-out, no training interaction is later than any target, so nothing of the
    future leaks in: the safer signal for early stopping.

    On ml-100k most post-cut interactions come from users who joined after the cut (they
    are scored on their own short histories) and a few heavy users contribute hundreds of
    cases each; the metrics are per interaction, not per user.
    """
    if cuts is None:
        if not 0.0 < valid_start < test_start < 1.0:
            raise ValueError(
                f"need 0 < valid_start < test_start < 1, got {valid_start} and {test_start}"
            )
        everything = np.concatenate(interactions.timestamps)
        cuts = (
            float(np.quantile(everything, valid_start)),
            float(np.quantile(everything, test_start)),
        )
    valid_cut, test_cut = cuts
    if valid_cut > test_cut:
        raise ValueError(f"the validation cut {valid_cut} is after the test cut {test_cut}")
    train_seqs: list[IntArray] = []
    train_ts: list[FloatArray] = []
    valid: tuple[list[int], list[IntArray], list[int]] = ([], [], [])
    test: tuple[list[int], list[IntArray], list[int]] = ([], [], [])
    for user, (seq, ts) in enumerate(
        zip(interactions.sequences, interactions.timestamps, strict=True)
    ):
        k_valid, k_test = np.searchsorted(ts, cuts, side="left").tolist()
        train_seqs.append(seq[:k_valid])
        train_ts.append(ts[:k_valid])
        for p in range(max(k_valid, 1), k_test):
            _append(valid, user, seq[:p], int(seq[p]))
        for p in range(max(k_test, 1), len(seq)):
            _append(test, user, seq[:p], int(seq[p]))
    n = interactions.n_items
    return Split(
        name="time_split",
        train=TrainData(tuple(train_seqs), tuple(train_ts), n),
        valid=EvalCases.build(*valid, n_items=n),
        test=EvalCases.build(*test, n_items=n),
    )


def cold_start_split(interactions: Interactions, fraction: float = 0.1, seed: int = 0) -> Split:
    """Leave-one-out with a seeded ``fraction`` of the catalog held out of training entirely.

    The held-out items' interactions are removed from the training sequences, but the items
    stay in the catalog and in users' histories. Validation and test keep only the cases
    whose target is held out, so an ID-only model (which cannot rank an item it never saw)
    scores about zero here: the protocol measures what content features add.
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    n = interactions.n_items
    rng = np.random.default_rng(seed)
    cold = np.sort(rng.choice(n, size=max(1, round(fraction * n)), replace=False))
    base = leave_one_out(interactions)
    is_cold = np.zeros(n, dtype=bool)
    is_cold[cold] = True
    keep = [~is_cold[seq] for seq in base.train.sequences]
    train = TrainData(
        sequences=tuple(seq[k] for seq, k in zip(base.train.sequences, keep, strict=True)),
        timestamps=tuple(ts[k] for ts, k in zip(base.train.timestamps, keep, strict=True)),
        n_items=n,
    )
    return Split(
        name="cold_start",
        train=train,
        valid=base.valid.select(is_cold[base.valid.targets]),
        test=base.test.select(is_cold[base.test.targets]),
        held_out_items=cold.astype(np.int64),
    )


def _append(
    cases: tuple[list[int], list[IntArray], list[int]], user: int, history: IntArray, target: int
) -> None:
    cases[0].append(user)
    cases[1].append(history)
    cases[2].append(target)
