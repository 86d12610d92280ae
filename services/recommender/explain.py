"""Why an item was recommended, in words a user reads: "because you clicked «Heat (1995)»".

The reasons come from the evidence the pipeline already has — which candidate sources
proposed the item and with what anchor — not from the ranker's weights: they say why the
item is on the list at all, which is what a user can check against their own history.

>>> reasons(Evidence(sources=frozenset({"covisitation", "trending"}), covis_item="Heat (1995)"))
['because you clicked «Heat (1995)»', 'trending now']
>>> reasons(Evidence(sources=frozenset()))
['popular with everyone']
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FALLBACK", "SOURCES", "Evidence", "reasons"]

SOURCES = frozenset({"covisitation", "segment", "semantic", "trending", "popular", "new"})
"""The candidate sources an :class:`Evidence` may name."""

FALLBACK = "popular with everyone"
"""The reason given when no evidence supports a more specific one."""


@dataclass(frozen=True)
class Evidence:
    """Why one item became a candidate, and the few facts its reasons quote.

    ``sources`` names the candidate generators that proposed it (any of :data:`SOURCES`).
    ``covis_item`` is the title of the user's clicked item it was co-visited with,
    ``similar_item`` the title of the user's recent item whose text is most similar,
    ``segment`` the user's segment number, and ``is_new`` says the item has no clicks yet.
    """

    sources: frozenset[str]
    covis_item: str | None = None
    similar_item: str | None = None
    segment: int | None = None
    is_new: bool = False

    def __post_init__(self) -> None:
        unknown = self.sources - SOURCES
        if unknown:
            raise ValueError(
                f"unknown evidence sources {sorted(unknown)}; expected any of {sorted(SOURCES)}"
            )


def reasons(e: Evidence, max_reasons: int = 2) -> list[str]:
    """Up to ``max_reasons`` reasons for recommending the item, strongest first; never empty.

    The order is fixed, from evidence about this user to evidence about everyone:

    1. co-visitation: "because you clicked «title»" (a click of theirs led here);
    2. semantic: "similar description to «title»" (text like an item they saw);
    3. segment: "popular in your segment (#n)" (people like them);
    4. trending: "trending now";
    5. popular: "popular with everyone";
    6. new (or ``is_new``): "new in the catalog".

    A source whose anchor is missing (no title, no segment number) gets a generic wording
    rather than none. An item with no clicks (``is_new``) is never called popular or
    trending, by segment or overall, whichever source proposed it: that would be untrue.
    With no applicable evidence the answer is :data:`FALLBACK`.
    """
    if max_reasons < 1:
        raise ValueError(f"max_reasons must be at least 1, got {max_reasons}")
    found = [text for rule in _RULES if (text := rule(e)) is not None]
    return found[:max_reasons] or [FALLBACK]


def _covisitation(e: Evidence) -> str | None:
    if "covisitation" not in e.sources:
        return None
    if e.covis_item is None:
        return "often clicked together with what you clicked"
    return f"because you clicked «{e.covis_item}»"


def _semantic(e: Evidence) -> str | None:
    if "semantic" not in e.sources:
        return None
    if e.similar_item is None:
        return "similar to what you viewed recently"
    return f"similar description to «{e.similar_item}»"


def _segment(e: Evidence) -> str | None:
    if "segment" not in e.sources or e.is_new:
        return None
    if e.segment is None:
        return "popular with people like you"
    return f"popular in your segment (#{e.segment})"


def _trending(e: Evidence) -> str | None:
    return "trending now" if "trending" in e.sources and not e.is_new else None


def _popular(e: Evidence) -> str | None:
    return FALLBACK if "popular" in e.sources and not e.is_new else None


def _new(e: Evidence) -> str | None:
    return "new in the catalog" if "new" in e.sources or e.is_new else None


# Strongest first: the order of reasons() and of its docstring.
_RULES: tuple[Callable[[Evidence], str | None], ...] = (
    _covisitation,
    _semantic,
    _segment,
    _trending,
    _popular,
    _new,
)
