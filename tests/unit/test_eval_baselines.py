"""The in-process online baselines on toy streams: popularity and co-visitation answers
computed by hand; river's BiasedMF learning tastes, deterministically."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from services.contract.events import ClickEvent
from services.eval.baselines import CoVisitationKNN, Popularity, replay
from services.eval.biased_mf import BiasedMFBaseline
from services.eval.protocol import consecutive_pairs, score

T0 = datetime(1998, 1, 1, tzinfo=UTC)


def clicks(*triples: tuple[str, str]) -> list[ClickEvent]:
    return [
        ClickEvent(event_id=f"e{n}", user_id=user, item_id=item, ts=T0)
        for n, (user, item) in enumerate(triples)
    ]


def test_popularity_ranks_by_count_excludes_seen_and_breaks_ties_by_first_appearance() -> None:
    model = Popularity()
    for c in clicks(("u1", "a"), ("u2", "b"), ("u3", "b"), ("u3", "c"), ("u4", "a")):
        model.observe(c)
    # a and b have 2 clicks each, a appeared first; c has 1.
    assert model.recommend("new", 3) == ["a", "b", "c"]
    assert model.recommend("u3", 3) == ["a"]  # u3 clicked b and c
    assert model.recommend("u1", 1) == ["b"]


def test_covisitation_weights_by_distance_and_fills_with_popular_items() -> None:
    model = CoVisitationKNN(window=2, history=2)
    for c in clicks(
        ("u1", "a"),
        ("u1", "b"),
        ("u1", "c"),  # b-a: 1, c-b: 1, c-a: 1/2
        ("u2", "a"),
        ("u2", "d"),  # d-a: 1
        ("u3", "z"),
        ("u3", "z2"),
        ("u4", "z"),  # noise for the popularity fill
    ):
        model.observe(c)
    # u5 clicked a: neighbours b (1), d (1; appeared later), c (1/2).
    model.observe(clicks(("u5", "a"))[0])
    assert model.recommend("u5", 3) == ["b", "d", "c"]
    # A longer list is filled by popularity: z (2 clicks) then z2; a is seen.
    assert model.recommend("u5", 5) == ["b", "d", "c", "z", "z2"]
    # u1's history is c (weight 1), b (1/2): a = 1/2 + 1/2*1 = 1 but is seen; d is 0.
    assert model.recommend("u1", 1) == ["z"]


def test_replay_answers_after_each_wanted_click_with_the_click_counted() -> None:
    stream = clicks(("u1", "a"), ("u2", "a"), ("u2", "b"), ("u1", "b"), ("u3", "c"))
    answers = replay(Popularity(), stream, {"e1", "e4"}, k=2)
    # After e1 (u2 clicked a) no other item has been clicked yet; after e4 both count 2.
    assert answers == {"e1": [], "e4": ["a", "b"]}


def test_covisitation_beats_popularity_on_a_stream_with_sequences() -> None:
    # Even users walk a -> b -> c -> d, odd users the reverse: one global ranking cannot
    # be right for both, the neighbours of the latest item are.
    paths = (["a", "b", "c", "d"], ["d", "c", "b", "a"])
    stream = clicks(*[(f"u{u}", item) for u in range(20) for item in paths[u % 2]])
    pairs = consecutive_pairs(stream, split=60)
    wanted = {p.event_id for p in pairs}
    knn = score(pairs, replay(CoVisitationKNN(), stream, wanted, k=1), k=1)
    pop = score(pairs, replay(Popularity(), stream, wanted, k=1), k=1)
    assert knn.hr == 1.0
    assert pop.hr < knn.hr


def grouped_stream(n_users: int = 60, seed: int = 0) -> list[ClickEvent]:
    """Two tastes: even users click 8 of items a0-a9, odd users 8 of b0-b9, interleaved.

    Both halves of the catalog are equally popular, so only who-clicks-what separates them.
    """
    rng = np.random.default_rng(seed)
    plans = []
    for u in range(n_users):
        prefix = "a" if u % 2 == 0 else "b"
        plans.append([f"{prefix}{i}" for i in rng.permutation(10)[:8]])
    order = [
        (f"u{u}", item)
        for step in range(8)
        for u, plan in enumerate(plans)
        for item in [plan[step]]
    ]
    return clicks(*order)


def test_biased_mf_learns_tastes_online_and_beats_random_on_pairs() -> None:
    stream = grouped_stream()
    pairs = consecutive_pairs(stream, split=len(stream) // 2)
    wanted = {p.event_id for p in pairs}
    mf = score(pairs, replay(BiasedMFBaseline(seed=0), stream, wanted, k=3), k=3)
    # Random among the 20 items less the user's seen ones: at most 3 / 16 per pair.
    assert mf.answered == mf.pairs > 100
    assert mf.hr > 1.5 * 3 / 16
    pop = score(pairs, replay(Popularity(), stream, wanted, k=3), k=3)
    assert mf.hr > pop.hr  # the tastes, not just the counts


def test_biased_mf_is_deterministic_given_its_seed() -> None:
    stream = grouped_stream(n_users=20)
    wanted = {c.event_id for c in stream[-20:]}
    first = replay(BiasedMFBaseline(seed=7), stream, wanted, k=5)
    assert replay(BiasedMFBaseline(seed=7), stream, wanted, k=5) == first
    assert replay(BiasedMFBaseline(seed=8), stream, wanted, k=5) != first


def test_biased_mf_ranks_as_rivers_own_predictions_less_seen_items() -> None:
    model = BiasedMFBaseline(seed=1)
    for c in grouped_stream(n_users=10):
        model.observe(c)
    river = model.model
    for user in ("u0", "u1"):
        seen = model.seen[user]
        known = [i for i in (f"{p}{n}" for p in "ab" for n in range(10)) if i not in seen]
        by_river = sorted(known, key=lambda i: -river.predict_one(user, i))
        assert model.recommend(user, 5) == by_river[:5]
        assert not set(model.recommend(user, 20)) & seen
    assert model.recommend("nobody", 3)  # a new user gets the item biases' top
