"""The trainer's judgement: the promotion rule and the point-in-time holdout."""

from __future__ import annotations

import numpy as np

from models.offline.data import Interactions
from services.trainer.evaluate import Scores, split
from services.trainer.job import better_enough


def scores(hr: float, ndcg: float) -> Scores:
    return Scores(hr_at_10=hr, ndcg_at_10=ndcg, cold_hr_at_10=None, cases=100, cold_cases=0)


def test_a_challenger_within_the_tolerance_is_promoted() -> None:
    ok, why = better_enough(scores(0.199, 0.1), scores(0.2, 0.1), tolerance=0.01)
    assert ok and "HR@10 0.1990 vs 0.2000" in why


def test_a_challenger_worse_beyond_the_tolerance_is_kept_out() -> None:
    ok, why = better_enough(scores(0.25, 0.098), scores(0.2, 0.1), tolerance=0.01)
    assert not ok and why.startswith("ndcg_at_10 0.0980 < champion 0.1000")


def test_without_a_champion_the_challenger_is_promoted() -> None:
    assert better_enough(scores(0.0, 0.0), None, tolerance=0.0)[0]


def test_the_holdout_is_the_latest_clicks_judged_point_in_time() -> None:
    # Two users; times interleave. 10 clicks, holdout 30% = the last 3 in time.
    users = ["a", "b", "a", "b", "a", "b", "a", "b", "a", "c"]
    items = ["i1", "i2", "i2", "i3", "i3", "i1", "i4", "i2", "i5", "i6"]
    inter = Interactions.from_arrays(
        users, items, np.arange(10.0), catalog=["i1", "i2", "i3", "i4", "i5", "i6"]
    )
    holdout = split(inter, holdout_fraction=0.3, max_cases=100)
    assert holdout.start_rank == 7
    # Clicks 7 (b→i2) and 8 (a→i5) have earlier clicks of their user; 9 (c's first) does not.
    assert sorted(holdout.targets.tolist()) == [1, 4]
    assert sorted(holdout.taus.tolist()) == [7, 8]
    by_target = dict(zip(holdout.targets.tolist(), holdout.cold.tolist(), strict=True))
    assert by_target == {1: False, 4: True}  # i5 was never clicked before the window
    assert holdout.start_time == 7.0
    # Side features as of the judged click: i2's popularity counts the 2 clicks before 7.
    side = holdout.timeline.features([np.array([0, 2])], np.array([7]), np.array([[1]]))
    assert side[0, 0, 1] == np.float32(np.log1p(2))
