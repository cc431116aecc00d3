"""Column names, in one place (no string literals scattered around)."""

from __future__ import annotations

from typing import Any

__all__ = [
    "FREE_TEXT_COLUMNS",
    "FREE_TEXT_MEAN_CHARS",
    "TITLE_COLUMNS",
    "Columns",
    "is_short_text",
]

TITLE_COLUMNS = ("title", "name")
"""Columns that hold an item's display name, in order of preference."""
FREE_TEXT_COLUMNS = (
    "description",
    "overview",
    "summary",
    "reviews",
    "text",
    "plot",
    "synopsis",
    "abstract",
    "body",
    "content",
    "article",
)
"""Free text: never an attribute (explanations quote it, cut, for the recommended item
only), and written after the other columns ``{*}`` stands for in the item text, so
cutting a long article's body never cuts its section or author."""
FREE_TEXT_MEAN_CHARS = 60
"""A string column whose values average more characters than this is free text, not attributes."""


def is_short_text(series: Any) -> bool:
    """Whether a text column's filled cells (the first 2,000) average at most
    :data:`FREE_TEXT_MEAN_CHARS` characters: attribute values, not free text."""
    sample = series.dropna().head(2000)
    return bool(len(sample)) and float(sample.map(lambda v: len(str(v))).mean()) <= (
        FREE_TEXT_MEAN_CHARS
    )


class Columns:
    """Canonical column names of the interaction and item frames."""

    user = "user_id"
    item = "item_id"
    timestamp = "timestamp"
    event = "event"
    weight = "weight"
    rating = "rating"
    score = "score"
    rank = "rank"

    interaction_required = (user, item)
    interaction_optional = (timestamp, event, weight, rating)
    item_required = (item,)
