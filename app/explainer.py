"""Explanations for the app: the library's ``explain`` with the app's own template behind it.

The library picks its backend from ``rec.config.explain``; when it raises (the
model file is missing, say) the app writes a sentence of its own from numbers
the model computed (``contributions``, ``item_info``) and says so on the page.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.catalogue import ITEM_COL, Catalogue, content_words, stem
from hybrid_rec import HybridRecError, HybridRecommender

__all__ = ["TEMPLATE", "Explainer", "ExplanationView"]

log = logging.getLogger(__name__)

TEMPLATE = "template"
"""The library's template backend (and the tag of the app's own fallback)."""


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
        matched = sorted(w for w in content_words(taste) if stem(w) in item_words)[:3]
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
            prior = float(info.get("content_prior", 0.0))
            side = "more" if prior >= 0 else "less"
            borrowed = float(info.get("neighbour_share", 0.0))
            near = (
                f", {borrowed:.0%} of its vector borrowed from similar items people know"
                if borrowed > 0
                else ""
            )
            return (
                f"No interactions yet: its content places it ({content:.0%} of the fusion "
                f"weight is on content{near}) and predicts {side} attention than a typical "
                f"item ({prior:+.1f} sd)."
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
