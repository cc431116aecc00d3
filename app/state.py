"""The app's state and callbacks over the public API, testable without a browser.

:class:`DemoApp` holds the recommender, the catalogue view, the explainer and
the session's added items; each tab's button calls one of its methods. The
methods return HTML (or yield it, so a list shows before its explanations) and
turn every error into a readable message, never a traceback.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from app.benchmarks import read_benchmarks
from app.catalogue import ITEM_COL, USER_COL, Catalogue
from app.explainer import Explainer, ExplanationView
from app.locks import ReadWriteLock
from app.render import (
    Added,
    Card,
    Driver,
    render_added,
    render_cards,
    render_catalogue,
    render_error,
    render_header,
    render_history,
    render_notice,
    render_removed,
)
from app.settings import (
    DEFAULT_BENCHMARKS_DIR,
    DRIVERS_SHOWN,
    NEIGHBOURS_SHOWN,
    REACH_SHOWN,
    Limits,
    as_number,
    check_k,
    check_new_items,
    check_text,
    shown,
    weak_taste_match,
)
from hybrid_rec import HybridRecError, HybridRecommender, parse_filters
from hybrid_rec.errors import DataValidationError

__all__ = ["DemoApp"]

log = logging.getLogger(__name__)
_MAX_SESSIONS = 10_000  # browser sessions whose latest request is remembered


class DemoApp:
    """The app's state and callbacks, testable without a browser.

    Calls into the recommender hold :attr:`lock`: shared for rankings and
    explanations, exclusive for ``add_items``, ``remove_items`` /
    ``restore_items`` and for swapping in a model
    reloaded from disk; the explainer runs one generation at a time on top of
    that.

    With ``model_dir`` (where ``rec`` was loaded from), :meth:`reload_if_changed`
    loads the model again once a save has replaced that directory — a nightly
    ``hybrid-rec sync-catalogue``, ``update-items`` or a refit — so a running app
    serves today's catalogue without a restart (``serve`` checks every few seconds).
    """

    def __init__(
        self,
        rec: HybridRecommender,
        *,
        benchmarks_dir: str | os.PathLike[str] = DEFAULT_BENCHMARKS_DIR,
        limits: Limits | None = None,
        model_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.rec = rec
        self.limits = limits or Limits()
        self.benchmarks_dir = Path(benchmarks_dir)
        self.lock = ReadWriteLock()
        self.catalogue = Catalogue(rec)
        self.explainer = Explainer(rec, self.catalogue)
        self.encoder_name = _encoder_name(rec)  # whose broad-picks threshold applies
        self.added: list[str] = []
        self.removed: list[str] = []  # items removed in this app (restore_item undoes them)
        self.model_dir = Path(model_dir) if model_dir is not None else None
        self._on_disk = _saved_version(self.model_dir)
        self._reloading = threading.Lock()
        self.reloaded_at: datetime.datetime | None = None
        # (tab, browser session) -> number of its latest request: a newer one stops
        # an older one's explanations (:meth:`_latest_only`)
        self._requests: dict[tuple[str, str | None], int] = {}
        self._requests_lock = threading.Lock()

    # ------------------------------------------------------------------ reload

    def reload_if_changed(self) -> bool:
        """Load the model again if a save replaced :attr:`model_dir`; True if it did.

        The new model is loaded (its sha256 checked) while the old one keeps
        serving, then swapped in under the write lock. Items added in the app
        and absent from the new model are added to it again, so nothing added
        here is lost, and items removed here are removed from it again; the
        explanation backend chosen at start is kept. A
        directory that fails to load (a tampered file, another version) is
        logged and skipped, and the app keeps the model it has, until a later
        save replaces the directory again.
        """
        if self.model_dir is None:
            return False
        with self._reloading:  # one reload at a time
            now = _saved_version(self.model_dir)
            if now is None or now == self._on_disk:
                return False
            self._on_disk = now  # a version that fails to load is not tried again
            start = time.perf_counter()
            try:
                rec = _load_like(self.model_dir, self.rec)  # slow part: the old one serves
                rec.config.explain.backend = self.rec.config.explain.backend
                with self.lock.write():  # no item can be added between the copy and the swap
                    session = self.rec.items_[self.rec.items_[ITEM_COL].isin(self.added)]
                    on_disk = session[ITEM_COL].isin(rec.items_[ITEM_COL])
                    missing = session[~on_disk]
                    if len(missing):
                        rec.add_items(missing.reset_index(drop=True))
                    taken = set(map(str, session[ITEM_COL][on_disk]))
                    if taken:  # the save has items of those ids: the save's win, said so
                        log.warning(
                            "%d item(s) added here (%s) have ids the new save holds too; "
                            "the saved items are served under those ids",
                            len(taken),
                            ", ".join(sorted(taken)[:5]),
                        )
                        self.added = [i for i in self.added if i not in taken]
                    self.removed = _removed_again(rec, self.removed, taken)
                    self.rec = rec
                    self.catalogue = Catalogue(rec)
                    self.explainer = Explainer(rec, self.catalogue)
                    self.encoder_name = _encoder_name(rec)
                    self.reloaded_at = datetime.datetime.now()
            except Exception as exc:
                log.warning(
                    "%s changed on disk but cannot be loaded (%s); still serving the model "
                    "loaded before",
                    self.model_dir,
                    exc,
                )
                return False
            log.info(
                "reloaded the model from %s (%d items, %d users; %d added here kept) in %.1f s",
                self.model_dir,
                len(rec.items_),
                len(rec.user_ids_.external_ids),
                len(missing),
                time.perf_counter() - start,
            )
            return True

    def watch(self, every: float, stop: threading.Event) -> None:
        """Call :meth:`reload_if_changed` every ``every`` seconds until ``stop`` is set."""
        while not stop.wait(every):
            try:
                self.reload_if_changed()
            except Exception as exc:  # never let the watcher die silently
                log.error("checking %s for a new model failed", self.model_dir, exc_info=exc)

    # ------------------------------------------------------------------ helpers

    def user_choices(self) -> list[str]:
        """Every known user id, numeric ids in numeric order (for the user picker)."""
        ids = [str(u) for u in self.rec.user_ids_.external_ids]
        return sorted(ids, key=lambda u: (not u.isdigit(), int(u) if u.isdigit() else 0, u))

    def user_picker_update(self) -> dict[str, Any]:
        """The user picker's choices as the model is now (a reload may add or drop users)."""
        with self.lock.read():
            return gr.update(choices=self.user_choices())

    def header_html(self) -> str:
        """The banner: catalogue size, encoder and the explanation backend in use."""
        return render_header(
            users=len(self.rec.user_ids_.external_ids),
            items=self.catalogue.served(),
            encoder=str(self.rec.config.content.encoder),
            explain_label=self.explainer.label(),
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
            chips=_chips(self.catalogue.attributes(item_id)),
            content_share=float(info["content_share"]),
            details=self.catalogue.details(item_id),
        )

    def _drivers(self, user_id: str, item_id: str) -> list[Driver]:
        contrib = self.rec.contributions(user_id, item_id)
        top = contrib[contrib["contribution"] > 0].head(DRIVERS_SHOWN)
        return [
            Driver(self.catalogue.title(str(r.item_id)), r.attention, r.similarity, r.contribution)
            for r in top.itertuples(index=False)
        ]

    def _latest_only(self, tab: str, request: gr.Request | None) -> Callable[[], bool]:
        """Register a request of ``tab`` from one browser session; the returned
        ``superseded()`` is true once a newer request of that tab and session has
        started. A second click while explanations stream then gets its list at
        once and the first stops writing (before, it waited for every explanation
        of the first list, a minute or two with the local LLM). Calls through the
        API (``gradio_client`` says so in a header) and direct calls are independent
        jobs, never superseded."""
        headers = getattr(request, "headers", None) or {}
        if request is None or headers.get("x-gradio-user") in ("api", "mcp"):
            return lambda: False
        key = (tab, getattr(request, "session_hash", None))
        with self._requests_lock:
            if len(self._requests) > _MAX_SESSIONS:  # forget old sessions (theirs stop)
                self._requests.clear()
            number = self._requests.get(key, 0) + 1
            self._requests[key] = number
        return lambda: self._requests.get(key) != number

    def _filters(self, where: str | None) -> tuple[dict[str, tuple[str, str]] | None, str]:
        """The filter box's text (``category=Lamps; price<50``, a filter per line or
        between semicolons) as library filters, and how the heading says them."""
        text = check_text(where, self.limits.max_text, "filter")
        parts = [p.strip() for p in re.split(r"[;\n]", text) if p.strip()]
        if not parts:
            return None, ""
        filters = parse_filters(parts)
        with self.lock.read():
            unknown = [c for c in filters if c not in self.rec.items_.columns]
        if unknown:
            raise DataValidationError(
                f"the catalogue has no column {shown(unknown[0])}.",
                source="filter",
                fix=f"filter on one of: {', '.join(self.filter_columns())}.",
            )
        return filters, " where " + ", ".join(parts)

    def filter_columns(self) -> list[str]:
        """The catalogue columns a filter may name (not the id or free text)."""
        free = {ITEM_COL, "description", "keywords"}
        return [str(c) for c in self.rec.items_.columns if c not in free]

    def filter_hint(self) -> str:
        """The filter box's placeholder: an example from this catalogue's columns."""
        column = self.catalogue.attribute_column
        example = []
        if column is not None and (values := self.catalogue.vocabulary()):
            example.append(f"{column}={values[0]}")
        numeric = [
            str(c) for c in self.rec.items_.select_dtypes("number").columns if str(c) != ITEM_COL
        ]
        if numeric:
            example.append(f"{numeric[0]}<{self.rec.items_[numeric[0]].median():g}")
        return "e.g. " + "; ".join(example) if example else "e.g. column=value"

    def _explain_each(
        self,
        cards: list[Card],
        explain: Callable[[Card], ExplanationView],
        superseded: Callable[[], bool] = lambda: False,
    ) -> Iterator[list[Card]]:
        """Fill in explanations one by one, yielding after each (the list shows at once);
        stop, yielding nothing more, once ``superseded()``."""
        for card in cards:
            if superseded():
                return
            try:
                with self.lock.read():
                    card.explanation = explain(card)
            except Exception as exc:
                if not isinstance(exc, HybridRecError):
                    log.error("explanation failed", exc_info=exc)
                card.explanation = ExplanationView(f"No explanation: {exc}", "error", False)
            if superseded():  # a newer list is shown: this one must not overwrite it
                return
            yield cards

    # ------------------------------------------------------------------ tab 1: a known user

    def recommend_user(
        self,
        user_id: str | None,
        k: float,
        new_items: float = 0,
        where: str | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
        request: gr.Request | None = None,
    ) -> Iterator[tuple[str, str]]:
        """Yield ``(history_html, results_html)``: the list at once, then explanations.
        ``new_items`` places are kept for items without interactions (new arrivals);
        ``where`` holds filters as text (``category=Lamps; price<50``). A newer
        request from the same browser stops the explanations."""
        superseded = self._latest_only("user", request)
        try:
            k_ = check_k(k, self.limits)
            fresh = check_new_items(new_items, k_)
            filters, said = self._filters(where)
            user = check_text(user_id, self.limits.max_id, "user")
            if not user:
                raise DataValidationError("pick a user first.", source="user")
            progress(0.1, desc="Ranking")
            with self.lock.read():
                if self.rec.user_ids_.lookup([user])[0] < 0:
                    raise DataValidationError(
                        f"there is no user {shown(user)} in this model.",
                        source="user",
                        fix="pick one from the list, or build a new user in the New user tab.",
                    )
                recs = self.rec.recommend([user], k=k_, new_items=fresh, filters=filters)
                history = render_history(self.catalogue.title, self.rec.user_history(user))
                cards = []
                for row in recs.itertuples(index=False):
                    card = self._card(str(row.item_id), row.score, int(row.rank))
                    card.drivers = self._drivers(user, card.item_id)
                    cards.append(card)
        except Exception as exc:
            yield "", render_error(exc)
            return
        heading = f"Top {len(cards)} for user {user}{said}"
        yield history, render_cards(heading, cards, self.explainer.label())
        explain = self.explainer.for_user
        for done in self._explain_each(cards, lambda c: explain(user, c.item_id), superseded):
            yield history, render_cards(heading, done, self.explainer.label())

    # ------------------------------------------------------------------ tab 2: a new user

    def recommend_new_user(
        self,
        liked: Sequence[str] | str | None,
        text: str | None,
        k: float,
        where: str | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
        request: gr.Request | None = None,
    ) -> Iterator[str]:
        """Yield the results HTML for someone described by picked items and/or words
        (the list at once, then explanations, which a newer request stops); ``where``
        holds filters as text."""
        superseded = self._latest_only("new-user", request)
        try:
            k_ = check_k(k, self.limits)
            filters, said = self._filters(where)
            taste = check_text(text, self.limits.max_text, "taste description")
            given = [liked] if isinstance(liked, str) else list(liked or [])
            if len(given) > self.limits.max_liked:
                raise DataValidationError(
                    f"{len(given)} items picked; the limit is {self.limits.max_liked}.",
                    source="picked items",
                    fix="remove a few.",
                )
            cleaned = (check_text(x, self.limits.max_id, "picked item") for x in given)
            picks = [p for p in cleaned if p]
            if not picks and not taste.strip():
                raise DataValidationError(
                    "nothing to go on yet.",
                    source="new user",
                    fix="pick a few items you like, or describe your taste in words (or both).",
                )
            progress(0.1, desc="Reading your taste")
            with self.lock.read():
                recs = self.rec.recommend_for_new_user(
                    liked_items=picks, text=taste, k=k_, filters=filters
                )
                cards = [
                    self._card(str(r.item_id), r.score, int(r.rank))
                    for r in recs.itertuples(index=False)
                ]
                notice = self._weak_taste_notice(taste, bool(picks)) if cards else ""
        except Exception as exc:
            yield render_error(exc)
            return
        heading = f"Top {len(cards)} for a new user{said}"
        yield notice + render_cards(heading, cards, self.explainer.label())
        explain_new = self.explainer.for_new_user
        lines = self._explain_each(
            cards, lambda c: explain_new(c.item_id, picks, taste), superseded
        )
        for done in lines:
            yield notice + render_cards(heading, done, self.explainer.label())

    def _weak_taste_notice(self, taste: str, picked: bool) -> str:
        """A notice above the list when the taste in words matches no item closely
        (:data:`~app.settings.WEAK_TASTE_MATCH`): the list is then broad picks, and
        must not look as confident as one for a taste the catalogue covers. None for
        an encoder without a measured threshold: another encoder's would mislead."""
        threshold = weak_taste_match(self.encoder_name)
        if not taste or threshold is None:
            return ""
        try:
            match = self.rec.text_match(taste)
        except Exception as exc:  # a notice is never worth the list
            log.error("measuring how well the taste matches the catalogue failed", exc_info=exc)
            return ""
        if match >= threshold:
            return ""
        around = " around the items you picked" if picked else ""
        return render_notice(
            f"Your description matched nothing in the catalogue closely (best similarity "
            f"{match:.2f}), so these are broad picks{around}. Try other words, or pick a "
            "few items you like."
        )

    # ------------------------------------------------------------------ tab 3: a new item

    def new_item_frame(
        self,
        item_id: str | None,
        title: str | None,
        description: str | None,
        attributes: Sequence[str] | str | None,
        year: float | None,
        keywords: str | None,
        others: str | None = None,
    ) -> pd.DataFrame:
        """The one-row item frame, with the catalogue's own columns and formats.

        ``others`` holds the remaining columns as ``column: value`` lines
        (``brand: Acme``, ``price: 12.5``); numeric columns take numbers."""
        lim = self.limits
        given_id = check_text(item_id, lim.max_id, "item id")
        if given_id and given_id in self.catalogue:
            removed = given_id in self.catalogue.removed()
            raise DataValidationError(
                f"the catalogue already has an item with id {shown(given_id)}"
                + (", removed from service." if removed else "."),
                source="new item",
                column=ITEM_COL,
                fix="leave the id blank to get a new one, or type another"
                + (f"; or restore {given_id} under Remove an item." if removed else "."),
            )
        # the catalogue's own title column: a "title" added beside a shop's "name" would
        # become the title column, and every catalogue item would lose its name
        title_col = self.catalogue.title_column or "title"
        row: dict[str, Any] = {
            ITEM_COL: given_id or self._next_id(),
            title_col: check_text(title, lim.max_title, "title") or None,
            "description": check_text(description, lim.max_text, "description") or None,
        }
        cols = self.rec.items_.columns
        column = self.catalogue.attribute_column
        if column:
            values = [attributes] if isinstance(attributes, str) else list(attributes or [])
            if len(values) > lim.max_values:
                raise DataValidationError(
                    f"{len(values):,} {column} values given; the limit is {lim.max_values}.",
                    source="new item",
                    column=column,
                    fix="keep the few that describe the item best.",
                )
            vocabulary = self.catalogue.vocabulary()
            by_case = {v.lower(): v for v in vocabulary}
            clean = list(  # "space" is the catalogue's "Space"; each value once
                dict.fromkeys(
                    by_case.get(v.lower(), v)
                    for v in (check_text(x, lim.max_attribute, column) for x in values)
                )
            )
            known = set(vocabulary)
            for value in clean:
                if value and value not in known and not _NEW_VALUE.fullmatch(value):
                    raise DataValidationError(
                        f"{value[:40]!r} is not a {column} value this catalogue has, and a new "
                        "one must be a short name.",
                        source="new item",
                        column=column,
                        fix="pick from the list, or type at most 4 words of letters, digits "
                        "and - & ' . + (32 characters).",
                    )
            row[column] = self.catalogue.separator.join(v for v in clean if v) or None
        if "year" in cols:
            row["year"] = _check_year(year)
        if "keywords" in cols:
            words = check_text(keywords, lim.max_text, "keywords")
            parts = [w.strip() for w in words.split(",") if w.strip()]
            row["keywords"] = self.catalogue.separator.join(parts) or None
        row.update(self._other_fields(others))
        frame = pd.DataFrame([row])
        if "year" in frame.columns:
            frame["year"] = frame["year"].astype("Int64")
        return frame

    def _other_fields(self, others: str | None) -> dict[str, Any]:
        allowed = self.catalogue.other_columns()
        fields: dict[str, Any] = {}
        for line in check_text(others, self.limits.max_text, "other attributes").splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition(":")
            name, value = name.strip(), value.strip()
            if not sep or name not in allowed:
                raise DataValidationError(
                    f"{line.strip()[:60]!r} is not 'column: value' for a catalogue column.",
                    source="other attributes",
                    fix=f"one per line, columns: {', '.join(allowed) or 'none'}.",
                )
            if not value:
                continue
            if self.catalogue.is_numeric(name):
                number = as_number(value)
                if not math.isfinite(number):
                    raise DataValidationError(
                        f"{name} takes a number, got {value[:40]!r}.", source="other attributes"
                    )
                fields[name] = number
            else:
                fields[name] = check_text(value, self.limits.max_attribute, name)
        return fields

    def _next_id(self) -> str:
        n = len(self.added) + 1
        while f"new-{n}" in self.catalogue:
            n += 1
        return f"new-{n}"

    def picker_update(self) -> dict[str, Any]:
        """The item picker's choices as the catalogue is now (added items included)."""
        with self.lock.read():
            return gr.update(choices=self.catalogue.choices())

    def add_item(
        self,
        item_id: str | None,
        title: str | None,
        description: str | None,
        attributes: Sequence[str] | str | None,
        year: float | None,
        keywords: str | None,
        others: str | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, dict[str, Any]]:
        """Add an item live; return the result HTML and an update of the item picker."""
        try:
            progress(0.2, desc="Embedding and adding the item")
            with self.lock.write():  # the limit, the automatic id and the addition, atomically
                if len(self.added) >= self.limits.max_added:
                    raise DataValidationError(
                        f"this demo already holds {len(self.added)} added items, its limit.",
                        source="new item",
                        fix="restart the app to start afresh.",
                    )
                frame = self.new_item_frame(
                    item_id, title, description, attributes, year, keywords, others
                )
                self._check_not_added_before(frame)
                self.rec.add_items(frame)
                new_id = str(frame[ITEM_COL].iloc[0])
                self.added.append(new_id)
        except Exception as exc:
            return render_error(exc), gr.update()
        # the item is in: whatever fails from here on is said as such, not as a failed add
        with self.lock.read():
            choices = self.catalogue.choices()
        progress(0.5, desc="Finding the users it would reach and why")
        try:
            with self.lock.read():
                added = self._describe_added(new_id, frame)
        except Exception as exc:
            log.error("item %s was added, but describing it failed", new_id, exc_info=exc)
            page = render_notice(
                f"Added as item {new_id}: it is retrievable now. The users it would reach "
                f"could not be shown ({type(exc).__name__}: {str(exc)[:200]})."
            )
            return page, gr.update(choices=choices)
        return render_added(added, self.limits.max_k), gr.update(choices=choices)

    def remove_item(
        self,
        item_id: str | None,
        liked: Sequence[str] | str | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, dict[str, Any]]:
        """Take back an item added in this app (one added by mistake); return the
        result HTML and an update of the item picker: its choices, and its value
        ``liked`` (the items the visitor has picked) less the removed item, which
        Gradio would otherwise refuse at the next Recommend as not among the choices.

        Only items of :attr:`added` can be removed: any visitor may call this, and
        the catalogue's own items are the operator's (``hybrid-rec remove-items``),
        or one visitor could empty the catalogue for every other. The item is no
        longer recommended, offered in the picker, counted in the header or listed
        among a new item's nearest items; it stays in the model and
        :meth:`restore_item` undoes the removal. Like :meth:`add_item`, it is live
        for every visitor until the app restarts, kept across reloads of the
        model, and not saved to the model directory.
        """
        try:
            progress(0.3, desc="Removing the item")
            with self.lock.write():  # the check, the limit and the removal, atomically
                item = self._existing_item(item_id, "remove")
                if item not in self.added:
                    raise DataValidationError(
                        f"item {shown(item)} is in the catalogue, not added here: this app "
                        "only takes back items added here.",
                        source="remove item",
                        fix="the operator stops serving catalogue items with `hybrid-rec "
                        "remove-items FILE --model-dir DIR`.",
                    )
                if item in self.catalogue.removed():
                    raise DataValidationError(
                        f"item {shown(item)} is removed already.",
                        source="remove item",
                        fix="restore it to serve it again.",
                    )
                if len(self.removed) >= self.limits.max_removed:
                    raise DataValidationError(
                        f"this demo already holds {len(self.removed)} removed items, its limit.",
                        source="remove item",
                        fix="restore some, or restart the app to start afresh.",
                    )
                self.rec.remove_items([item])
                self.removed.append(item)
                page = render_removed(self.catalogue.title(item), item, restored=False)
                choices = self.catalogue.choices()
        except Exception as exc:
            return render_error(exc), gr.update()
        picked = [liked] if isinstance(liked, str) else list(liked or [])
        return page, gr.update(choices=choices, value=[v for v in picked if v != item])

    def restore_item(
        self,
        item_id: str | None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008
    ) -> tuple[str, dict[str, Any]]:
        """Serve again an item removed in this app (undo :meth:`remove_item`); return
        the result HTML and an update of the item picker. Items removed before the
        app loaded the model (``hybrid-rec remove-items``) are restored where they were
        removed, with ``remove-items --restore``."""
        try:
            progress(0.3, desc="Restoring the item")
            with self.lock.write():
                item = self._existing_item(item_id, "restore")
                if item not in self.catalogue.removed():
                    raise DataValidationError(
                        f"item {shown(item)} is not removed: it is served already.",
                        source="restore item",
                    )
                if item not in self.removed:
                    raise DataValidationError(
                        f"item {shown(item)} was removed before this app loaded the model, "
                        "not here.",
                        source="restore item",
                        fix="serve it again where it was removed: `hybrid-rec remove-items "
                        "FILE --model-dir DIR --restore`.",
                    )
                self.rec.restore_items([item])
                self.removed.remove(item)
                page = render_removed(self.catalogue.title(item), item, restored=True)
                choices = self.catalogue.choices()
        except Exception as exc:
            return render_error(exc), gr.update()
        return page, gr.update(choices=choices)

    def _existing_item(self, item_id: str | None, verb: str) -> str:
        """The typed id of an item the catalogue holds, or a readable error."""
        item = check_text(item_id, self.limits.max_id, "item id")
        if not item:
            raise DataValidationError(
                f"type the id of the item to {verb}.",
                source=f"{verb} item",
                fix="ids are shown beside titles on the cards and in the item picker.",
            )
        if item not in self.catalogue:
            raise DataValidationError(
                f"there is no item {shown(item)} in this catalogue.",
                source=f"{verb} item",
                fix="type the id as the cards and the item picker show it (case matters).",
            )
        return item

    def _check_not_added_before(self, frame: pd.DataFrame) -> None:
        """Refuse an item that repeats one added in this demo, id aside (a second click)."""
        if not self.added:
            return
        earlier = self.rec.items_[self.rec.items_[ITEM_COL].isin(self.added)]
        cols = [c for c in earlier.columns if c != ITEM_COL]  # a column not given is empty

        def key(row: pd.Series) -> tuple[str, ...]:
            cells = (row.get(c) for c in cols)
            return tuple("" if _blank(v) else str(v).strip().lower() for v in cells)

        new = key(frame.iloc[0])
        removed = self.catalogue.removed()
        for _, row in earlier.iterrows():
            if key(row) == new:
                item = str(row[ITEM_COL])
                gone = item in removed
                raise DataValidationError(
                    f"this item was already added, as item {item}"
                    + (", since removed." if gone else "."),
                    source="new item",
                    fix="change the title, description or attributes to add another item"
                    + (f"; or restore {item} under Remove an item." if gone else "."),
                )

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
        return render_catalogue(
            self.catalogue.composition(), self.catalogue.tail_max, added=len(self.added)
        )

    def insight(self) -> tuple[str, str, dict[str, Any], str]:
        """``(catalogue_html, quality_html, plot_update, results_markdown)``; the plot is
        hidden when there is none."""
        quality, plot, markdown = read_benchmarks(self.benchmarks_dir)
        with self.lock.read():
            catalogue = self.catalogue_html()
        return catalogue, quality, gr.update(value=plot, visible=plot is not None), markdown


_NEW_VALUE = re.compile(r"(?=.{1,32}$)[^\W_][\w&'.+-]*(?: [\w&'.+-]+){0,3}")
"""A new attribute value typed into the form: a short name, never a sentence (it is shown
to every visitor and quoted in explanations)."""


def _blank(value: object) -> bool:
    return value is None or (not isinstance(value, list | tuple) and bool(pd.isna(value)))


def _check_year(year: float | str | None) -> int | None:
    """A whole year from 1000 to ten years ahead (a number, or text that reads as one);
    blank means unknown."""
    blank = isinstance(year, str) and not year.strip()
    if year is None or blank or (isinstance(year, float) and math.isnan(year)):
        return None
    value = as_number(year)
    latest = datetime.date.today().year + 10
    if not math.isfinite(value) or value != int(value) or not 1000 <= value <= latest:
        raise DataValidationError(
            f"year {shown(year)} is not a whole year from 1000 to {latest}.",
            source="new item",
            column="year",
            fix="leave it blank if the year is unknown.",
        )
    return int(value)


def _chips(values: list[str], shown: int = 4) -> list[str]:
    """The first ``shown`` attribute values, and "+N" for the rest (not dropped unseen)."""
    if len(values) <= shown:
        return values
    return [*values[: shown - 1], f"+{len(values) - shown + 1}"]


def _removed_again(rec: HybridRecommender, removed: Sequence[str], taken: set[str]) -> list[str]:
    """Remove from a reloaded model the items removed in the app, as items added in the
    app are added to it again; return the ids still removed by the app. An id the new
    model lacks is forgotten, and so is one of ``taken`` (added here, but the new save
    holds an item of that id: the saved item is served, not the one removed here), and
    one the new model removed (or a sync unlisted) itself: that removal is the operator's,
    so a visitor's Restore must not undo it, and removing it again would turn a sync's
    unlisting into a removal by hand that a later sync never undoes."""
    if not removed:
        return []
    already = set(rec.removed_items)
    known = rec.item_ids_.lookup(list(removed)) >= 0
    again = [
        i
        for i, ok in zip(removed, known, strict=True)
        if ok and i not in taken and i not in already
    ]
    if again:
        rec.remove_items(again)
    if len(again) < len(removed):
        log.info(
            "%d item(s) removed here are not removed by the app in the reloaded model (gone "
            "from it, its own item of that id, or removed by the save itself)",
            len(removed) - len(again),
        )
    return again


def _encoder_name(rec: HybridRecommender) -> str | None:
    """The name of the encoder ``rec``'s vectors come from, or None if it cannot be told
    (then no broad-picks notice, never a failed start)."""
    try:
        name = rec.describe()["encoder"]
    except Exception as exc:
        log.warning("the model's encoder cannot be told (%s): no broad-picks notices", exc)
        return None
    return str(name) if name else None


def _saved_version(directory: Path | None) -> tuple[int, int, int] | None:
    """Which save ``directory`` holds now: a save swaps in a new directory (device,
    inode) and writes its manifest last (modification time). None without a model."""
    if directory is None:
        return None
    try:
        st, manifest = os.stat(directory), os.stat(directory / "manifest.json")
    except OSError:
        return None
    return st.st_dev, st.st_ino, manifest.st_mtime_ns


def _load_like(directory: Path, current: HybridRecommender) -> HybridRecommender:
    """Load ``directory``, reusing ``current``'s encoder (already in memory) when the
    new model was saved with the same one."""
    encoder = getattr(current, "_encoder", None)
    try:
        saved = json.loads((directory / "manifest.json").read_text()).get("encoder")
    except (OSError, ValueError, AttributeError):
        saved = None  # load() says what is wrong with it
    same = encoder is not None and saved == encoder.name
    return HybridRecommender.load(directory, encoder=encoder if same else None)
