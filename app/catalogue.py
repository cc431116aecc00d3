"""Read-only views of a fitted recommender's catalogue: titles, attributes, coldness, words.

Everything here reads ``rec.items_`` and ``rec.counts_``; nothing changes the model.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec import HybridRecommender
from hybrid_rec import title_column as library_title_column

__all__ = [
    "ATTRIBUTE_COLUMNS",
    "ITEM_COL",
    "TITLE_FROM_TEXT_CHARS",
    "UNTITLED",
    "USER_COL",
    "Catalogue",
    "cell_text",
    "content_words",
    "names_id",
    "stem",
]

ITEM_COL, USER_COL = "item_id", "user_id"
ATTRIBUTE_COLUMNS = ("genres", "category", "tags", "brand")
"""Candidate columns for the chips on a card and the attribute field of a new item."""
UNTITLED = "Untitled item"
"""Shown, with the id, for an item that has neither a title nor a description."""
TITLE_FROM_TEXT_CHARS = 48
"""How much of the description stands in for a missing title."""
_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_STOPWORD_TEXT = """
about after again also among another being between both could does doing down each every from
have having here into just like more most much only other over same should some such than that
their them then there these they this those through under until very want were what when where
which while with would your yours films film movie movies something things thing really quite
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class Catalogue:
    """Read-only views of ``rec.items_`` / ``rec.counts_``: titles, chips, coldness.

    Rebuilt lazily when the catalogue grows (``add_items``).
    """

    def __init__(self, rec: HybridRecommender) -> None:
        self.rec = rec
        self._size = -1
        self._pos: dict[str, int] = {}
        self._titles: list[str] = []
        self.tail_max = int(rec.config.eval.long_tail_max_interactions)
        self.separator = rec.config.content.list_separator or "|"

    def _sync(self) -> None:
        items = self.rec.items_
        if len(items) != self._size:
            ids = items[ITEM_COL].astype(str).tolist()
            self._pos = {item: n for n, item in enumerate(ids)}
            rows = _rows(items, self.title_column)
            self._titles = [_title(row, item) for row, item in zip(rows, ids, strict=True)]
            self._size = len(items)

    def __contains__(self, item_id: object) -> bool:
        self._sync()
        return str(item_id) in self._pos

    def __len__(self) -> int:
        self._sync()
        return self._size

    def row(self, item_id: str) -> pd.Series:
        self._sync()
        return self.rec.items_.iloc[self._pos[str(item_id)]]

    def count(self, item_id: str) -> int:
        self._sync()
        return int(self.rec.counts_[self._pos[str(item_id)]])

    def title(self, item_id: str) -> str:
        """``Title (year)``; for an item without a title, the first words of its
        description, or ``Untitled item · id`` (never the bare id)."""
        self._sync()
        return self._titles[self._pos[str(item_id)]]

    @property
    def title_column(self) -> str | None:
        """The catalogue's display-name column as the library picks it (``title``, else
        ``name``: a shop's catalogue), if it has one."""
        column = library_title_column(self.rec.items_)
        return None if column == ITEM_COL else column

    @property
    def attribute_column(self) -> str | None:
        """The catalogue's categorical column (genres, category ...), if it has one."""
        cols = self.rec.items_.columns
        return next((c for c in ATTRIBUTE_COLUMNS if c in cols), None)

    def other_columns(self) -> list[str]:
        """Catalogue columns the new-item form has no field of its own for (brand, price ...)."""
        own = {ITEM_COL, "title", "description", "year", "keywords"}
        own |= {c for c in (self.title_column, self.attribute_column) if c}
        return [str(c) for c in self.rec.items_.columns if c not in own]

    def is_numeric(self, column: str) -> bool:
        return bool(pd.api.types.is_numeric_dtype(self.rec.items_[column]))

    def details(self, item_id: str, shown: int = 4, width: int = 30) -> list[str]:
        """``column value`` of the catalogue's other columns (brand, price ...) that
        have a value for the item, at most ``shown``, each value cut at ``width``."""
        row = self.row(item_id)
        out = []
        for column in self.other_columns()[:shown]:
            text = cell_text(row.get(column))
            if text:
                text = ", ".join(self._split(text)) or text
                out.append(f"{column} {text[:width] + '…' if len(text) > width else text}")
        return out

    def attributes(self, item_id: str) -> list[str]:
        column = self.attribute_column
        return self._split(self.row(item_id).get(column)) if column else []

    def _split(self, value: Any) -> list[str]:
        text = cell_text(value)
        if not text:
            return []
        return [part.strip() for part in text.split(self.separator) if part.strip()]

    def vocabulary(self) -> list[str]:
        """Every value of the attribute column (for the new-item form)."""
        column = self.attribute_column
        if column is None:
            return []
        values = {v for cell in self.rec.items_[column].tolist() for v in self._split(cell)}
        return sorted(values, key=str.lower)

    def words(self, item_id: str) -> set[str]:
        """Content words of an item (title, attributes, keywords, description)."""
        row = self.row(item_id)
        text = " ".join(cell_text(row.get(c)) or "" for c in row.index if c != ITEM_COL)
        return {stem(w) for w in content_words(text.replace(self.separator, " "))}

    def kind(self, count: int) -> str | None:
        """``"cold"`` (no interactions), ``"tail"`` (fewer than the long-tail limit) or None."""
        if count == 0:
            return "cold"
        return "tail" if count < self.tail_max else None

    def removed(self) -> set[str]:
        """Ids of the items taken out of service (``remove_items``): still in the model
        (histories keep them), but neither listed in the picker nor counted."""
        return set(self.rec.removed_items)

    def served(self) -> int:
        """How many items are served: the catalogue less its removed items."""
        return len(self) - len(self.rec.removed_items)

    def choices(self) -> list[tuple[str, str]]:
        """``(label, item_id)`` pairs for the searchable item picker, sorted by title;
        the label is ``title · id`` (a search by either finds it; items of one title,
        colour variants, are told apart), or the title alone where it names the id
        already (``Untitled item · id``). Removed items are left out."""
        self._sync()
        removed = self.removed()
        pairs = [
            (title if names_id(title, item) else f"{title} · {item}", item)
            for title, item in zip(self._titles, self._pos, strict=True)
            if item not in removed
        ]
        return sorted(pairs, key=lambda p: p[0].lower())

    def composition(self) -> dict[str, int]:
        """Cold / long-tail / head counts of the served items (removed ones left out)."""
        self._sync()
        counts = np.asarray(self.rec.counts_)
        removed = [self._pos[item] for item in self.removed()]
        if removed:
            counts = np.delete(counts, removed)
        cold = int((counts == 0).sum())
        tail = int(((counts > 0) & (counts < self.tail_max)).sum())
        return {"items": len(counts), "cold": cold, "tail": tail, "head": len(counts) - cold - tail}


def content_words(text: str) -> set[str]:
    """Lower-case words of four letters or more, without stop words."""
    return set(_WORD.findall(text.lower())) - _STOPWORDS


def stem(word: str) -> str:
    """Plural and singular match: ``rockets`` → ``rocket`` (nothing cleverer)."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 4 else word


def names_id(title: str, item_id: str) -> bool:
    """Whether a displayed title already shows the id (then it is not repeated beside it)."""
    return title == item_id or title.endswith(f"{UNTITLED} · {item_id}")


def _rows(items: pd.DataFrame, title: str | None) -> Iterator[dict[str, Any]]:
    """Per item, the cells its display title is made of: ``title`` (the cell of the
    column ``title`` names: the catalogue's ``title`` or ``name``), ``year`` and
    ``description``."""
    wanted = {"title": title, "year": "year", "description": "description"}
    cols = {key: col for key, col in wanted.items() if col is not None and col in items.columns}
    for values in zip(*(items[c].tolist() for c in cols.values()), strict=True) if cols else ():
        yield dict(zip(cols, values, strict=True))
    if not cols:
        yield from ({} for _ in range(len(items)))


def _title(row: dict[str, Any], item_id: str) -> str:
    title = cell_text(row.get("title")) or _first_words(cell_text(row.get("description")))
    if not title:  # nothing readable to show: say so, with the id that tells it apart
        return f"{UNTITLED} · {item_id}"
    year = cell_text(row.get("year"))
    if year and year not in title:
        title += f" ({year})"
    return title


def _first_words(text: str | None) -> str | None:
    """The start of a description as a stand-in title: whole words up to
    :data:`TITLE_FROM_TEXT_CHARS` characters, "…" where it was cut."""
    if not text:
        return None
    words = " ".join(text.split())  # one line, single spaces
    if len(words) <= TITLE_FROM_TEXT_CHARS:
        return words
    cut = words[: TITLE_FROM_TEXT_CHARS + 1]
    cut = cut.rsplit(" ", 1)[0] if " " in cut else cut[:TITLE_FROM_TEXT_CHARS]
    return cut.rstrip(" ,.;:-") + "…"


def cell_text(value: Any) -> str | None:
    """A display string for a cell, or None when it is missing or blank."""
    if value is None:
        return None
    if isinstance(value, float) and not np.isfinite(value):
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    text = str(value).strip()
    return text or None
