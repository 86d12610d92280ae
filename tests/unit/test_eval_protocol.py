"""The replay order, the consecutive-pair protocol and its HR/NDCG, on hand-made streams."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from services.contract.events import ClickEvent, ItemEvent
from services.eval.protocol import Pair, consecutive_pairs, ranks, score
from services.eval.stream import ReplayStream, choose_withheld, order_clicks

T0 = datetime(1997, 9, 20, tzinfo=UTC)


def click(event_id: str, user: str, item: str, second: int = 0) -> ClickEvent:
    return ClickEvent(
        event_id=event_id, user_id=user, item_id=item, ts=T0 + timedelta(seconds=second)
    )


def test_order_is_by_timestamp_and_keeps_given_order_for_ties() -> None:
    clicks = [
        click("c", "u1", "i3", 5),
        click("a", "u2", "i1", 1),
        click("b2", "u1", "i2", 3),
        click("b1", "u3", "i2", 3),  # same second as b2: stays after it
        click("b3", "u2", "i4", 3),
    ]
    assert [c.event_id for c in order_clicks(clicks)] == ["a", "b2", "b1", "b3", "c"]


def test_build_limits_after_ordering_and_splits_at_the_warmup_fraction() -> None:
    clicks = [click(f"e{s}", "u", f"i{s}", s) for s in (9, 3, 7, 1, 5, 0, 8, 2, 6, 4)]
    stream = ReplayStream.build("toy", [], clicks, warmup_fraction=0.8, limit=5)
    assert [c.event_id for c in stream.clicks] == ["e0", "e1", "e2", "e3", "e4"]
    assert stream.split == 4 and stream.test_clicks == 1
    full = ReplayStream.build("toy", [], clicks)
    assert full.split == 8


def test_for_run_prefixes_events_and_users_but_not_items() -> None:
    items = [ItemEvent(item_id="i1", title="One")]
    stream = ReplayStream.build("toy", items, [click("e1", "u1", "i1")]).for_run("r7")
    only = stream.clicks[0]
    assert (only.event_id, only.user_id, only.item_id) == ("r7-e1", "r7-u1", "i1")
    assert stream.items == items


def test_pairs_are_consecutive_clicks_of_one_user_both_after_the_split() -> None:
    clicks = [
        click("w1", "u1", "a"),  # 0: warm-up
        click("w2", "u2", "b"),  # 1: warm-up
        click("t1", "u1", "c"),  # 2: test; its predecessor w1 is warm-up -> no pair
        click("t2", "u2", "d"),  # 3
        click("t3", "u1", "e"),  # 4: pairs with t1
        click("t4", "u3", "f"),  # 5: u3's only click
        click("t5", "u2", "g"),  # 6: pairs with t2
        click("t6", "u1", "h"),  # 7: pairs with t3
    ]
    assert consecutive_pairs(clicks, split=2) == [
        Pair("t1", "u1", "e", "t3"),
        Pair("t2", "u2", "g", "t5"),
        Pair("t3", "u1", "h", "t6"),
    ]
    assert len(consecutive_pairs(clicks, split=0)) == 5
    assert consecutive_pairs(clicks, split=8) == []


def test_hr_ndcg_and_mrr_by_hand() -> None:
    pairs = [Pair("e1", "u", "x"), Pair("e2", "u", "y"), Pair("e3", "u", "z"), Pair("e4", "v", "w")]
    answers = {
        "e1": ["x", "a", "b"],  # rank 1: gain 1
        "e2": ["a", "b", "y"],  # rank 3: gain 1/log2(4) = 0.5
        "e3": ["a", "b", "c"],  # miss
        # e4: never answered, counts as a miss
    }
    q = score(pairs, answers, k=10)
    assert (q.pairs, q.answered, q.hits) == (4, 3, 2)
    assert q.hr == pytest.approx(2 / 4)
    assert q.ndcg == pytest.approx((1.0 + 0.5) / 4)
    assert q.mrr == pytest.approx((1.0 + 1 / 3) / 4)
    assert q.as_dict()["mrr@10"] == round((1.0 + 1 / 3) / 4, 6)
    assert ranks(pairs, answers, k=10) == [1, 3, 0, 0]
    assert ranks(pairs, answers, k=2) == [1, 0, 0, 0]
    assert score(pairs, answers, k=2).mrr == pytest.approx(1.0 / 4)
    assert q.covered == len({"x", "a", "b", "y", "c"})  # distinct items shown


def test_only_the_first_k_items_count() -> None:
    pairs = [Pair("e1", "u", "x")]
    ranked = [f"i{n}" for n in range(10)] + ["x"]  # the target at rank 11
    assert score(pairs, {"e1": ranked}, k=10).hr == 0.0
    q = score(pairs, {"e1": ranked}, k=11)
    assert q.hr == 1.0 and q.ndcg == pytest.approx(1 / math.log2(12))
    assert q.mrr == pytest.approx(1 / 11)
    assert score(pairs, {"e1": ranked}, k=10).mrr == 0.0  # MRR@k: nothing beyond k
    assert q.as_dict()["hr@11"] == 1.0
    assert score(pairs, {"e1": ranked}, k=3).covered == 3  # only the top k count


def test_no_pairs_scores_zero_and_k_must_be_positive() -> None:
    assert score([], {}, k=10).hr == 0.0
    with pytest.raises(ValueError, match="k must be positive"):
        score([], {}, k=0)


def test_withheld_items_are_seeded_a_tenth_and_independent_of_order() -> None:
    ids = [f"i{n}" for n in range(200)]
    chosen = choose_withheld(ids, 0.1, seed=3)
    assert len(chosen) == 20 and chosen <= set(ids)
    assert choose_withheld(reversed(ids), 0.1, seed=3) == chosen  # same set, any order
    assert choose_withheld(ids * 2, 0.1, seed=3) == chosen  # distinct ids count once
    assert choose_withheld(ids, 0.1, seed=4) != chosen
    assert choose_withheld(ids, 0.0, seed=3) == frozenset()
    with pytest.raises(ValueError, match="withheld fraction"):
        choose_withheld(ids, 1.0, seed=3)


def test_withholding_removes_warmup_clicks_only_and_keeps_the_catalog() -> None:
    items = [ItemEvent(item_id=f"i{n}", title=f"Item {n}") for n in range(50)]
    clicks = [
        click(f"e{s}", f"u{s % 7}", f"i{(s * 13) % 50}", s) for s in range(400)
    ]  # every item clicked, in the warm-up and in the test part
    stream = ReplayStream.build("toy", items, clicks, warmup_fraction=0.8)
    held = stream.withhold(0.1, seed=0)

    assert len(held.withheld) == 5 and held.items == stream.items  # catalog untouched
    assert held.withheld == stream.withhold(0.1, seed=0).withheld  # deterministic
    warmup, test = held.clicks[: held.split], held.clicks[held.split :]
    assert not {c.item_id for c in warmup} & held.withheld
    assert test == stream.clicks[stream.split :]  # the judged part is exactly as before
    assert {c.item_id for c in test} & held.withheld  # ... and does click withheld items
    removed = [c for c in stream.clicks[: stream.split] if c.item_id in held.withheld]
    assert held.withheld_warmup_clicks == len(removed) > 0
    assert held.split == stream.split - len(removed)
    kept = [c for c in stream.clicks[: stream.split] if c.item_id not in held.withheld]
    assert warmup == kept  # in order
    # Pairs live in the judged part only, so they are the same pairs.
    assert consecutive_pairs(held.clicks, held.split) == consecutive_pairs(
        stream.clicks, stream.split
    )
    prefixed = held.for_run("r1")
    assert prefixed.withheld == held.withheld and prefixed.split == held.split
    assert held.summary()["withheld_items"] == 5
