"""The text the item encoder reads for an item, built the same way everywhere.

Torch-free on purpose: the worker builds item text for Triton's ``item_encoder`` and
must not pay for importing torch.
"""

from __future__ import annotations

import re

from services.contract.events import ItemEvent

# Attributes worth reading, in the order they are written. Others (ids, URLs, raw
# source titles such as MovieLens' ``ml_title``) add tokens but no meaning.
SALIENT_ATTRIBUTES = (
    "year",
    "brand",
    "author",
    "artist",
    "director",
    "publisher",
    "language",
    "country",
)
# The encoder reads at most max_length (128) word pieces, about 4-5 characters each;
# longer descriptions would only slow the tokenizer down.
MAX_DESCRIPTION_CHARS = 2_000

_SPACE = re.compile(r"\s+")


def _clean(text: str) -> str:
    """One line, single spaces, no trailing full stop (the joiner adds one)."""
    return _SPACE.sub(" ", text).strip().rstrip(".").rstrip()


def _attribute_text(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return ""  # flags read as "True"/"False" carry no meaning for the encoder
    if isinstance(value, str | int | float):
        return _clean(str(value))
    if isinstance(value, list | tuple):
        return ", ".join(t for t in (_attribute_text(v) for v in value) if t)
    return ""


def item_text(item: ItemEvent) -> str:
    """The text the encoder sees for an item: title, categories, salient attributes, description.

    Description goes last so that truncation to the encoder's token limit cuts it, not
    the short fields that identify the item. An attribute whose value the title already
    shows (MovieLens titles end in the year) is left out. Deterministic: same item,
    same text.
    """
    parts = [_clean(item.title)]
    if item.categories:
        cats = [c for c in (_clean(c) for c in item.categories) if c]
        if cats:
            parts.append("Categories: " + ", ".join(cats))
    title = parts[0].casefold()
    for key in SALIENT_ATTRIBUTES:
        value = _attribute_text((item.attributes or {}).get(key))
        if value and value.casefold() not in title:
            parts.append(f"{key.capitalize()}: {value}")
    if item.description:
        description = _clean(item.description[:MAX_DESCRIPTION_CHARS])
        if description:
            parts.append(description)
    return ". ".join(p for p in parts if p)
