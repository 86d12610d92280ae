"""The array co-visitation graph gives the dict-of-Counters version's results exactly."""

from __future__ import annotations

import heapq
import random
from collections import Counter
from operator import itemgetter

import numpy as np
import pytest

from services.recommender import covis
from services.recommender.covis import CovisitationGraph
from services.recommender.state import COVIS_WINDOW, ItemStats


class _DictGraph:
    """The implementation ``covis.py`` replaced (services/recommender/state.py at
    960734e), kept as the reference."""

    def __init__(self, max_neighbours: int) -> None:
        self.max_neighbours = max_neighbours
        self.covis: dict[str, Counter[str]] = {}

    def observe(self, item_id: str, previous: list[str]) -> None:
        for pos, other in enumerate(previous[:COVIS_WINDOW]):
            if other == item_id:
                continue
            weight = 1.0 / (1 + pos)
            for a, b in ((item_id, other), (other, item_id)):
                row = self.covis.setdefault(a, Counter())
                row[b] += weight  # type: ignore[assignment]
                if len(row) > 2 * self.max_neighbours:
                    self.covis[a] = Counter(dict(row.most_common(self.max_neighbours)))

    def neighbours(self, recent: list[str], limit: int) -> dict[str, float]:
        scores: dict[str, float] = {}
        for pos, source in enumerate(recent[: COVIS_WINDOW * 2]):
            row = self.covis.get(source)
            if not row:
                continue
            weight = 1.0 / (1 + pos)
            for item, count in row.items():
                scores[item] = scores.get(item, 0.0) + weight * count
        return dict(heapq.nlargest(limit, scores.items(), key=itemgetter(1)))

    def strongest_source(self, recent: list[str], item: str) -> str | None:
        best, best_value = None, 0.0
        for pos, source in enumerate(recent[: COVIS_WINDOW * 2]):
            row = self.covis.get(source)
            value = row.get(item, 0.0) / (1 + pos) if row else 0.0
            if value > best_value:
                best, best_value = source, value
        return best


@pytest.mark.parametrize("dense_factor", [8, 0], ids=["counting", "sorting"])
@pytest.mark.parametrize("max_neighbours", [4, 200])
def test_a_replayed_stream_gives_the_dict_versions_neighbours_and_sources_exactly(
    max_neighbours: int, dense_factor: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(covis, "DENSE_FACTOR", dense_factor)  # both ways of summing
    # Small max_neighbours prunes rows all the time; a catalog of 60 items makes ties common.
    rng = random.Random(max_neighbours)
    reference = _DictGraph(max_neighbours)
    stats = ItemStats()
    stats._covis = CovisitationGraph(max_neighbours)
    history: dict[int, list[str]] = {}
    checked = 0
    for k in range(4000):
        user = rng.randrange(40)
        head = rng.random() < 0.6  # a heavy-tailed head, then uniform over the catalog
        item = f"i{min(int(rng.paretovariate(1.0)), 60) if head else rng.randrange(60)}"
        recent = history.setdefault(user, [])
        if k % 7 == 0 and recent:
            limit = rng.choice([1, 5, 50, 500])
            want = reference.neighbours(recent, limit)
            got = stats.neighbours(recent, limit)
            assert list(got) == list(want)  # the same items in the same order
            assert got.scores.tolist() == list(want.values())  # bit for bit
            shown = [*list(want)[:10], "i999"]
            assert got.strongest_sources(shown) == [
                reference.strongest_source(recent, i) for i in shown
            ]
            checked += 1
        reference.observe(item, recent[:COVIS_WINDOW])
        stats.observe(item, recent[:COVIS_WINDOW], float(k))
        if item in recent:
            recent.remove(item)
        recent.insert(0, item)
        del recent[50:]
    assert checked > 500
    assert {a: dict(row) for a, row in stats.covis.items()} == {
        a: dict(row) for a, row in reference.covis.items()
    }
    for a, row in reference.covis.items():
        want = sorted(row, key=row.__getitem__, reverse=True)[:20]
        assert stats.covisited(a, 20) == want


def test_a_user_with_no_known_recent_item_has_no_neighbours() -> None:
    graph = CovisitationGraph(10)
    graph.add("a", "b", 1.0)
    near = graph.neighbours(["x", "y"], 10, [1.0, 0.5])
    assert list(near) == [] and near.get("a") == 0.0
    assert near.strongest_sources(["a", "b"]) == [None, None]
    assert graph.row("x") == {} and graph.top("x", 5) == [] and "x" not in graph.view()


def test_rows_are_bounded_and_keep_the_largest_counts() -> None:
    graph = CovisitationGraph(max_neighbours=3)
    for n in range(7):
        graph.add("hub", f"n{n}", float(n + 1))
    # The seventh neighbour took the row past 2 x 3: pruned to the 3 largest, largest first.
    assert list(graph.row("hub").items()) == [("n6", 7.0), ("n5", 6.0), ("n4", 5.0)]
    graph.add("hub", "n0", 0.5)  # a pruned neighbour comes back with its new count only
    assert list(graph.row("hub")) == ["n6", "n5", "n4", "n0"]
    assert graph.top("hub", 2) == ["n6", "n5"]
    assert graph.pairs() == 4 + 7  # and each n* row holds "hub"
    assert np.isclose(graph.neighbours(["n6"], 5, [1.0]).get("hub"), 7.0)


def test_the_strongest_source_divides_as_the_dict_version_did() -> None:
    # 0.6000000000000001 / 3 > 0.2, but 0.6000000000000001 * (1 / 3) == 0.2: weighted as
    # the scores are, Z's pull on Y would tie X's and the nearer X would be named.
    reference, stats = _DictGraph(200), ItemStats()
    for previous in (["a", "b", "c", "d", "X"], *[["e", "f", "g", "h", "Z"]] * 3):
        # Y clicked five clicks after X once and after Z three times: weight 1/5 each.
        reference.observe("Y", previous)
        stats.observe("Y", previous, 0.0)
    recent = ["X", "W", "Z"]
    assert stats.covis["Z"]["Y"] == 0.6000000000000001
    assert reference.strongest_source(recent, "Y") == "Z"
    assert stats.neighbours(recent, 10).strongest_sources(["Y"]) == ["Z"]
