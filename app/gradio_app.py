"""The hybrid_rec demo: cold-start recommendations with explanations, in Gradio.

Four tabs over the public API only (``HybridRecommender``, ``RecommenderConfig``,
``datasets``): a known user's recommendations with the history items that
drove each one; a brand-new user described by picked items and/or words; a
brand-new item added live (``add_items``) with the users it would reach; and
catalogue insight (benchmark results, long-tail share).

>>> from app.gradio_app import serve
>>> serve()                                   # doctest: +SKIP

``serve`` fits MovieLens-100k once (MiniLM encoder), saves it to
``models/ml100k`` and loads it on later starts; :func:`build_app` builds the
Blocks for any fitted recommender (the tests use a small synthetic one).
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import html
import importlib.util
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from hybrid_rec import HybridRecError, HybridRecommender, RecommenderConfig, datasets
from hybrid_rec.errors import DataValidationError, ModelFileError

__all__ = [
    "CSS",
    "DEFAULT_MODEL_DIR",
    "DemoApp",
    "Explainer",
    "ExplanationView",
    "build_app",
    "fit_demo_model",
    "launch",
    "load_or_fit",
    "serve",
    "theme",
    "use_explain_backend",
    "warm_up_explanations",
]

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_DIR = REPO_ROOT / "models" / "ml100k"
"""Where the demo model is saved (gitignored), in the checkout whatever the working directory."""
DEFAULT_BENCHMARKS_DIR = REPO_ROOT / "benchmarks"
DEMO_EPOCHS = 3
"""Epochs of the first-start fit: sensible results in a few minutes on 2 cores (an epoch of
ml-100k took 20-45 s on a quiet machine, up to 4 minutes on a busy one); ``hybrid-rec fit``
trains the full early-stopped schedule, and ``serve --model-dir`` serves such a model."""
ITEM_COL, USER_COL = "item_id", "user_id"
ATTRIBUTE_COLUMNS = ("genres", "category", "tags", "brand")
"""Candidate columns for the chips on a card and the attribute field of a new item."""
HISTORY_SHOWN = 12
DRIVERS_SHOWN = 3
REACH_SHOWN = 8
NEIGHBOURS_SHOWN = 6
TEMPLATE = "template"
_WORD = re.compile(r"[a-z][a-z'-]{3,}")
_STOPWORD_TEXT = """
about after again also among another being between both could does doing down each every from
have having here into just like more most much only other over same should some such than that
their them then there these they this those through under until very want were what when where
which while with would your yours films film movie movies something things thing really quite
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


# ============================================================================ limits


@dataclass(frozen=True)
class Limits:
    """Input limits enforced in the page and again on the server (the API can skip the page)."""

    max_k: int = 50
    max_text: int = 2000
    max_title: int = 200
    max_liked: int = 20
    max_added: int = 500


def _check_k(k: Any, limits: Limits) -> int:
    try:
        value = float(k)
    except (TypeError, ValueError):
        value = float("nan")
    if not value.is_integer() or not 1 <= value <= limits.max_k:
        raise DataValidationError(
            f"must be a whole number between 1 and {limits.max_k}, got {k!r}.",
            source="k",
            fix="move the slider.",
        )
    return int(value)


def _check_text(text: Any, limit: int, what: str) -> str:
    value = "" if text is None else str(text).strip()
    if len(value) > limit:
        raise DataValidationError(
            f"is {len(value):,} characters long; the limit is {limit:,}.",
            source=what,
            fix="shorten it.",
        )
    return value


# ============================================================================ concurrency


class ReadWriteLock:
    """Many readers or one writer; a waiting writer goes first.

    Rankings and explanations only read the model and may run side by side;
    ``add_items`` changes it (arrays, the FAISS index) and runs alone.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            self._cond.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


# ============================================================================ catalogue view


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
            self._titles = [_title(row, item) for row, item in zip(_rows(items), ids, strict=True)]
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
        """``Title (year)``, or the id when the catalogue has no title."""
        self._sync()
        return self._titles[self._pos[str(item_id)]]

    @property
    def attribute_column(self) -> str | None:
        """The catalogue's categorical column (genres, category ...), if it has one."""
        cols = self.rec.items_.columns
        return next((c for c in ATTRIBUTE_COLUMNS if c in cols), None)

    def attributes(self, item_id: str) -> list[str]:
        column = self.attribute_column
        return self._split(self.row(item_id).get(column)) if column else []

    def _split(self, value: Any) -> list[str]:
        text = _text(value)
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
        text = " ".join(_text(row.get(c)) or "" for c in row.index if c != ITEM_COL)
        return {_stem(w) for w in content_words(text.replace(self.separator, " "))}

    def kind(self, count: int) -> str | None:
        """``"cold"`` (no interactions), ``"tail"`` (fewer than the long-tail limit) or None."""
        if count == 0:
            return "cold"
        return "tail" if count < self.tail_max else None

    def choices(self) -> list[tuple[str, str]]:
        """``(title, item_id)`` pairs for the searchable item picker, sorted by title."""
        self._sync()
        pairs = zip(self._titles, self._pos, strict=True)
        return sorted(pairs, key=lambda p: p[0].lower())

    def composition(self) -> dict[str, int]:
        counts = np.asarray(self.rec.counts_)
        cold = int((counts == 0).sum())
        tail = int(((counts > 0) & (counts < self.tail_max)).sum())
        return {"items": len(counts), "cold": cold, "tail": tail, "head": len(counts) - cold - tail}


def content_words(text: str) -> set[str]:
    """Lower-case words of four letters or more, without stop words."""
    return set(_WORD.findall(text.lower())) - _STOPWORDS


def _stem(word: str) -> str:
    """Plural and singular match: ``rockets`` → ``rocket`` (nothing cleverer)."""
    return word[:-1] if word.endswith("s") and not word.endswith("ss") and len(word) > 4 else word


def _rows(items: pd.DataFrame) -> Iterator[dict[str, Any]]:
    cols = [c for c in ("title", "year") if c in items.columns]
    for values in zip(*(items[c].tolist() for c in cols), strict=True) if cols else ():
        yield dict(zip(cols, values, strict=True))
    if not cols:
        yield from ({} for _ in range(len(items)))


def _title(row: dict[str, Any], item_id: str) -> str:
    title = _text(row.get("title")) or str(item_id)
    year = _text(row.get("year"))
    if year and year not in title:
        title += f" ({year})"
    return title


def _text(value: Any) -> str | None:
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


# ============================================================================ explanations


@dataclass(frozen=True)
class ExplanationView:
    """What a card shows: the text and which backend wrote it."""

    text: str
    backend: str
    grounded: bool = True


class Explainer:
    """Explanations for the app: the library's ``explain`` / ``explain_for_new_user``.

    The library picks its backend from ``rec.config.explain`` (an LLM whose text
    is checked against the facts, or a template) and falls back to its own
    template when a generation fails the check. When it raises instead (say
    the model file is missing), the app falls back to a sentence of its own,
    built from ``rec.contributions`` and ``rec.item_info`` — numbers the model
    computed — and says so in :meth:`label`.
    """

    def __init__(self, rec: HybridRecommender, catalogue: Catalogue) -> None:
        self.rec = rec
        self.catalogue = catalogue
        self.fallback_reason: str | None = None
        """Why the library's last explanation failed (the app's template then stands in)."""
        self._llm = threading.Lock()  # one generation at a time: 2 cores, one model

    @property
    def backend(self) -> str:
        return str(self.rec.config.explain.backend)

    def label(self) -> str:
        """A short description of the explanation backend in use, for the page."""
        if self.backend == TEMPLATE:
            return "template sentences from the model's facts (no LLM)"
        label = (
            f"LLM {self.backend} · {self.rec.config.explain.model}, checked against the facts; "
            "template fallback"
        )
        if self.fallback_reason:
            label += f" (in use: {self.fallback_reason})"
        return label

    def for_user(self, user_id: str, item_id: str) -> ExplanationView:
        """Why ``item_id`` suits the known user ``user_id``."""
        return self._library(
            lambda: self.rec.explain(user_id, item_id),
            lambda: self._template_for_user(user_id, item_id),
        )

    def for_new_user(
        self, item_id: str, picks: Sequence[str], taste: str | None
    ) -> ExplanationView:
        """Why ``item_id`` suits a new user who picked ``picks`` and/or described ``taste``."""
        return self._library(
            lambda: self.rec.explain_for_new_user(item_id, picks, taste),
            lambda: self._template_for_new_user(item_id, picks, taste or ""),
        )

    def _library(
        self, explain: Callable[[], Any], fallback: Callable[[], ExplanationView]
    ) -> ExplanationView:
        try:
            with self._llm:
                explanation = explain()
        except HybridRecError as exc:
            if self.fallback_reason != str(exc):
                log.warning("explanations fall back to the app's template: %s", exc)
            self.fallback_reason = str(exc)
            return fallback()
        self.fallback_reason = None
        return ExplanationView(
            str(explanation.text), str(explanation.backend), bool(explanation.grounded)
        )

    # ------------------------------------------------------------------ the app's fallback

    def _template_for_user(self, user_id: str, item_id: str) -> ExplanationView:
        contrib = self.rec.contributions(user_id, item_id)
        top = contrib[contrib["contribution"] > 0].head(2)
        parts: list[str] = []
        if len(top):
            ids = top[ITEM_COL].astype(str).tolist()
            titles = _join([_quote(self.catalogue.title(i)) for i in ids])
            share = float(top["attention"].sum())
            parts.append(
                f"Because of {titles} in your history ({share:.0%} of your profile's "
                f"attention), which {'sits' if len(ids) == 1 else 'sit'} close to it."
            )
            shared = self._shared(item_id, ids)
            if shared:
                parts.append(f"Shares {_join(shared)} with {'it' if len(ids) == 1 else 'them'}.")
        else:
            parts.append("Close to your overall taste, though no single past item stands out.")
        parts.append(self.evidence(item_id))
        return ExplanationView(" ".join(parts), TEMPLATE)

    def _template_for_new_user(
        self, item_id: str, picks: Sequence[str], taste: str
    ) -> ExplanationView:
        parts: list[str] = []
        nearest = self._nearest_pick(item_id, picks)
        if nearest is not None:
            pick, similarity = nearest
            sentence = (
                f"Close to {_quote(self.catalogue.title(pick))}, which you picked "
                f"(similarity {similarity:.2f})"
            )
            shared = self._shared(item_id, [pick])
            parts.append(sentence + (f"; shares {_join(shared)}." if shared else "."))
        item_words = self.catalogue.words(item_id)
        matched = sorted(w for w in content_words(taste) if _stem(w) in item_words)[:3]
        if matched:
            parts.append(f"Matches {_join([_quote(w) for w in matched])} from your description.")
        if not parts:
            parts.append("Nearest to the taste you described, as the model reads it.")
        parts.append(self.evidence(item_id))
        return ExplanationView(" ".join(parts), TEMPLATE)

    def _nearest_pick(self, item_id: str, picks: Sequence[str]) -> tuple[str, float] | None:
        """The picked item closest to ``item_id`` (among each pick's neighbours) and its score."""
        if not picks:
            return None
        k = max(1, min(300, len(self.catalogue) - 1))
        sims = self.rec.similar_items(list(picks), k=k)
        sims = sims[sims["similar_item_id"] == item_id]
        if sims.empty:
            return None
        best = sims.loc[sims["score"].idxmax()]
        return str(best[ITEM_COL]), float(best["score"])

    def _shared(self, item_id: str, others: Sequence[str]) -> list[str]:
        mine = self.catalogue.attributes(item_id)
        theirs = {a for other in others for a in self.catalogue.attributes(other)}
        return [a for a in mine if a in theirs][:3]

    def evidence(self, item_id: str) -> str:
        """One sentence on how much behaviour vs. content places the item."""
        info = self.rec.item_info(item_id)
        n, content = int(info["interactions"]), float(info["content_share"])
        if n == 0:
            return (
                f"No interactions yet: its content places it ({content:.0%} of the fusion "
                "weight is on content)."
            )
        if n < self.catalogue.tail_max:
            noun = "interaction" if n == 1 else "interactions"
            return f"A long-tail pick with {n} {noun}: {content:.0%} of its vector is content."
        return f"{n:,} interactions so far: {1 - content:.0%} of its vector comes from behaviour."


def _quote(text: str) -> str:
    return f"“{text}”"


def _join(parts: Sequence[str]) -> str:
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


# ============================================================================ rendering


@dataclass(frozen=True)
class Driver:
    """A history item's part in one recommendation."""

    title: str
    attention: float
    similarity: float
    contribution: float


@dataclass
class Card:
    """One recommended item, as shown."""

    item_id: str
    title: str
    rank: int
    score: float
    count: int
    kind: str | None
    chips: list[str]
    content_share: float
    drivers: list[Driver] = field(default_factory=list)
    explanation: ExplanationView | None = None
    note: str | None = None


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _bar(fraction: float, css: str = "") -> str:
    width = max(0.0, min(1.0, fraction)) * 100
    return f'<span class="hr-bar {css}"><i style="width:{width:.1f}%"></i></span>'


def _badge(kind: str | None, count: int) -> str:
    if kind == "cold":
        return '<span class="hr-badge hr-cold" title="no interactions yet">cold · new</span>'
    if kind == "tail":
        return (
            f'<span class="hr-badge hr-tail" title="fewer interactions than the long-tail '
            f'limit">long tail · {count}</span>'
        )
    return ""


def render_card(card: Card, explain_label: str | None = None) -> str:
    """One recommendation card: title, score, badges, fusion split, drivers, explanation."""
    chips = "".join(f'<span class="hr-chip">{_e(c)}</span>' for c in card.chips)
    fusion = (
        f'<div class="hr-fusion" title="share of the item vector from content vs behaviour">'
        f"<span>content {card.content_share:.0%}</span>{_bar(card.content_share, 'hr-split')}"
        f"<span>behaviour {1 - card.content_share:.0%}</span></div>"
    )
    drivers = ""
    if card.drivers:
        top = max(d.contribution for d in card.drivers) or 1.0
        rows = "".join(
            f'<div class="hr-driver" title="attention {d.attention:.1%} × similarity '
            f'{d.similarity:.2f}"><span class="hr-driver-title">{_e(d.title)}</span>'
            f"{_bar(d.contribution / top)}"
            f'<span class="hr-num">{d.attention:.0%} att.</span></div>'
            for d in card.drivers
        )
        drivers = f'<div class="hr-drivers"><div class="hr-sub">driven by</div>{rows}</div>'
    note = f'<div class="hr-note">{_e(card.note)}</div>' if card.note else ""
    return (
        f'<div class="hr-card" data-item="{_e(card.item_id)}">'
        f'<div class="hr-card-head"><span class="hr-rank">{card.rank}</span>'
        f'<span class="hr-title">{_e(card.title)}</span>{_badge(card.kind, card.count)}'
        f'<span class="hr-score" title="model score">{card.score:.3f}</span></div>'
        f'<div class="hr-meta">{chips}{fusion}</div>{drivers}{note}'
        f"{_render_explanation(card.explanation, explain_label)}</div>"
    )


def _render_explanation(explanation: ExplanationView | None, label: str | None) -> str:
    if explanation is None:
        return '<div class="hr-expl hr-pending">Explaining…</div>'
    tag = explanation.backend if explanation.grounded else f"{explanation.backend}, unchecked"
    css = "hr-expl" + (" hr-expl-error" if explanation.backend == "error" else "")
    return (
        f'<div class="{css}">{_e(explanation.text)}'
        f'<span class="hr-backend" title="{_e(label or "")}">{_e(tag)}</span></div>'
    )


def render_cards(heading: str, cards: Sequence[Card], label: str | None = None) -> str:
    done = sum(c.explanation is not None for c in cards)
    progress = f"explanations {done}/{len(cards)}"
    body = "".join(render_card(c, label) for c in cards)
    backend = f'<div class="hr-sub hr-using">explanations: {_e(label)}</div>' if label else ""
    return (
        f'<div class="hr-results"><div class="hr-results-head"><span>{_e(heading)}</span>'
        f'<span class="hr-progress" data-done="{done}" data-total="{len(cards)}">'
        f"{progress}</span></div>{backend}{body}</div>"
    )


def render_error(exc: BaseException) -> str:
    """A readable message for the page; never a traceback."""
    if isinstance(exc, HybridRecError):
        message = str(exc)
    else:
        log.error("unexpected error in the app", exc_info=exc)
        message = f"Unexpected error ({type(exc).__name__}): {exc}. Details are in the server log."
    return f'<div class="hr-error" role="alert"><b>Could not do that.</b> {_e(message)}</div>'


def render_notice(text: str) -> str:
    return f'<div class="hr-notice">{_e(text)}</div>'


def render_history(title_of: Callable[[str], str], history: pd.DataFrame) -> str:
    """The user's recent history with the user tower's attention on each item, as bars."""
    if history.empty:
        return render_notice("No history.")
    shown = history.head(HISTORY_SHOWN)
    top = float(history["attention"].max()) or 1.0
    rows = []
    for rec in shown.itertuples(index=False):
        when = ""
        ts = getattr(rec, "timestamp", None)
        if ts is not None and _text(ts) is not None:
            when = " · " + time.strftime("%Y-%m-%d", time.gmtime(int(ts)))
        rows.append(
            f'<div class="hr-hist-row"><span class="hr-hist-title">'
            f"{_e(title_of(str(rec.item_id)))}"
            f"<small>{_e(rec.event)}{_e(when)}</small></span>{_bar(float(rec.attention) / top)}"
            f'<span class="hr-num">{float(rec.attention):.1%}</span></div>'
        )
    more = len(history) - len(shown)
    tail = f'<div class="hr-sub">… and {more} older</div>' if more > 0 else ""
    return (
        '<div class="hr-history"><div class="hr-sub">recent history · attention of the '
        f"user profile on each item</div>{''.join(rows)}{tail}</div>"
    )


@dataclass(frozen=True)
class Added:
    """What the new-item tab shows after ``add_items``."""

    card: Card
    evidence: str
    neighbours: list[tuple[str, float]]
    reach: list[tuple[str, float]]
    top_user: str | None
    why: ExplanationView | None
    rank: int | None
    label: str


def render_added(added: Added, max_k: int) -> str:
    """The new item, its nearest items, the users it would reach and why the top one."""
    card = added.card
    head = (
        f'<div class="hr-added" data-item="{_e(card.item_id)}"><div class="hr-ok">'
        f"<div>Added <b>{_e(card.title)}</b> as item <code>{_e(card.item_id)}</code> "
        f"{_badge(card.kind, card.count)}</div><div>Retrievable now, no retraining. "
        f"{_e(added.evidence)}</div></div>"
    )
    near = "".join(
        f'<div class="hr-mini"><span>{_e(title)}</span>{_bar(score)}'
        f'<span class="hr-num">{score:.2f}</span></div>'
        for title, score in added.neighbours
    )
    top = max((score for _, score in added.reach), default=1.0) or 1.0
    users = "".join(
        f'<div class="hr-mini"><span>user {_e(user)}</span>{_bar(score / top)}'
        f'<span class="hr-num">{score:.3f}</span></div>'
        for user, score in added.reach
    )
    if added.top_user is None:
        story = render_notice("No user to reach.")
    else:
        user = _e(added.top_user)
        where = (
            f"It now ranks <b>#{added.rank}</b> in user {user}'s recommendations."
            if added.rank
            else f"It is not yet in user {user}'s top {max_k}."
        )
        story = (
            f'<div class="hr-why"><div class="hr-sub">why user {user}</div>'
            f"{_render_explanation(added.why, added.label)}<p>{where}</p></div>"
        )
    return (
        f'{head}<div class="hr-columns"><div><div class="hr-sub">nearest items</div>{near}</div>'
        f'<div><div class="hr-sub">users it would reach (score_cold_items)</div>{users}</div>'
        f"</div>{story}</div>"
    )


# ============================================================================ the callbacks


class DemoApp:
    """The app's state and callbacks, testable without a browser.

    Calls into the recommender hold :attr:`lock`: shared for rankings and
    explanations, exclusive for ``add_items``; the explainer runs one
    generation at a time on top of that.
    """

    def __init__(
        self,
        rec: HybridRecommender,
        *,
        benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
        limits: Limits | None = None,
    ) -> None:
        self.rec = rec
        self.limits = limits or Limits()
        self.benchmarks_dir = Path(benchmarks_dir)
        self.lock = ReadWriteLock()
        self.catalogue = Catalogue(rec)
        self.explainer = Explainer(rec, self.catalogue)
        self.added: list[str] = []

    # ------------------------------------------------------------------ helpers

    def user_choices(self) -> list[str]:
        ids = [str(u) for u in self.rec.user_ids_.external_ids]
        return sorted(ids, key=lambda u: (not u.isdigit(), int(u) if u.isdigit() else 0, u))

    def header_html(self) -> str:
        cfg = self.rec.config
        return (
            '<div class="hr-header"><div><h1>hybrid_rec</h1><p>Cold-start recommendations '
            "with explanations: content vectors fused with behaviour by attention.</p></div>"
            f'<div class="hr-stats"><span><b>{len(self.rec.user_ids_.external_ids):,}</b> users'
            f"</span><span><b>{len(self.catalogue):,}</b> items</span>"
            f"<span>encoder <b>{_e(cfg.content.encoder)}</b></span>"
            f'<span class="hr-backend-label">explanations: <b>{_e(self.explainer.label())}</b>'
            "</span></div></div>"
        )

    def _card(self, item_id: str, score: float, rank: int) -> Card:
        count = self.catalogue.count(item_id)
        info = self.rec.item_info(item_id)
        return Card(
            item_id=item_id,
            title=self.catalogue.title(item_id),
            rank=rank,
            score=float(score),
            count=count,
            kind=self.catalogue.kind(count),
            chips=self.catalogue.attributes(item_id)[:4],
            content_share=float(info["content_share"]),
        )

    def _drivers(self, user_id: str, item_id: str) -> list[Driver]:
        contrib = self.rec.contributions(user_id, item_id)
        top = contrib[contrib["contribution"] > 0].head(DRIVERS_SHOWN)
        return [
            Driver(self.catalogue.title(str(r.item_id)), r.attention, r.similarity, r.contribution)
            for r in top.itertuples(index=False)
        ]

    def _explain_each(
        self, cards: list[Card], explain: Callable[[Card], ExplanationView]
    ) -> Iterator[list[Card]]:
        """Fill in explanations one by one, yielding after each (the list shows at once)."""
        for card in cards:
            try:
                with self.lock.read():
                    card.explanation = explain(card)
            except Exception as exc:
                if not isinstance(exc, HybridRecError):
                    log.error("explanation failed", exc_info=exc)
                card.explanation = ExplanationView(f"No explanation: {exc}", "error", False)
            yield cards

    # ------------------------------------------------------------------ tab 1: a known user

    def recommend_user(
        self,
        user_id: str | None,
        k: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(history_html, results_html)``: the list at once, then explanations."""
        try:
            k_ = _check_k(k, self.limits)
            user = _check_text(user_id, 100, "user")
            if not user:
                raise DataValidationError("pick a user first.", source="user")
            progress(0.1, desc="Ranking")
            with self.lock.read():
                recs = self.rec.recommend([user], k=k_)
                history = render_history(self.catalogue.title, self.rec.user_history(user))
                cards = []
                for row in recs.itertuples(index=False):
                    card = self._card(str(row.item_id), row.score, int(row.rank))
                    card.drivers = self._drivers(user, card.item_id)
                    cards.append(card)
        except Exception as exc:
            yield "", render_error(exc)
            return
        heading = f"Top {len(cards)} for user {user}"
        yield history, render_cards(heading, cards, self.explainer.label())
        for done in self._explain_each(cards, lambda c: self.explainer.for_user(user, c.item_id)):
            yield history, render_cards(heading, done, self.explainer.label())

    # ------------------------------------------------------------------ tab 2: a new user

    def recommend_new_user(
        self,
        liked: Sequence[str] | str | None,
        text: str | None,
        k: float,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> Iterator[str]:
        """Yield the results HTML for someone described by picked items and/or words."""
        try:
            k_ = _check_k(k, self.limits)
            taste = _check_text(text, self.limits.max_text, "taste description")
            picks = [liked] if isinstance(liked, str) else [str(x) for x in liked or []]
            if len(picks) > self.limits.max_liked:
                raise DataValidationError(
                    f"{len(picks)} items picked; the limit is {self.limits.max_liked}.",
                    source="picked items",
                    fix="remove a few.",
                )
            progress(0.1, desc="Reading your taste")
            with self.lock.read():
                recs = self.rec.recommend_for_new_user(liked_items=picks, text=taste, k=k_)
                cards = [
                    self._card(str(r.item_id), r.score, int(r.rank))
                    for r in recs.itertuples(index=False)
                ]
        except Exception as exc:
            yield render_error(exc)
            return
        heading = f"Top {len(cards)} for a new user"
        yield render_cards(heading, cards, self.explainer.label())
        explain = self.explainer.for_new_user
        for done in self._explain_each(cards, lambda c: explain(c.item_id, picks, taste)):
            yield render_cards(heading, done, self.explainer.label())

    # ------------------------------------------------------------------ tab 3: a new item

    def new_item_frame(
        self,
        item_id: str | None,
        title: str | None,
        description: str | None,
        attributes: Sequence[str] | str | None,
        year: float | None,
        keywords: str | None,
    ) -> pd.DataFrame:
        """The one-row item frame, with the catalogue's own columns and formats."""
        lim = self.limits
        row: dict[str, Any] = {
            ITEM_COL: _check_text(item_id, 100, "item id") or self._next_id(),
            "title": _check_text(title, lim.max_title, "title") or None,
            "description": _check_text(description, lim.max_text, "description") or None,
        }
        cols = self.rec.items_.columns
        column = self.catalogue.attribute_column
        if column:
            values = [attributes] if isinstance(attributes, str) else list(attributes or [])
            clean = [_check_text(v, 60, column) for v in values]
            row[column] = self.catalogue.separator.join(v for v in clean if v) or None
        if "year" in cols:
            row["year"] = None if year is None or _text(year) is None else int(year)
        if "keywords" in cols:
            words = _check_text(keywords, lim.max_text, "keywords")
            parts = [w.strip() for w in words.split(",") if w.strip()]
            row["keywords"] = self.catalogue.separator.join(parts) or None
        frame = pd.DataFrame([row])
        if "year" in frame.columns:
            frame["year"] = frame["year"].astype("Int64")
        return frame

    def _next_id(self) -> str:
        n = len(self.added) + 1
        while f"new-{n}" in self.catalogue:
            n += 1
        return f"new-{n}"

    def add_item(
        self,
        item_id: str | None,
        title: str | None,
        description: str | None,
        attributes: Sequence[str] | str | None,
        year: float | None,
        keywords: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, dict[str, Any]]:
        """Add an item live; return the result HTML and an update of the item picker."""
        try:
            if len(self.added) >= self.limits.max_added:
                raise DataValidationError(
                    f"this demo already holds {len(self.added)} added items, its limit.",
                    source="new item",
                    fix="restart the app to start afresh.",
                )
            progress(0.2, desc="Embedding and adding the item")
            with self.lock.write():  # the automatic id and the addition, atomically
                frame = self.new_item_frame(item_id, title, description, attributes, year, keywords)
                self.rec.add_items(frame)
                new_id = str(frame[ITEM_COL].iloc[0])
                self.added.append(new_id)
            progress(0.5, desc="Finding the users it would reach and why")
            with self.lock.read():
                added = self._describe_added(new_id, frame)
                choices = self.catalogue.choices()
        except Exception as exc:
            return render_error(exc), gr.update()
        return render_added(added, self.limits.max_k), gr.update(choices=choices)

    def _describe_added(self, new_id: str, frame: pd.DataFrame) -> Added:
        reach = self.rec.score_cold_items(frame, k=REACH_SHOWN)
        near = self.rec.similar_items([new_id], k=NEIGHBOURS_SHOWN)
        top_user = str(reach[USER_COL].iloc[0]) if len(reach) else None
        rank = None
        why = None
        if top_user is not None:
            why = self.explainer.for_user(top_user, new_id)
            recs = self.rec.recommend([top_user], k=self.limits.max_k)
            hit = recs[recs[ITEM_COL] == new_id]
            rank = int(hit["rank"].iloc[0]) if len(hit) else None
        return Added(
            card=self._card(new_id, float("nan"), len(self.catalogue)),
            evidence=self.explainer.evidence(new_id),
            neighbours=[
                (self.catalogue.title(str(r.similar_item_id)), float(r.score))
                for r in near.itertuples(index=False)
            ],
            reach=[(str(r.user_id), float(r.score)) for r in reach.itertuples(index=False)],
            top_user=top_user,
            why=why,
            rank=rank,
            label=self.explainer.label(),
        )

    # ------------------------------------------------------------------ tab 4: insight

    def catalogue_html(self) -> str:
        """Cold / long-tail / head shares of the catalogue, as tiles and one stacked bar."""
        comp = self.catalogue.composition()
        n = max(1, comp["items"])
        tiles = [
            ("items", comp["items"], None),
            ("cold (no interactions)", comp["cold"], "hr-cold"),
            (f"long tail (1–{self.catalogue.tail_max - 1})", comp["tail"], "hr-tail"),
            ("head", comp["head"], "hr-head"),
        ]
        tile_html = "".join(
            f'<div class="hr-tile {css or ""}"><b>{value:,}</b><span>{_e(name)}</span>'
            + (f"<small>{value / n:.1%}</small>" if css else "")
            + "</div>"
            for name, value, css in tiles
        )
        segments = "".join(
            f'<i class="{css}" style="width:{comp[key] / n * 100:.2f}%"></i>'
            for key, css in (("cold", "hr-cold"), ("tail", "hr-tail"), ("head", "hr-head"))
        )
        long_tail = (comp["cold"] + comp["tail"]) / n
        added = f" · {len(self.added)} added in this session" if self.added else ""
        return (
            f'<div class="hr-insight"><div class="hr-tiles">{tile_html}</div>'
            f'<div class="hr-stack">{segments}</div><p class="hr-longtail">'
            f"<b>{long_tail:.1%}</b> of the catalogue is cold or long tail "
            f"(fewer than {self.catalogue.tail_max} interactions){_e(added)}.</p></div>"
        )

    def insight(self) -> tuple[str, str, dict[str, Any], str]:
        """``(catalogue_html, quality_html, plot_update, results_markdown)``; the plot is
        hidden when there is none."""
        quality, plot, markdown = read_benchmarks(self.benchmarks_dir)
        with self.lock.read():
            catalogue = self.catalogue_html()
        return catalogue, quality, gr.update(value=plot, visible=plot is not None), markdown


# ============================================================================ benchmarks


def read_benchmarks(directory: Path) -> tuple[str, Any, str]:
    """Quality table HTML, the recall-by-decile plot (PIL image) and RESULTS.md, if present.

    Each part is optional: a missing or unreadable file gives a notice instead.
    """
    quality_file, results_file = directory / "quality.json", directory / "RESULTS.md"
    if quality_file.is_file():
        try:
            quality = render_quality(json.loads(quality_file.read_text(encoding="utf-8")))
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            quality = render_notice(f"{quality_file} could not be read ({exc}).")
    else:
        quality = render_notice(
            f"No benchmark results in {directory}/ yet: `make bench` writes quality.json, "
            "RESULTS.md and the recall-by-decile plot."
        )
    markdown = ""
    if results_file.is_file():
        text = results_file.read_text(encoding="utf-8", errors="replace")
        text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
        markdown = re.sub(r"!\[[^\]]*\]\([^)]*\)", "", text).strip()
    return quality, _plot(directory), markdown


def _plot(directory: Path) -> Any:
    plots = sorted(directory.glob("recall_by_decile*.png"), key=lambda p: p.stat().st_mtime)
    if not plots:
        return None
    preferred = [p for p in plots if p.stem.endswith("ml-100k")]
    try:
        from PIL import Image

        with Image.open((preferred or plots)[-1]) as img:
            return img.convert("RGB")
    except OSError as exc:
        log.warning("cannot read %s: %s", plots[-1], exc)
        return None


def render_quality(data: dict[str, Any]) -> str:
    """quality.json as one table per dataset: recall/NDCG for cold, warm, all; coverage; tail."""
    if not isinstance(data, dict) or not data:
        return render_notice("quality.json holds no results.")
    settings = ("cold", "warm", "all")
    tables = []
    for key, entry in data.items():
        meta, methods = entry.get("meta", {}), entry.get("methods", {})
        k = meta.get("k", 20)
        head = "".join(f"<th>{s} R@{k}</th><th>{s} N@{k}</th>" for s in settings)
        rows = []
        for name, res in methods.items():
            cells = "".join(
                f"<td>{_fmt(res.get(s, {}).get(m))}</td>"
                for s in settings
                for m in (f"recall@{k}", f"ndcg@{k}")
            )
            extra = res.get("all", {})
            rows.append(
                f"<tr><th>{_e(name)}</th>{cells}<td>{_fmt(extra.get('coverage'), 3)}</td>"
                f"<td>{_fmt(extra.get('long_tail_share'), 3)}</td></tr>"
            )
        caption = f"{key} · encoder {meta.get('encoder', '?')} · {meta.get('date', '')}"
        tables.append(
            f'<table class="hr-table"><caption>{_e(caption)}</caption><thead><tr><th>method</th>'
            f"{head}<th>coverage</th><th>tail share</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(tables)


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if not isinstance(value, int | float) else f"{value:.{digits}f}"


# ============================================================================ the page


CSS = """
.gradio-container { max-width: 1180px !important; margin: auto; }
.hr-header { display: flex; justify-content: space-between; align-items: flex-end; gap: 16px;
  flex-wrap: wrap; padding: 18px 22px; border-radius: 14px; color: #fff;
  background: linear-gradient(120deg, #312e81, #4f46e5 55%, #0d9488); }
.hr-header h1, .hr-header p, .hr-header span, .hr-header b { color: #fff !important; }
.hr-header h1 { margin: 0; font-size: 1.7rem; }
.hr-header p { margin: 4px 0 0; opacity: .9; }
.hr-stats { display: flex; gap: 8px; flex-wrap: wrap; }
.hr-stats span { background: rgba(255,255,255,.16); border-radius: 999px; padding: 4px 12px;
  font-size: .85rem; }
.hr-results-head { display: flex; justify-content: space-between; align-items: baseline;
  margin: 4px 2px 10px; font-weight: 600; }
.hr-sub.hr-using { margin: -6px 2px 10px; text-transform: none; letter-spacing: 0; }
.hr-progress { font-size: .8rem; font-weight: 500; color: var(--body-text-color-subdued); }
.hr-card { border: 1px solid var(--border-color-primary); border-radius: 12px;
  padding: 12px 14px; margin-bottom: 10px; background: var(--block-background-fill);
  box-shadow: 0 1px 2px rgba(15,23,42,.06); }
.hr-card-head { display: flex; align-items: center; gap: 10px; }
.hr-rank { flex: none; width: 28px; height: 28px; border-radius: 50%; display: grid;
  place-items: center; font-weight: 700; font-size: .85rem; color: #fff; background: #4f46e5; }
.hr-title { font-weight: 650; flex: 1; }
.hr-score { font-variant-numeric: tabular-nums; font-size: .85rem; padding: 2px 8px;
  border-radius: 6px; background: var(--background-fill-secondary); }
.hr-meta { margin: 6px 0 0 38px; display: flex; gap: 6px; flex-wrap: wrap;
  align-items: center; }
.hr-chip { font-size: .75rem; padding: 1px 8px; border-radius: 999px;
  background: var(--background-fill-secondary); color: var(--body-text-color-subdued); }
.hr-badge { font-size: .72rem; font-weight: 700; padding: 2px 8px; border-radius: 999px;
  text-transform: uppercase; letter-spacing: .03em; }
.hr-badge.hr-cold { background: #cffafe; color: #155e75; }
.hr-badge.hr-tail { background: #fef3c7; color: #92400e; }
.hr-fusion, .hr-driver, .hr-hist-row, .hr-mini { display: grid; align-items: center; gap: 8px;
  font-size: .8rem; }
.hr-fusion { grid-template-columns: auto 110px auto; justify-content: start;
  margin-left: auto; color: var(--body-text-color-subdued); }
.hr-drivers { margin: 8px 0 0 38px; }
.hr-driver { grid-template-columns: minmax(0, 1fr) 140px 64px; }
.hr-driver-title, .hr-hist-title, .hr-mini span:first-child { overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.hr-bar { display: block; height: 8px; border-radius: 4px; overflow: hidden;
  background: var(--background-fill-secondary); }
.hr-bar i { display: block; height: 100%; border-radius: 4px;
  background: linear-gradient(90deg, #818cf8, #4f46e5); }
.hr-bar.hr-split { background: #5eead4; }
.hr-bar.hr-split i { border-radius: 4px 0 0 4px; background: #6366f1; }
.hr-num { font-variant-numeric: tabular-nums; text-align: right;
  color: var(--body-text-color-subdued); }
.hr-sub { font-size: .72rem; text-transform: uppercase; letter-spacing: .05em;
  color: var(--body-text-color-subdued); margin: 6px 0 4px; }
.hr-expl { margin: 10px 0 0 38px; padding: 8px 12px; border-left: 3px solid #14b8a6;
  background: var(--background-fill-secondary); border-radius: 0 8px 8px 0; font-size: .9rem; }
.hr-expl-error { border-left-color: #f97316; }
.hr-pending { color: var(--body-text-color-subdued);
  animation: hr-pulse 1.2s ease-in-out infinite; }
@keyframes hr-pulse { 50% { opacity: .45; } }
.hr-backend { margin-left: 8px; font-size: .7rem; padding: 1px 6px; border-radius: 4px;
  background: var(--block-background-fill); color: var(--body-text-color-subdued);
  border: 1px solid var(--border-color-primary); }
.hr-note { margin: 6px 0 0 38px; font-size: .8rem; color: var(--body-text-color-subdued); }
.hr-history { border: 1px solid var(--border-color-primary); border-radius: 12px;
  padding: 10px 14px; background: var(--block-background-fill); }
.hr-hist-row { grid-template-columns: minmax(0, 1fr) 90px 52px; padding: 3px 0; }
.hr-hist-title small { display: block; color: var(--body-text-color-subdued); }
.hr-mini { grid-template-columns: minmax(0, 1fr) 110px 52px; padding: 3px 0; }
.hr-error { border: 1px solid #fca5a5; background: #fef2f2; color: #991b1b; border-radius: 10px;
  padding: 10px 14px; }
.hr-notice { border: 1px dashed var(--border-color-primary); border-radius: 10px;
  padding: 10px 14px; color: var(--body-text-color-subdued); }
.hr-ok { border: 1px solid #99f6e4; background: #f0fdfa; color: #134e4a; border-radius: 10px;
  padding: 10px 14px; margin-bottom: 10px; }
.hr-columns { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; }
.hr-why p { margin: 8px 0 0 38px; font-size: .9rem; }
.hr-tiles { display: grid; grid-template-columns: repeat(4, 1fr); gap: 10px; }
.hr-tile { border: 1px solid var(--border-color-primary); border-radius: 12px; padding: 10px 14px;
  background: var(--block-background-fill); display: flex; flex-direction: column; }
.hr-tile b { font-size: 1.4rem; }
.hr-tile span, .hr-tile small { color: var(--body-text-color-subdued); font-size: .8rem; }
.hr-tile.hr-cold { border-top: 4px solid #06b6d4; }
.hr-tile.hr-tail { border-top: 4px solid #f59e0b; }
.hr-tile.hr-head { border-top: 4px solid #6366f1; }
.hr-stack { display: flex; height: 14px; border-radius: 7px; overflow: hidden; margin: 12px 0 6px; }
.hr-stack i.hr-cold { background: #06b6d4; }
.hr-stack i.hr-tail { background: #f59e0b; }
.hr-stack i.hr-head { background: #6366f1; }
.hr-table { width: 100%; border-collapse: collapse; font-size: .82rem; margin-bottom: 14px; }
.hr-table caption { text-align: left; font-weight: 600; padding: 4px 0 8px; }
.hr-table th, .hr-table td { padding: 5px 8px; border-bottom: 1px solid var(--border-color-primary);
  text-align: right; font-variant-numeric: tabular-nums; }
.hr-table th:first-child { text-align: left; }
"""


def theme() -> gr.themes.Base:
    """A clean theme with locally served fonts (no request leaves the machine)."""
    return gr.themes.Soft(primary_hue="indigo", secondary_hue="teal", neutral_hue="slate")


def build_app(
    rec: HybridRecommender,
    *,
    benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
    max_k: int = 50,
    max_text: int = 2000,
    concurrency: int = 2,
    max_queue: int = 64,
) -> gr.Blocks:
    """The Gradio Blocks for a fitted recommender.

    Parameters
    ----------
    rec
        A fitted :class:`~hybrid_rec.HybridRecommender`; items added in the app
        are added to it (in memory, not saved).
    benchmarks_dir
        Where ``quality.json``, ``RESULTS.md`` and ``recall_by_decile*.png`` are read.
    max_k, max_text
        Largest k and longest free text accepted (checked in the page and on the server).
    concurrency, max_queue
        Workers of the request queue and its length: requests beyond them wait
        (or are refused when the queue is full) so the LLM is never overloaded.

    Launch it with :func:`launch` (which applies the theme and CSS).
    """
    state = DemoApp(rec, benchmarks_dir=benchmarks_dir, limits=Limits(max_k, max_text))
    with gr.Blocks(
        title="hybrid_rec · cold-start recommendations", analytics_enabled=False
    ) as demo:
        gr.HTML(state.header_html())
        with gr.Tabs():
            _user_tab(state)
            liked = _new_user_tab(state)
            _new_item_tab(state, liked)
            _insight_tab(state, demo)
    demo.queue(default_concurrency_limit=concurrency, max_size=max_queue)
    demo.hr_state = state  # type: ignore[attr-defined]  # serve() and the tests use it
    return demo


def _k_slider(limits: Limits, elem_id: str) -> gr.Slider:
    return gr.Slider(
        1, limits.max_k, value=min(10, limits.max_k), step=1, label="k", elem_id=elem_id
    )


def _user_tab(state: DemoApp) -> None:
    users = state.user_choices()
    with gr.Tab("A user's recommendations", id="user"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=280):
            user = gr.Dropdown(
                users,
                value=users[0] if users else None,
                label="User",
                info="Type to search by id.",
                elem_id="user-pick",
            )
            k = _k_slider(state.limits, "user-k")
            go = gr.Button("Recommend", variant="primary", elem_id="user-go")
            history = gr.HTML(elem_id="user-history")
        with gr.Column(scale=2):
            out = gr.HTML(render_notice("Pick a user and press Recommend."), elem_id="user-out")
    go.click(state.recommend_user, [user, k], [history, out], api_name="recommend_user")


def _new_user_tab(state: DemoApp) -> gr.Dropdown:
    """The new-user tab; returns its item picker (adding an item updates its choices)."""
    with gr.Tab("New user", id="new-user"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            liked = gr.Dropdown(
                state.catalogue.choices(),  # type: ignore[arg-type]
                value=[],
                multiselect=True,
                max_choices=state.limits.max_liked,
                label="Items you like",
                info="Type to search the catalogue.",
                elem_id="liked-pick",
            )
            taste = gr.Textbox(
                label="Your taste, in words",
                placeholder="e.g. slow, quiet space dramas about loneliness",
                lines=3,
                max_length=state.limits.max_text,
                elem_id="taste",
            )
            k = _k_slider(state.limits, "new-k")
            go = gr.Button("Recommend", variant="primary", elem_id="new-go")
        with gr.Column(scale=2):
            out = gr.HTML(
                render_notice("Pick a few items and/or describe a taste."), elem_id="new-out"
            )
    go.click(state.recommend_new_user, [liked, taste, k], out, api_name="recommend_new_user")
    return liked


def _new_item_tab(state: DemoApp, liked: gr.Dropdown) -> None:
    """The form shows the catalogue's own columns: an attribute list, year, keywords."""
    column = state.catalogue.attribute_column
    cols = state.rec.items_.columns
    max_text = state.limits.max_text
    with gr.Tab("New item", id="new-item"), gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            fields = [
                gr.Textbox(
                    label="Item id (optional)",
                    placeholder="left empty: new-1, new-2 …",
                    elem_id="item-id",
                ),
                gr.Textbox(label="Title", max_length=state.limits.max_title, elem_id="item-title"),
                gr.Textbox(label="Description", lines=4, max_length=max_text, elem_id="item-desc"),
                gr.Dropdown(
                    state.catalogue.vocabulary(),
                    value=[],
                    multiselect=True,
                    allow_custom_value=True,
                    label=(column or "attributes").capitalize(),
                    visible=column is not None,
                    elem_id="item-attr",
                ),
                gr.Number(label="Year", precision=0, visible="year" in cols, elem_id="item-year"),
                gr.Textbox(
                    label="Keywords (comma-separated)",
                    max_length=max_text,
                    visible="keywords" in cols,
                    elem_id="item-kw",
                ),
            ]
            go = gr.Button("Add to the catalogue", variant="primary", elem_id="item-go")
        with gr.Column(scale=2):
            out = gr.HTML(
                render_notice(
                    "Describe an item that does not exist yet: it is embedded and added live, "
                    "shared by everyone on this app until it restarts."
                ),
                elem_id="item-out",
            )
    go.click(state.add_item, fields, [out, liked], api_name="add_item")


def _insight_tab(state: DemoApp, demo: gr.Blocks) -> None:
    with gr.Tab("Catalogue insight", id="insight") as tab:
        catalogue = gr.HTML(elem_id="insight-catalogue")
        quality = gr.HTML(elem_id="insight-quality")
        plot = gr.Image(
            label="Recall by item-popularity decile",
            type="pil",
            interactive=False,
            elem_id="insight-plot",
        )
        with gr.Accordion("benchmarks/RESULTS.md", open=False):
            results = gr.Markdown(elem_id="insight-results")
        refresh = gr.Button("Refresh", size="sm")
    outputs = [catalogue, quality, plot, results]
    tab.select(state.insight, None, outputs, api_visibility="private")
    refresh.click(state.insight, None, outputs, api_name="insight")
    demo.load(state.insight, None, outputs, api_visibility="private")


def launch(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    prevent_thread_lock: bool = True,
    quiet: bool = False,
) -> str:
    """Start the server with the app's theme and CSS; return the local URL."""
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        share=False,
        inbrowser=False,
        quiet=quiet,
        show_error=False,
        footer_links=["api"],
        theme=theme(),
        css=CSS,
    )
    return str(url)


# ============================================================================ serving


def demo_config(epochs: int = DEMO_EPOCHS) -> RecommenderConfig:
    """The default config with a short training run, for the first start of the demo."""
    cfg = RecommenderConfig()
    cfg.model.epochs = epochs
    return cfg


def load_or_fit(
    model_dir: str | os.PathLike[str] = DEFAULT_MODEL_DIR,
    *,
    epochs: int = DEMO_EPOCHS,
    refit: bool = False,
) -> HybridRecommender:
    """Load the model in ``model_dir``, or fit MovieLens-100k and save it there first.

    It fits when the directory holds no model, when ``refit`` is set, and when
    the demo's own directory (:data:`DEFAULT_MODEL_DIR`) holds a model an
    older version of the library wrote. Any other directory that fails to load
    is an error: it may be someone's own model.
    """
    directory = Path(model_dir)
    if (directory / "manifest.json").is_file() and not refit:
        start = time.perf_counter()
        try:
            rec = HybridRecommender.load(directory)
        except ModelFileError as exc:
            if directory.resolve() != DEFAULT_MODEL_DIR.resolve():
                raise
            log.warning("the saved demo model cannot be loaded (%s); fitting it afresh", exc)
        else:
            log.info("loaded the model from %s in %.1f s", directory, time.perf_counter() - start)
            return rec
    return fit_demo_model(directory, epochs=epochs)


def fit_demo_model(directory: Path, *, epochs: int = DEMO_EPOCHS) -> HybridRecommender:
    """Fit MovieLens-100k (MiniLM content vectors) and save it to ``directory``."""
    log.info(
        "fitting MovieLens-100k into %s once (%d epochs, a few minutes); later starts load it "
        "in seconds",
        directory,
        epochs,
    )
    start = time.perf_counter()
    ds = datasets.load_movielens("100k")
    log.info(
        "step 1/3: loaded %s interactions, %s items", f"{len(ds.interactions):,}", len(ds.items)
    )
    log.info("step 2/3: embedding the items and training (progress bars below)")
    rec = HybridRecommender(demo_config(epochs)).fit(ds.interactions, ds.items, show_progress=True)
    rec.save(directory)
    log.info(
        "step 3/3: saved the model to %s (%.0f s in all)", directory, time.perf_counter() - start
    )
    return rec


def serve(
    model_dir: str | os.PathLike[str] | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    epochs: int = DEMO_EPOCHS,
    refit: bool = False,
    benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
    concurrency: int = 2,
    explain_backend: str | None = None,
    block: bool = True,
) -> gr.Blocks:
    """Fit or load the demo model and serve the app on ``host:port``.

    ``explain_backend`` (``llama_cpp``, ``transformers``, ``template``)
    overrides the saved model's explanation backend; by default the local LLM
    is used when llama-cpp-python is installed. With ``block=False`` it
    returns once the page is up (the server keeps running in a thread);
    otherwise it serves until interrupted.
    """
    start = time.perf_counter()
    _configure_logging()
    library = logging.getLogger("hybrid_rec")
    level = library.level
    library.setLevel(min(level or logging.INFO, logging.INFO))  # the fit's stages and bars
    try:
        rec = load_or_fit(model_dir or DEFAULT_MODEL_DIR, epochs=epochs, refit=refit)
        rec.recommend_for_new_user(text="warm up the text encoder", k=1)  # load it now
    finally:
        library.setLevel(level)  # requests then log quietly (no progress bar per request)
    use_explain_backend(rec, explain_backend)
    demo = build_app(rec, benchmarks_dir=benchmarks_dir, concurrency=concurrency)
    try:
        url = launch(demo, host=host, port=port)
    except OSError as exc:
        raise HybridRecError(
            f"cannot listen on {host}:{port} ({exc}); pass another --port."
        ) from None
    log.info("app ready at %s (%.1f s after start)", url, time.perf_counter() - start)
    state = demo.hr_state  # type: ignore[attr-defined]
    threading.Thread(target=warm_up_explanations, args=(state,), daemon=True).start()
    if block:
        try:
            demo.block_thread()
        finally:
            demo.close()
    return demo


def use_explain_backend(rec: HybridRecommender, backend: str | None = None) -> str:
    """Set the explanation backend: ``backend``, or when None ``llama_cpp`` if
    llama-cpp-python is installed and else the saved model's own."""
    if backend is None and importlib.util.find_spec("llama_cpp") is not None:
        backend = "llama_cpp"
    if backend:
        try:
            rec.config.explain.backend = backend  # type: ignore[assignment]
        except ValueError:
            raise HybridRecError(
                f"unknown explanation backend {backend!r}: choose llama_cpp, transformers or "
                "template."
            ) from None
    return str(rec.config.explain.backend)


def warm_up_explanations(state: DemoApp) -> None:
    """Load the explanation model with one explanation: lists are served meanwhile, and
    explanations wait for it (the explainer's lock) rather than load it twice."""
    rec = state.rec
    users = state.user_choices()
    if rec.config.explain.backend == TEMPLATE or not users:
        return
    start = time.perf_counter()
    with state.lock.read():
        item = str(rec.recommend([users[0]], k=1)[ITEM_COL].iloc[0])
        state.explainer.for_user(users[0], item)  # logs and falls back if it fails
    if state.explainer.fallback_reason:
        return
    log.info(
        "explanations by %s ready (%.1f s)", rec.config.explain.backend, time.perf_counter() - start
    )


def _configure_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).setLevel(logging.INFO)


if __name__ == "__main__":
    serve()
