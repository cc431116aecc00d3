"""HTML for the page: recommendation cards, history, errors, the new item, the catalogue.

Pure functions of plain data (:class:`Card`, :class:`Added`, dicts): no model
access here, so each piece is easy to test and to restyle. Every value from
the catalogue or a user is escaped.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from app.catalogue import cell_text, names_id
from app.explainer import ExplanationView
from app.settings import HISTORY_SHOWN
from hybrid_rec import HybridRecError

__all__ = [
    "Added",
    "Card",
    "Driver",
    "escape",
    "render_added",
    "render_card",
    "render_cards",
    "render_catalogue",
    "render_error",
    "render_header",
    "render_history",
    "render_notice",
    "render_removed",
]

log = logging.getLogger(__name__)


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
    details: list[str] = field(default_factory=list)  # "brand Fjällro", "price 47.7" ...


def escape(value: Any) -> str:
    """``value`` as text safe inside HTML and attribute values."""
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
    chips = "".join(f'<span class="hr-chip">{escape(c)}</span>' for c in card.chips)
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
            f'{d.similarity:.2f}"><span class="hr-driver-title" title="{escape(d.title)}">'
            f"{escape(d.title)}</span>"
            f"{_bar(d.contribution / top)}"
            f'<span class="hr-num">{d.attention:.0%} att.</span></div>'
            for d in card.drivers
        )
        drivers = f'<div class="hr-drivers"><div class="hr-sub">driven by</div>{rows}</div>'
    note = f'<div class="hr-note">{escape(card.note)}</div>' if card.note else ""
    # the id beside the title: items of one title (colour variants) are told apart
    ident = (
        ""
        if names_id(card.title, card.item_id)
        else f' <span class="hr-id">{escape(card.item_id)}</span>'
    )
    details = (
        '<div class="hr-details">' + " · ".join(escape(d) for d in card.details) + "</div>"
        if card.details
        else ""
    )
    return (
        f'<div class="hr-card" data-item="{escape(card.item_id)}">'
        f'<div class="hr-card-head"><span class="hr-rank">{card.rank}</span>'
        f'<span class="hr-title">{escape(card.title)}{ident}</span>'
        f"{_badge(card.kind, card.count)}"
        f'<span class="hr-score" title="model score">{card.score:.3f}</span></div>'
        f'<div class="hr-meta">{chips}{fusion}</div>{details}{drivers}{note}'
        f"{_render_explanation(card.explanation, explain_label)}</div>"
    )


def _render_explanation(explanation: ExplanationView | None, label: str | None) -> str:
    if explanation is None:
        return '<div class="hr-expl hr-pending">Explaining…</div>'
    tag = explanation.backend if explanation.grounded else f"{explanation.backend}, unchecked"
    css = "hr-expl" + (" hr-expl-error" if explanation.backend == "error" else "")
    return (
        f'<div class="{css}">{escape(explanation.text)}'
        f'<span class="hr-backend" title="{escape(label or "")}">{escape(tag)}</span></div>'
    )


def render_cards(heading: str, cards: Sequence[Card], label: str | None = None) -> str:
    """The result list: a heading, explanation progress, the backend in use, the cards.

    Cards whose explanation is still None show a pulsing placeholder.
    """
    done = sum(c.explanation is not None for c in cards)
    progress = f"explanations {done}/{len(cards)}"
    body = "".join(render_card(c, label) for c in cards)
    notes = [f"explanations: {label}"] if label else []
    if any(c.drivers for c in cards):
        notes.append(
            "driven by: the history items behind a pick; bar = attention × similarity, "
            "number = attention"
        )
    legend = "".join(f'<div class="hr-sub hr-using">{escape(n)}</div>' for n in notes)
    return (
        f'<div class="hr-results"><div class="hr-results-head"><span>{escape(heading)}</span>'
        f'<span class="hr-progress" data-done="{done}" data-total="{len(cards)}">'
        f"{progress}</span></div>{legend}{body}</div>"
    )


def render_error(exc: BaseException) -> str:
    """A readable message for the page; never a traceback."""
    if isinstance(exc, HybridRecError):
        message = str(exc)
    else:
        log.error("unexpected error in the app", exc_info=exc)
        message = f"Unexpected error ({type(exc).__name__}): {exc}. Details are in the server log."
    return f'<div class="hr-error" role="alert"><b>Could not do that.</b> {escape(message)}</div>'


def render_notice(text: str) -> str:
    return f'<div class="hr-notice">{escape(text)}</div>'


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
        if ts is not None and cell_text(ts) is not None:
            when = " · " + time.strftime("%Y-%m-%d", time.gmtime(int(ts)))
        title = escape(title_of(str(rec.item_id)))
        what = str(rec.event)
        rating = getattr(rec, "rating", None)
        if rating is not None and cell_text(rating) is not None:
            what += f" {rating:g}" if what == "rating" else f" · rated {rating:g}"
        rows.append(
            f'<div class="hr-hist-row"><span class="hr-hist-title" title="{title}">{title}'
            f"<small>{escape(what)}{escape(when)}</small></span>"
            f"{_bar(float(rec.attention) / top)}"
            f'<span class="hr-num">{float(rec.attention):.1%}</span></div>'
        )
    more = len(history) - len(shown)
    # the profile attends to the latest items only (the model's history length), so
    # this counts what it holds, not the user's whole log
    tail = (
        f'<div class="hr-sub">… and {more} more of the {len(history)} latest items the '
        "profile attends to</div>"
        if more > 0
        else ""
    )
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
        f'<div class="hr-added" data-item="{escape(card.item_id)}"><div class="hr-ok">'
        f"<div>Added <b>{escape(card.title)}</b> as item <code>{escape(card.item_id)}</code> "
        f"{_badge(card.kind, card.count)}</div><div>Retrievable now, no retraining. "
        f"{escape(added.evidence)}</div></div>"
    )
    near = "".join(
        f'<div class="hr-mini"><span title="{escape(title)}">{escape(title)}</span>{_bar(score)}'
        f'<span class="hr-num">{score:.2f}</span></div>'
        for title, score in added.neighbours
    )
    top = max((score for _, score in added.reach), default=1.0) or 1.0
    users = "".join(
        f'<div class="hr-mini"><span>user {escape(user)}</span>{_bar(score / top)}'
        f'<span class="hr-num">{score:.3f}</span></div>'
        for user, score in added.reach
    )
    if added.top_user is None:
        story = render_notice("No user to reach.")
    else:
        user = escape(added.top_user)
        where = (
            f"It now ranks <b>#{added.rank}</b> in user {user}'s recommendations."
            if added.rank
            else f"It suits user {user} best of all users, but not yet enough to enter "
            f"their top {max_k}: the items there suit them even more."
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


def render_removed(title: str, item_id: str, *, restored: bool) -> str:
    """What the new-item tab shows after an item is removed from service, or restored."""
    if restored:
        said = "Served again: it can be recommended, picked and listed as a neighbour."
    else:
        said = (
            "No longer recommended, offered in the item picker or listed among a new "
            "item's nearest items. Restore undoes it."
        )
    return (
        f'<div class="hr-removed" data-item="{escape(item_id)}" '
        f'data-state="{"restored" if restored else "removed"}"><div class="hr-ok">'
        f"<div>{'Restored' if restored else 'Removed'} <b>{escape(title)}</b> (item "
        f"<code>{escape(item_id)}</code>).</div><div>{said} For every visitor of this app "
        "until it restarts; not saved to the model directory.</div></div></div>"
    )


def render_header(users: int, items: int, encoder: str, explain_label: str) -> str:
    """The banner: what the app is, the catalogue's size, the encoder and explanation backend."""
    return (
        '<div class="hr-header"><div><h1>hybrid_rec</h1><p>Cold-start recommendations '
        "with explanations: content vectors fused with behaviour by attention.</p></div>"
        f'<div class="hr-stats"><span><b>{users:,}</b> users</span>'
        f"<span><b>{items:,}</b> items</span>"
        f"<span>encoder <b>{escape(encoder)}</b></span>"
        f'<span class="hr-backend-label">explanations: <b>{escape(explain_label)}</b>'
        "</span></div></div>"
    )


def render_catalogue(composition: dict[str, int], tail_max: int, added: int = 0) -> str:
    """Cold / long-tail / head shares of the catalogue, as tiles and one stacked bar.

    ``composition`` is :meth:`app.catalogue.Catalogue.composition`; ``added`` the
    number of items added in this session.
    """
    comp = composition
    n = max(1, comp["items"])
    tiles = [
        ("items", comp["items"], None),
        ("cold (no interactions)", comp["cold"], "hr-cold"),
        (f"long tail (1–{tail_max - 1})", comp["tail"], "hr-tail"),
        ("head", comp["head"], "hr-head"),
    ]
    tile_html = "".join(
        f'<div class="hr-tile {css or ""}"><b>{value:,}</b><span>{escape(name)}</span>'
        + (f"<small>{value / n:.1%}</small>" if css else "")
        + "</div>"
        for name, value, css in tiles
    )
    segments = "".join(
        f'<i class="{css}" style="width:{comp[key] / n * 100:.2f}%"></i>'
        for key, css in (("cold", "hr-cold"), ("tail", "hr-tail"), ("head", "hr-head"))
    )
    long_tail = (comp["cold"] + comp["tail"]) / n
    session = f" · {added} added in this session" if added else ""
    return (
        f'<div class="hr-insight"><div class="hr-tiles">{tile_html}</div>'
        f'<div class="hr-stack">{segments}</div><p class="hr-longtail">'
        f"<b>{long_tail:.1%}</b> of the catalogue is cold or long tail "
        f"(fewer than {tail_max} interactions){escape(session)}.</p></div>"
    )
