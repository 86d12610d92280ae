"""User state bounds and item statistics."""

from __future__ import annotations

from services.recommender.state import DEDUP_WINDOW, ItemStats, UserState


def test_user_state_is_bounded_and_round_trips() -> None:
    user = UserState()
    for i in range(3000):
        user.record(f"e{i}", f"i{i % 2500}", float(i), recent_limit=50, seen_limit=2000)
    assert len(user.recent) == 50 and user.recent[0] == "i499"
    assert len(user.seen) == 2000
    assert len(user.event_ids) == DEDUP_WINDOW and user.has_event("e2999")
    assert not user.has_event("e0")
    assert UserState.from_json(user.to_json()) == user


def test_covisitation_links_items_clicked_together() -> None:
    stats = ItemStats()
    stats.observe("a", [], 0)
    stats.observe("b", ["a"], 1)
    stats.observe("c", ["b", "a"], 2)
    near = stats.neighbours(["a"], limit=10)
    assert set(near) == {"b", "c"}
    assert near["b"] > near["c"]  # adjacent clicks weigh more
    assert stats.strongest_source(["a"], "b") == "a"
    assert stats.strongest_source(["c", "a"], "b") == "c"  # nearer in time, same count
    assert stats.strongest_source(["a"], "nowhere") is None


def test_trending_decays_with_event_time() -> None:
    stats = ItemStats(half_life_s=10.0)
    stats.observe("old", [], 0)
    stats.observe("old", [], 0)
    stats.observe("new", [], 100)
    assert stats.trending("new") > stats.trending("old")
    assert stats.top_trending(1) == ["new"]
    assert stats.top_popular(1) == ["old"]
