"""User state bounds and item statistics."""

from __future__ import annotations

import pytest

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
    assert near.get("b") > near.get("c")  # adjacent clicks weigh more
    assert near.strongest_sources(["b", "nowhere"]) == ["a", None]
    # Nearer in time, same count: "c" led to "b" as much as "a" did, and more recently.
    assert stats.neighbours(["c", "a"], limit=10).strongest_sources(["b"]) == ["c"]


def test_trending_decays_with_event_time() -> None:
    stats = ItemStats(half_life_s=10.0)
    stats.observe("old", [], 0)
    stats.observe("old", [], 0)
    stats.observe("new", [], 100)
    assert stats.trending("new") > stats.trending("old")
    assert stats.top_trending(1) == ["new"]
    assert stats.top_popular(1) == ["old"]


def test_user_state_counts_clicks_over_the_last_hour_and_day() -> None:
    user = UserState()
    day0 = 1_714_564_800.0
    for i, offset in enumerate((0.0, 3600.0 * 20, 3600.0 * 23.5, 3600.0 * 23.9)):
        user.record(f"e{i}", f"i{i}", day0 + offset, recent_limit=50, seen_limit=2000)
    assert (user.clicks_1h, user.clicks_24h, user.clicks) == (2, 4, 4)
    back = UserState.from_json(user.to_json())
    assert back == user and (back.clicks_1h, back.clicks_24h) == (2, 4)


def test_user_state_saved_before_windows_still_loads() -> None:
    old = {"recent": ["a"], "seen": ["a"], "event_ids": ["e1"], "clicks": 1, "last_ts": 5.0}
    user = UserState.from_json(old)
    assert user.clicks == 1 and (user.clicks_1h, user.clicks_24h) == (0, 0)
    user.record("e2", "b", 10.0, recent_limit=50, seen_limit=2000)
    assert user.clicks_24h == 1  # only what it has seen since


class _Table:
    """The part of a Faust table the store uses: ``data`` and ``send_changelog``."""

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.sent: list[tuple[int, str, object]] = []

    def send_changelog(self, partition: int, key: str, value: object) -> None:
        self.sent.append((partition, key, value))


@pytest.mark.parametrize("saved", [[1, 2], {"shown": [1]}, {"clicks": float("inf")}, "x"])
def test_an_unreadable_saved_state_starts_the_user_afresh_instead_of_failing(
    saved: object, caplog: pytest.LogCaptureFixture
) -> None:
    from services.recommender.app import FaustUserStateStore

    table = _Table()
    table.data["u1"] = saved
    with pytest.raises(ValueError, match="not a saved user state"):
        UserState.from_json(saved)  # type: ignore[arg-type]
    store = FaustUserStateStore(table)
    assert store.get("u1") == UserState()
    assert "saved state unreadable" in caplog.text
    state = UserState()
    state.record("e1", "i1", 1.0, 10, 100)
    store.put("u1", state, partition=2)
    assert store.get("u1") == state and table.sent[-1][:2] == (2, "u1")


def _fresh(s: str) -> str:
    """A new string object equal to ``s``, as every decoded message brings its own."""
    return "".join(list(s))


def test_long_lived_state_holds_one_copy_of_each_item_id() -> None:
    # The soak's memory growth was mostly co-visitation rows each keeping the copy of an
    # id that its record brought (docs/RELIABILITY.md, test 15).
    assert _fresh("item-a") is not _fresh("item-a")
    stats = ItemStats()
    users = [UserState(), UserState()]
    for ts in range(3):
        stats.observe(_fresh("item-a"), [_fresh("item-b")], float(ts))
        stats.observe(_fresh("item-b"), [_fresh("item-a")], float(ts))
        for user in users:
            user.record(_fresh(f"e{ts}"), _fresh("item-a"), float(ts), 10, 100)
    held = [*stats.popularity, *stats.covis]
    held += [item for row in stats.covis.values() for item in row]
    held += [item for user in users for item in (*user.seen, *user.recent)]
    for item in ("item-a", "item-b"):
        copies = {id(k) for k in held if k == item}
        assert len(copies) == 1, f"{item} held as {len(copies)} objects"
