"""Unit tests for services.recommender.explain: reason wording, order and fallback."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

import services.recommender.explain
from services.recommender.explain import FALLBACK, SOURCES, Evidence, reasons

EVERYTHING = Evidence(
    sources=SOURCES,
    covis_item="Toy Story (1995)",
    similar_item="Heat (1995)",
    segment=3,
)


def test_doctests_pass() -> None:
    result = doctest.testmod(services.recommender.explain)
    assert result.attempted > 0
    assert result.failed == 0


def test_full_order_strongest_first() -> None:
    assert reasons(EVERYTHING, max_reasons=10) == [
        "because you clicked «Toy Story (1995)»",
        "similar description to «Heat (1995)»",
        "popular in your segment (#3)",
        "trending now",
        "popular with everyone",
        "new in the catalog",
    ]


def test_default_keeps_the_two_strongest() -> None:
    assert reasons(EVERYTHING) == [
        "because you clicked «Toy Story (1995)»",
        "similar description to «Heat (1995)»",
    ]
    assert reasons(EVERYTHING, max_reasons=1) == ["because you clicked «Toy Story (1995)»"]


def test_order_does_not_depend_on_source_order() -> None:
    a = Evidence(sources=frozenset(["trending", "segment"]), segment=7)
    b = Evidence(sources=frozenset(["segment", "trending"]), segment=7)
    assert reasons(a) == reasons(b) == ["popular in your segment (#7)", "trending now"]


@pytest.mark.parametrize(
    ("evidence", "expected"),
    [
        (Evidence(sources=frozenset()), [FALLBACK]),
        (Evidence(sources=frozenset({"popular"})), ["popular with everyone"]),
        (Evidence(sources=frozenset({"trending"})), ["trending now"]),
        (Evidence(sources=frozenset({"new"})), ["new in the catalog"]),
        (Evidence(sources=frozenset(), is_new=True), ["new in the catalog"]),
        # Anchors without their source are not evidence of anything.
        (Evidence(sources=frozenset(), covis_item="Heat (1995)", segment=2), [FALLBACK]),
    ],
)
def test_single_reasons_and_fallback(evidence: Evidence, expected: list[str]) -> None:
    assert reasons(evidence) == expected


def test_missing_anchors_get_generic_wording() -> None:
    e = Evidence(sources=frozenset({"covisitation", "semantic", "segment"}))
    assert reasons(e, max_reasons=3) == [
        "often clicked together with what you clicked",
        "similar to what you viewed recently",
        "popular with people like you",
    ]


def test_new_item_is_never_called_popular() -> None:
    e = dataclasses.replace(EVERYTHING, is_new=True)
    assert reasons(e, max_reasons=10) == [
        "because you clicked «Toy Story (1995)»",
        "similar description to «Heat (1995)»",
        "new in the catalog",
    ]
    only_popular = Evidence(sources=frozenset({"popular", "trending"}), is_new=True)
    assert reasons(only_popular) == ["new in the catalog"]


def test_reasons_are_never_empty() -> None:
    for sources in ([], ["popular"], ["covisitation"], ["new"]):
        for is_new in (False, True):
            assert reasons(Evidence(sources=frozenset(sources), is_new=is_new), 1)


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown evidence sources"):
        Evidence(sources=frozenset({"covisitation", "cooccurrence"}))
    with pytest.raises(ValueError, match="max_reasons"):
        reasons(EVERYTHING, max_reasons=0)


def test_evidence_is_frozen_and_hashable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        EVERYTHING.segment = 4  # type: ignore[misc]  # the point: assignment must fail
    assert len({EVERYTHING, dataclasses.replace(EVERYTHING)}) == 1
