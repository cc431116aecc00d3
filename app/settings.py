"""The app's paths, display sizes and input limits, and the checks that enforce the limits.

Limits are enforced twice: by the page's widgets and again on the server,
because the API (``gradio_client``) can skip the page.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hybrid_rec.errors import DataValidationError

__all__ = [
    "DEFAULT_BENCHMARKS_DIR",
    "DEFAULT_MODEL_DIR",
    "DEMO_EPOCHS",
    "DRIVERS_SHOWN",
    "HISTORY_SHOWN",
    "MINILM",
    "NEIGHBOURS_SHOWN",
    "REACH_SHOWN",
    "REPO_ROOT",
    "WEAK_TASTE_MATCH",
    "Limits",
    "as_number",
    "check_k",
    "check_new_items",
    "check_text",
    "shown",
    "weak_taste_match",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "ml100k"
"""Where the demo model is saved (gitignored), in the checkout whatever the working directory."""
DEFAULT_BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
DEMO_EPOCHS = 3
"""Epochs of the first-start fit: sensible results in a few minutes on 2 cores (an epoch of
ml-100k took 20-45 s on a quiet machine, up to 4 minutes on a busy one); ``hybrid-rec fit``
trains the full early-stopped schedule, and ``serve --model-dir`` serves such a model."""

HISTORY_SHOWN = 12
"""History items listed in the user tab (the rest are counted)."""
DRIVERS_SHOWN = 3
"""History items shown as the drivers of one recommendation."""
REACH_SHOWN = 8
"""Users listed as the reach of a new item."""
NEIGHBOURS_SHOWN = 6
"""Nearest catalogue items listed for a new item."""
MINILM = "sentence-transformers:all-MiniLM-L6-v2@53aa51172d14"
"""The demo encoder's name, as the library names it (model and weights' sha256)."""
WEAK_TASTE_MATCH: dict[str, float] = {MINILM: 0.34}
"""Per encoder name (``rec.describe()["encoder"]``): below this best cosine between a taste
in words and any item's text (:meth:`~hybrid_rec.HybridRecommender.text_match`), the
new-user tab says the words matched nothing closely and the list is broad picks.

The scale is the encoder's (E5's cosines run high, the hashing encoder's low), so a value
holds for the encoder it was measured with only, and an encoder without one gets no notice.
MiniLM's, measured on MovieLens-100k's 1,682 item texts: 16 gibberish tastes 0.103-0.267
("asdkj qwpoe" 0.239, "lorem ipsum dolor sit amet" 0.265), 5 non-answers 0.174-0.259
("no idea", "test") and "abc" 0.361; 8 real wants the catalogue does not hold 0.163-0.320
("tax accounting software" 0.163, "printer ink cartridges" 0.320); 42 film tastes
0.199-0.705, all at 0.367 or more ("action" 0.367, "rockets orbit" 0.397, "romantic comedy
set in New York" 0.705) but three moods that match no film's text either ("sad" 0.199,
"funny" 0.234, "I want to laugh" 0.264). 0.34 sits between 0.320 and 0.367."""


def weak_taste_match(encoder: str | None) -> float | None:
    """The broad-picks threshold measured for ``encoder`` (its name), or None: no notice."""
    return WEAK_TASTE_MATCH.get(encoder) if encoder else None


@dataclass(frozen=True)
class Limits:
    """Input limits enforced in the page and again on the server (the API can skip the page)."""

    max_k: int = 50
    max_text: int = 2000
    max_title: int = 200
    max_liked: int = 20
    max_added: int = 500
    max_removed: int = 500
    max_id: int = 100
    max_attribute: int = 60
    max_values: int = 12


def shown(value: Any, limit: int = 40) -> str:
    """``repr(value)``, cut to ``limit`` characters: an error never echoes a megabyte."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def as_number(value: Any) -> float:
    """``value`` as a float; NaN where it is not a number (or too large for one)."""
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return float("nan")


def check_k(k: Any, limits: Limits) -> int:
    """``k`` as an int between 1 and ``limits.max_k``, or a readable error."""
    value = as_number(k)
    if not value.is_integer() or not 1 <= value <= limits.max_k:
        raise DataValidationError(
            f"must be a whole number between 1 and {limits.max_k}, got {shown(k)}.",
            source="k",
            fix="move the slider.",
        )
    return int(value)


def check_new_items(n: Any, k: int) -> int:
    """Places kept for new arrivals: a whole number from 0, at most ``k`` (a larger one
    asks for a list of new arrivals only), or a readable error."""
    value = as_number(n)
    if not value.is_integer() or value < 0:
        raise DataValidationError(
            f"must be a whole number from 0, got {shown(n)}.",
            source="new arrivals",
            fix="move the slider.",
        )
    return int(min(value, k))


def check_text(text: Any, limit: int, what: str) -> str:
    """``text`` without control and format characters (zero-width spaces, direction
    overrides, escape codes; a tab or newline becomes a space, except in multi-line
    fields, which keep their newlines) and stripped (None gives ``""``), or a readable
    error when it is too long. Text of invisible characters only is empty."""
    raw = "" if text is None else str(text)
    value = "".join(
        ch
        if unicodedata.category(ch) not in ("Cc", "Cf") or ch == "\n"
        else (" " if ch in "\t\r" else "")
        for ch in raw
    ).strip()
    if len(value) > limit:
        raise DataValidationError(
            f"is {len(value):,} characters long; the limit is {limit:,}.",
            source=what,
            fix="shorten it.",
        )
    return value
