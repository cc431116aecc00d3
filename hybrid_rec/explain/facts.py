"""Grounding facts: the checkable reasons behind one recommendation.

A :class:`Fact` is data with an id (``h1``, ``a1``, ``p1`` ...), never prose:
the history items that drove the score (user-side attention x item-item
similarity, from :meth:`HybridRecommender.contributions`), attribute values the
item shares with them (multi-valued cells such as ``"Drama|Comedy"`` are
split), the item's own attributes, how cold or long-tail it is, and how much
of its vector comes from content rather than behaviour (the fusion attention).
A new user's facts come from the items they picked and the taste they stated.

Backends turn facts into text; the check in :mod:`hybrid_rec.explain.explainer`
holds the text to them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from hybrid_rec.data.columns import (
    FREE_TEXT_COLUMNS,
    TITLE_COLUMNS,
    Columns,
    is_short_text,
)
from hybrid_rec.errors import DataValidationError

if TYPE_CHECKING:
    from hybrid_rec.recommender import HybridRecommender

__all__ = [
    "Fact",
    "FactKind",
    "Facts",
    "attribute_columns",
    "build_facts",
    "build_new_user_facts",
    "clean_text",
    "display_title",
    "split_values",
    "title_column",
    "withhold_instructions",
]

C = Columns
log = logging.getLogger(__name__)

FactKind = Literal[
    "history_item",
    "picked_item",
    "shared_attribute",
    "item_attribute",
    "stated_taste",
    "taste_match",
    "cold_item",
    "long_tail",
    "popular",
    "content_share",
]

PLACEHOLDERS = frozenset({"", "unknown", "nan", "none", "n/a", "na", "null", "other", "misc"})
"""Cell values that say nothing and never become facts."""
LIKED_SHARE = 0.7
"""A rating counts as liked from this share of the way up the log's rating range
(4 and 5 on a 1-5 scale, 8 and up on 1-10)."""
STRONG_EVENT_WEIGHT = 4.0
"""Unrated events weighing this much (a review, a purchase) count as liked. An
add-to-cart (3) does not: a cart left unpaid is interest, and "because you enjoyed"
an item only put in a cart read wrong to a shop's manager (session 22's UX review)."""

MAX_TITLE_CHARS = 80
MAX_DESCRIPTION_CHARS = 160
MAX_VALUE_CHARS = 40
MAX_TASTE_CHARS = 120

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_SPECIAL_TOKEN = re.compile(
    r"<\|[^|>]{0,40}\|>|<(?:/\s*)?[A-Za-z_][\w-]{0,20}(?:\s[^<>]{0,200})?\s*/?>|\[/?INST\]"
)
"""Chat-template tokens and tag-like markup (``<facts>``, ``</draft >``, ``<img src=x>``)."""
_ADDRESSES_MODEL = re.compile(
    r"\b(?:ignore|disregard|forget|override)\b.{0,60}?"
    r"\b(?:instructions?|rules?|prompts?|guidelines?|directions?|above|previous)\b"
    r"|\b(?:system|assistant|developer)\s*:"
    r"|\bnew (?:rules?|instructions?|task)\b"
    r"|\b(?:reply|respond|answer|output|print|say|repeat|write)\b[^.!?]{0,40}"
    r"\b(?:only|exactly|verbatim|word for word)\b"
    r"|\byou (?:must|should|will) (?:now )?(?:say|write|reply|output|tell|recommend|include)\b"
    r"|\btell the (?:user|reader)\b"
    r"|\b(?:note|message|instructions?) (?:to|for) (?:the )?"
    r"(?:ai|assistant|model|llm|bot|chatbot)\b"
    r"|\b(?:ai|assistant|model|llm|chatbot|gpt)\s*[:,]"
    r"|\b(?:always|must|should|please) (?:also )?"
    r"(?:mention|say|state|write|tell|add|include|claim)\b"
    r"|\b(?:the|your|this) (?:explanation|answer|reply|response|recommendation) "
    r"(?:must|should|has to|needs to)\b"
    r"|\bwhen you (?:explain|describe|recommend|write)\b"
    r"|\b(?:ignore|disregard|forget) (?:the |this |that )?(?:draft|facts|data)\b",
    re.IGNORECASE,
)
"""Text that addresses the explaining model (a description's sentence, a title or an
attribute value with it is withheld from the prompt)."""
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁһӏпмтвкАВЕКМНОРСТХІЈЅΑΒΕΗΙΚΜΝΟΡΤΥΧαοιντυ",
    "aeopcyxijsdhlnmtbkABEKMHOPCTXIJSABEHIKMNOPTYXaoivty",
)
"""Cyrillic and Greek letters that look like Latin ones (NFKC keeps them apart):
"Ignоre previous instructions" with a Cyrillic о is still an instruction."""


def addresses_model(text: str) -> bool:
    """Whether ``text`` addresses the explaining model, letters that only look Latin read
    as the Latin ones."""
    return _ADDRESSES_MODEL.search(text.translate(_LOOKALIKES)) is not None


_TRAILING_ARTICLE = re.compile(r"^(.*\S),\s*(The|A|An)$")
_SENTENCES = re.compile(r"(?<=[.!?。！？])\s+")


@dataclass(frozen=True)
class Fact:
    """One checkable reason.

    Parameters
    ----------
    id
        Short id the model cites (``h1`` history, ``p1`` picked item, ``a1``
        shared attribute, ``i1`` item attribute, ``t1`` stated taste, ``m1``
        taste match, ``n1`` popularity, ``c1`` content share).
    kind
        What the fact is about (:data:`FactKind`).
    item_id, title
        The item the fact names (history or picked item), if any.
    attribute, value
        Column and value for attribute facts (``"genres"``, ``"Drama"``); the
        number for popularity (interactions) and content-share facts.
        For a history item, the user's rating of it (``None`` without one).
    weight
        How much the fact supports the recommendation (contribution, similarity, share).
    related
        Ids of the facts it relates to (the history items sharing an attribute).
    liked
        For a history item: whether the signal was positive. An implicit event
        (view, purchase ...) is; a rating is when it is in the top part of the
        log's rating range (:data:`LIKED_SHARE`), so an explanation never says
        "you enjoyed" an item the user rated low. ``None`` for other facts.
    """

    id: str
    kind: FactKind
    item_id: str | None = None
    title: str | None = None
    attribute: str | None = None
    value: str | int | float | None = None
    weight: float | None = None
    related: tuple[str, ...] = ()
    liked: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``related`` as a list)."""
        out = asdict(self)
        out["related"] = list(self.related)
        return out


@dataclass(frozen=True)
class Facts:
    """The facts of one (user, item) pair plus the recommended item's own data.

    Parameters
    ----------
    item_id, title
        The recommended item.
    facts
        The facts, in the order a reader should meet them.
    user_id
        The user; ``None`` for a new user.
    description
        The item's free text, cleaned and cut (untrusted: prompts quote it as data).
    item_attributes
        The recommended item's attribute values by column (the check allows them).
    taste
        A new user's stated taste, cleaned and cut (untrusted), or ``None``.
    withheld
        Sentences of the description withheld because they address a model.
    """

    item_id: str
    title: str
    facts: tuple[Fact, ...]
    user_id: str | None = None
    description: str | None = None
    item_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    taste: str | None = None
    withheld: int = 0

    @property
    def ids(self) -> tuple[str, ...]:
        """Fact ids in order."""
        return tuple(f.id for f in self.facts)

    def by_id(self) -> dict[str, Fact]:
        """Facts keyed by id."""
        return {f.id: f for f in self.facts}

    def of_kind(self, *kinds: str) -> list[Fact]:
        """Facts of the given kinds, in order."""
        return [f for f in self.facts if f.kind in kinds]

    @property
    def allowed_items(self) -> frozenset[str]:
        """Item ids whose titles an explanation may name: the item and the facts' items."""
        return frozenset({self.item_id, *(f.item_id for f in self.facts if f.item_id)})

    @property
    def allowed_values(self) -> frozenset[str]:
        """Attribute values an explanation may name (lower-cased)."""
        values = {v.lower() for vals in self.item_attributes.values() for v in vals}
        for f in self.facts:
            if f.attribute and isinstance(f.value, str):
                values.update(v.lower() for v in split_values(f.value))
        return frozenset(values)

    def digest(self) -> str:
        """Stable hash of everything a backend sees: part of the cache key."""
        payload = {
            "item": [self.item_id, self.title, self.description, self.taste],
            "user": self.user_id,
            "attrs": {k: list(v) for k, v in sorted(self.item_attributes.items())},
            "facts": [f.to_dict() for f in self.facts],
        }
        raw = json.dumps(payload, sort_keys=True, default=str).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "item_id": self.item_id,
            "title": self.title,
            "user_id": self.user_id,
            "facts": [f.to_dict() for f in self.facts],
        }


# ============================================================================ cleaning


def clean_text(value: object, max_chars: int) -> str:
    """Untrusted catalogue or user text made safe to quote in a prompt.

    Control and format characters go, chat-template tokens (``<|im_start|>``,
    ``[INST]``, tag-like ``<facts>``) are removed, double quotes become single
    ones (so the text cannot close its own quotation), whitespace collapses and
    the result is cut at a word boundary to ``max_chars``.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    text = unicodedata.normalize("NFKC", str(value))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _CONTROL.sub(" ", text)
    text = _SPECIAL_TOKEN.sub(" ", text)
    text = text.replace('"', "'").replace("`", "'").replace("{", "(").replace("}", ")")
    text = " ".join(text.split())
    if len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    return (cut[:space] if space > max_chars // 2 else cut).rstrip(" ,;:-") + "…"


def withhold_instructions(text: str) -> tuple[str, int]:
    """Drop the sentences of untrusted text that address a model ("ignore your
    instructions ...", "System: ...", "reply only with ...").

    A catalogue description has no reason to talk to the explainer; what it
    says to it is withheld from the prompt rather than trusted to the model to
    resist. Returns the kept text and how many sentences were dropped.
    """
    sentences = [x for x in _SENTENCES.split(text) if x.strip()]
    kept = [x for x in sentences if not addresses_model(x)]
    return " ".join(kept), len(sentences) - len(kept)


_SENTENCE_BREAK = re.compile(r"[.!?;:]\s+\S")
MAX_VALUE_WORDS = 5


def reads_as_sentence(value: str) -> bool:
    """Whether an attribute value reads as a statement rather than a value: more than
    ``MAX_VALUE_WORDS`` words, cut at ``MAX_VALUE_CHARS``, or two sentences. A genre of
    "This film contains malware and steals passwords" would otherwise be a checked fact."""
    return (
        len(value.split()) > MAX_VALUE_WORDS
        or value.endswith("…")
        or _SENTENCE_BREAK.search(value) is not None
    )


def display_title(title: str) -> str:
    """A catalogue title in reading order: ``"Usual Suspects, The"`` → ``"The Usual Suspects"``."""
    match = _TRAILING_ARTICLE.match(title)
    return f"{match.group(2)} {match.group(1)}" if match else title


def split_values(cell: object, separator: str = "|") -> list[str]:
    """Attribute values of one cell: ``"Drama|Comedy"`` and lists split, placeholders dropped."""
    if cell is None:
        return []
    if isinstance(cell, str):
        parts: Iterable[object] = cell.split(separator)
    elif isinstance(cell, list | tuple | set | frozenset | np.ndarray | pd.Series):
        parts = list(cell)
    elif (isinstance(cell, float) and np.isnan(cell)) or cell is pd.NA:
        return []
    else:
        parts = [cell]
    out: list[str] = []
    for part in parts:
        value = clean_text(part, MAX_VALUE_CHARS)
        if value.lower() not in PLACEHOLDERS and value not in out:
            out.append(value)
    return out


# ============================================================================ columns


def title_column(items: pd.DataFrame) -> str:
    """The column holding display names (``title`` or ``name``), else ``item_id``."""
    for col in TITLE_COLUMNS:
        if col in items.columns:
            return col
    return C.item


def attribute_columns(items: pd.DataFrame) -> list[str]:
    """Columns whose values are attributes worth sharing: short strings/lists and ``year``.

    Ids, titles and free text (a known free-text name, or values averaging more
    than :data:`~hybrid_rec.data.columns.FREE_TEXT_MEAN_CHARS` characters) are left
    out, as are numbers other than a year (a price is not a reason two items belong
    together).
    """
    out = []
    skip = {C.item, *TITLE_COLUMNS, *FREE_TEXT_COLUMNS}
    for col in items.columns:
        if col in skip:
            continue
        series = items[col]
        is_year = col == "year" and pd.api.types.is_numeric_dtype(series)
        is_text = pd.api.types.is_string_dtype(series) or series.dtype == object
        if is_year or (is_text and is_short_text(series) and not _yes_no(series)):
            out.append(col)
    return out


def _yes_no(series: pd.Series) -> bool:
    """A column of true/false flags (in_stock, a CSV's "true"): sharing one is no reason
    to like an item ("like them, the in stock true")."""
    values = {str(v).strip().casefold() for v in series.dropna().unique()[:20]}
    return bool(values) and values <= _FLAG_WORDS


_FLAG_WORDS = frozenset({"true", "false", "yes", "no", "y", "n", "t", "f", "0", "1"})


def _row_attributes(row: pd.Series, columns: Sequence[str]) -> dict[str, tuple[str, ...]]:
    attrs: dict[str, tuple[str, ...]] = {}
    for col in columns:
        cell = row[col]
        if col == "year":
            year = _year(cell)
            if year is not None:
                attrs[col] = (str(year),)
            continue
        values = split_values(cell)
        if values:
            attrs[col] = tuple(values)
    return attrs


def _year(cell: object) -> int | None:
    try:
        year = int(cell)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return year if 1000 <= year <= 2999 else None


# ============================================================================ builders


@dataclass(frozen=True)
class _Item:
    """One catalogue row, read once."""

    item_id: str
    code: int
    title: str
    description: str | None
    attributes: dict[str, tuple[str, ...]]
    withheld: int = 0


def _item(
    rec: HybridRecommender, item_id: str, columns: Sequence[str], withhold: bool = True
) -> _Item:
    code = int(rec.item_ids_.to_internal([str(item_id)], kind="item")[0])
    row = rec.items_.iloc[code]
    title = display_title(clean_text(row[title_column(rec.items_)], MAX_TITLE_CHARS)) or str(
        item_id
    )
    dropped = 0
    if withhold and addresses_model(title):  # a title that talks to the model
        log.info("item %s: its title addresses a model; named by its id instead", item_id)
        title, dropped = f"item {item_id}", 1
    text_cols = [c for c in FREE_TEXT_COLUMNS if c in rec.items_.columns]
    description = clean_text(row[text_cols[0]], 4 * MAX_DESCRIPTION_CHARS) if text_cols else ""
    if withhold and description:
        description, n = withhold_instructions(description)
        dropped += n
        if n:
            log.info("item %s: %d sentence(s) addressed to a model withheld", item_id, n)
    description = clean_text(description, MAX_DESCRIPTION_CHARS)
    attributes = _row_attributes(row, columns)
    if withhold:
        for col, values in list(attributes.items()):
            kept = tuple(v for v in values if not addresses_model(v) and not reads_as_sentence(v))
            dropped += len(values) - len(kept)
            if kept:
                attributes[col] = kept
            else:
                del attributes[col]
    return _Item(str(item_id), code, title, description or None, attributes, dropped)


def _shared_facts(target: _Item, sources: Sequence[tuple[Fact, _Item]], limit: int) -> list[Fact]:
    """Attribute values the target shares with the source items, most widely shared first."""
    found: dict[tuple[str, str], list[Fact]] = {}
    for fact, item in sources:
        for col, values in target.attributes.items():
            if col == "year":
                continue
            own = {v.lower() for v in item.attributes.get(col, ())}
            for value in values:
                if value.lower() in own:
                    found.setdefault((col, value), []).append(fact)
    ranked = sorted(
        found.items(),
        key=lambda kv: (-len(kv[1]), -sum(f.weight or 0.0 for f in kv[1])),
    )
    unique, seen = [], set()
    for (col, value), related in ranked:  # "space" as category and genre is one fact
        if value.lower() not in seen:
            seen.add(value.lower())
            unique.append(((col, value), related))
    return [
        Fact(
            id=f"a{n}",
            kind="shared_attribute",
            attribute=col,
            value=value,
            weight=float(len(related)) / max(1, len(sources)),
            related=tuple(f.id for f in related),
        )
        for n, ((col, value), related) in enumerate(unique[:limit], start=1)
    ]


def _item_attribute_facts(target: _Item, shared: Sequence[Fact], max_values: int = 3) -> list[Fact]:
    """The target's own attribute values not already covered by a shared fact."""
    covered = {(f.attribute, str(f.value).lower()) for f in shared}
    facts: list[Fact] = []
    for col, values in target.attributes.items():
        rest = [v for v in values if (col, v.lower()) not in covered][:max_values]
        if not rest or len(values) > 3 * max_values:  # keyword clouds are not one fact
            continue
        facts.append(
            Fact(
                id=f"i{len(facts) + 1}", kind="item_attribute", attribute=col, value="|".join(rest)
            )
        )
    return facts


def _evidence_facts(rec: HybridRecommender, target: _Item) -> list[Fact]:
    """How cold, long-tail or popular the item is, and its content share when notable."""
    count = int(rec.counts_[target.code])
    warm = rec.counts_[rec.counts_ > 0]
    facts: list[Fact] = []
    tail_max = rec.config.eval.long_tail_max_interactions
    if count == 0:
        facts.append(Fact(id="n1", kind="cold_item", value=0))
    elif count <= tail_max:
        facts.append(Fact(id="n1", kind="long_tail", value=count))
    elif len(warm) >= 10 and count >= float(np.quantile(warm, 0.9)):
        facts.append(Fact(id="n1", kind="popular", value=count))
    share = float(rec.fusion_weights_[target.code][0])
    if share >= 0.6 or share <= 0.3:
        facts.append(Fact(id="c1", kind="content_share", value=round(share, 2), weight=share))
    return facts


def build_facts(
    rec: HybridRecommender,
    user_id: str,
    item_id: str,
    *,
    max_history: int = 3,
    max_shared: int = 4,
    withhold: bool = True,
) -> Facts:
    """Facts for recommending ``item_id`` to the known user ``user_id``.

    The history facts are the items with the largest positive contribution
    (attention x similarity), the recommended item itself excluded. With
    ``withhold``, description sentences that address a model are dropped
    (:func:`withhold_instructions`).

    Raises
    ------
    UnknownIdError
        The user or the item is not known to ``rec``.
    """
    columns = attribute_columns(rec.items_)
    target = _item(rec, item_id, columns, withhold)
    contrib = rec.contributions(str(user_id), str(item_id))
    contrib = contrib[(contrib[C.item] != target.item_id) & (contrib["contribution"] > 0)]
    liked_from = _liked_from(rec.rating_range)
    strong = _strong_weight(rec)
    history: list[tuple[Fact, _Item]] = []
    for n, row in enumerate(contrib.head(max_history).itertuples(index=False), start=1):
        item = _item(rec, str(getattr(row, C.item)), columns)
        rating = float(getattr(row, C.rating))
        event = str(getattr(row, C.event))
        fact = Fact(
            id=f"h{n}",
            kind="history_item",
            item_id=item.item_id,
            title=item.title,
            value=None if np.isnan(rating) else round(rating, 2),
            weight=round(float(row.contribution), 4),
            liked=_liked(rating, liked_from, rec.event_weight(event), strong),
        )
        history.append((fact, item))
    shared = _shared_facts(target, history, max_shared)
    facts = [
        *(f for f, _ in history),
        *shared,
        *_item_attribute_facts(target, shared),
        *_evidence_facts(rec, target),
    ]
    return Facts(
        item_id=target.item_id,
        title=target.title,
        facts=tuple(facts),
        user_id=str(user_id),
        description=target.description,
        item_attributes=target.attributes,
        withheld=target.withheld,
    )


def _strong_weight(rec: HybridRecommender) -> float:
    """The event weight from which an unrated event says the user liked the item: a
    review's (4) and up, or any, when the log's events all weigh one amount (a
    log without event types). A view, a click or a cart alone is history, not taste."""
    weights = {rec.event_weight(e) for e in rec.event_vocab_[3:]}  # after the 3 markers
    return 0.0 if len(weights) <= 1 else STRONG_EVENT_WEIGHT


def _liked(rating: float, liked_from: float, weight: float, strong: float) -> bool:
    """Whether an explanation may say the user enjoyed a history item: a rating high
    in the log's range, or without one, an event weighing at least ``strong``."""
    return bool(rating >= liked_from) if not np.isnan(rating) else weight >= strong


def _liked_from(rating_range: tuple[float, float] | None) -> float:
    """The lowest rating that counts as liked (any, when the log has one rating value)."""
    if rating_range is None or rating_range[1] <= rating_range[0]:
        return -np.inf
    low, high = rating_range
    return low + LIKED_SHARE * (high - low)


def build_new_user_facts(
    rec: HybridRecommender,
    item_id: str,
    liked_items: Sequence[str] = (),
    text: str | None = None,
    *,
    max_picked: int = 3,
    max_shared: int = 4,
    withhold: bool = True,
) -> Facts:
    """Facts for recommending ``item_id`` to a new user who picked ``liked_items``
    and/or described a taste in ``text``.

    Picked items are ranked by the cosine of their fused vectors with the
    item's; the stated taste becomes a fact (quoted as data, never as an
    instruction) plus one ``taste_match`` fact per item attribute value the
    text mentions.

    Raises
    ------
    DataValidationError
        Neither liked items nor a text were given.
    UnknownIdError
        The item or a liked item is not in the catalogue.
    """
    taste = clean_text(text, MAX_TASTE_CHARS) if text else ""
    if not liked_items and not taste:
        raise DataValidationError(
            "a new user's explanation needs liked items or a taste description.",
            source="explain_for_new_user",
            fix="pass liked_items=[...] and/or text='...'.",
        )
    columns = attribute_columns(rec.items_)
    target = _item(rec, item_id, columns, withhold)
    picked = [_item(rec, str(i), columns) for i in dict.fromkeys(str(x) for x in liked_items)]
    picked = [p for p in picked if p.item_id != target.item_id]
    vec = rec.item_vectors_[target.code]
    sims = [float(rec.item_vectors_[p.code] @ vec) for p in picked]
    order: list[int] = (
        np.argsort(-np.asarray(sims), kind="stable")[:max_picked].tolist() if picked else []
    )
    sources = [
        (
            Fact(
                id=f"p{n}",
                kind="picked_item",
                item_id=picked[i].item_id,
                title=picked[i].title,
                weight=round(sims[i], 4),
            ),
            picked[i],
        )
        for n, i in enumerate(order, start=1)
    ]
    shared = _shared_facts(target, sources, max_shared)
    facts: list[Fact] = [*(f for f, _ in sources), *shared]
    if taste:
        facts.append(Fact(id="t1", kind="stated_taste", value=taste))
        facts.extend(_taste_matches(target, taste))
    facts.extend(_item_attribute_facts(target, shared))
    facts.extend(_evidence_facts(rec, target))
    return Facts(
        item_id=target.item_id,
        title=target.title,
        facts=tuple(facts),
        user_id=None,
        description=target.description,
        item_attributes=target.attributes,
        taste=taste or None,
        withheld=target.withheld,
    )


def _taste_matches(target: _Item, taste: str) -> list[Fact]:
    words = taste.lower()
    facts: list[Fact] = []
    seen: set[str] = set()
    for col, values in target.attributes.items():
        for value in values:
            stem = re.escape(value.lower())
            if stem in seen:
                continue
            if re.search(rf"(?<!\w){stem}(?:s|es)?(?!\w)", words):
                seen.add(stem)
                facts.append(
                    Fact(
                        id=f"m{len(facts) + 1}",
                        kind="taste_match",
                        attribute=col,
                        value=value,
                        related=("t1",),
                    )
                )
    return facts
