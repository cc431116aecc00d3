"""Column names, in one place (no string literals scattered around)."""

from __future__ import annotations

__all__ = ["Columns"]


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
