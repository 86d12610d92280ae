"""Online verdicts and the shadow lane in the worker's core (no Kafka, no Triton).

A click judges its user's previous list per lane; the shadow's lists live in user state
only; a failing shadow leaves the served answers as they were.
"""

from __future__ import annotations

import asyncio

import numpy as np

from services.recommender.app import in_memory_core
from services.recommender.scorer import LinearScorer, Scored, ScorerError, ScoringBatch
from services.recommender.shadow import ShadowLane, in_share
from services.recommender.state import UserState
from tests.support.clicks import click
from tests.unit.test_pipeline import warm


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


class FixedProbe:
    def __init__(self, version: str | None) -> None:
        self.version = version

    async def active_version(self) -> str | None:
        return self.version


class ReversedScorer:
    """Ranks the candidates the other way round, so its lists differ from the served."""

    def __init__(self, fail: bool = False) -> None:
        self.fail, self.batches = fail, 0

    async def score(self, batch: ScoringBatch) -> Scored:
        self.batches += 1
        if self.fail:
            raise ScorerError("shadow down")
        return Scored(-(batch.features @ np.ones(batch.features.shape[-1], np.float32)), "x")


def test_a_click_judges_the_previous_list_with_its_rank() -> None:
    user = UserState()
    user.record("e1", "a", 1.0, 50, 100)
    user.show("serving", "e1", "scorer:3", 4, ["x", "y", "z"])
    user.show("shadow", "e0", "scorer:challenger-1", 4, ["y"])  # made for an older click
    judged = user.judge("y")
    assert len(judged) == 1  # the shadow's list was not what was showing
    verdict = judged[0]
    assert (verdict.lane, verdict.model_version, verdict.segment) == ("serving", "scorer:3", 4)
    assert verdict.hit and verdict.rank == 2
    assert not user.judge("q")[0].hit and user.judge("q")[0].rank is None
    # Kept in the changelogged state.
    assert UserState.from_json(user.to_json()).shown == user.shown
    assert UserState().judge("a") == []  # a first click has nothing to judge


def test_the_next_click_carries_the_verdict_on_the_served_list() -> None:
    core = in_memory_core()
    warm(core)
    first = run(core.process([click("e1", "u1", "a", minute=10)])).recommendations[0]
    shown = [i.item_id for i in first.items]
    second = run(core.process([click("e2", "u1", shown[1], minute=11)])).recommendations[0]
    assert first.judged == []
    [verdict] = second.judged
    assert verdict.lane == "serving" and verdict.model_version == LinearScorer.version
    assert verdict.hit and verdict.rank == 2
    third = run(core.process([click("e3", "u1", "never-shown", minute=12)])).recommendations[0]
    assert [v.hit for v in third.judged] == [False]


def test_two_clicks_in_one_batch_judge_only_what_was_showing() -> None:
    core = in_memory_core()
    warm(core)
    run(core.process([click("e1", "u1", "a", minute=10)]))
    res = run(core.process([click("e2", "u1", "b", minute=11), click("e3", "u1", "c", minute=12)]))
    assert len(res.recommendations[0].judged) == 1  # e1's list was showing when e2 came
    assert res.recommendations[1].judged == []  # e2's list was never shown before e3


def test_the_shadow_ranks_its_share_unpublished_and_is_judged_beside_the_served() -> None:
    shadow = ShadowLane(ReversedScorer(), FixedProbe("scorer:challenger-9"), share=0.5)
    core = in_memory_core()
    core.shadow = shadow
    # Before the shadow is found, so the warm-up users get no shadow lists; eight items
    # co-visited, so a list has several candidates to order.
    run(
        core.process(
            [click(f"w{u}-{j}", f"w{u}", f"i{j}", minute=j) for u in range(20) for j in range(8)]
        )
    )
    run(shadow.refresh())
    users = [f"s{i}" for i in range(40)]
    first = run(core.process([click(f"a-{u}", u, "i0", minute=10) for u in users]))
    second = run(core.process([click(f"b-{u}", u, "i1", minute=11) for u in users]))
    assert all(r.model_version == LinearScorer.version for r in first.recommendations)
    selected = {u for u in users if in_share(u, 0.5)}
    assert 0 < len(selected) < len(users)
    for rec in second.recommendations:
        lanes = {v.lane: v for v in rec.judged}
        assert lanes["serving"].model_version == LinearScorer.version
        if rec.user_id in selected:
            assert lanes["shadow"].model_version == "scorer:challenger-9"
        else:
            assert "shadow" not in lanes
    assert shadow.scored_clicks == 2 * len(selected)
    # The shadow's list is its own (reversed order), not a copy of the served one.
    user = core.users.get(sorted(selected)[0])
    assert user.shown["shadow"]["items"] != user.shown["serving"]["items"]


def test_a_failing_shadow_changes_nothing_served() -> None:
    broken = ShadowLane(ReversedScorer(fail=True), FixedProbe("scorer:challenger-1"), share=1.0)
    core, plain = in_memory_core(), in_memory_core()
    core.shadow = broken
    for c in (core, plain):
        warm(c)
    run(broken.refresh())
    batch = [click(f"e{i}", f"u{i}", "a", minute=10) for i in range(5)]
    got = run(core.process(batch)).recommendations
    want = run(plain.process(batch)).recommendations
    assert [r.items for r in got] == [r.items for r in want]
    assert broken.failures == 1 and broken.scored_clicks == 0
    assert not broken.active  # resting: the next batches do not wait on it again
    assert all("shadow" not in core.users.get(f"u{i}").shown for i in range(5))


def test_the_lane_switches_off_when_the_shadow_is_unloaded() -> None:
    probe = FixedProbe("scorer:challenger-2")
    lane = ShadowLane(ReversedScorer(), probe, share=1.0)
    run(lane.refresh())
    assert lane.active and lane.selected("anyone")
    probe.version = None
    run(lane.refresh())
    assert not lane.active and not lane.selected("anyone")
    assert not ShadowLane(ReversedScorer(), probe, share=0.0).selected("anyone")
