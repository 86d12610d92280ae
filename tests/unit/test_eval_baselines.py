"""The in-process online baselines on a toy stream, every answer computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from services.contract.events import ClickEvent
from services.eval.baselines import CoVisitationKNN, Popularity, replay
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
