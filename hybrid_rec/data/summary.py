"""Summaries of interaction and item frames (what `hybrid-rec data check` prints)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec.data.columns import Columns

__all__ = ["InteractionSummary", "ItemSummary", "summarize_interactions", "summarize_items"]

C = Columns


@dataclass(frozen=True)
class InteractionSummary:
    """Counts, sparsity and long-tail share of an interaction frame."""

    n_interactions: int
    n_users: int
    n_items: int
    sparsity: float
    long_tail_threshold: int
    long_tail_item_share: float
    long_tail_interaction_share: float
    median_user_history: float
    events: dict[str, int]
    first_timestamp: str | None
    last_timestamp: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [
            f"interactions      {self.n_interactions:,}",
            f"users             {self.n_users:,}",
            f"items             {self.n_items:,}",
            f"sparsity          {self.sparsity:.4%}",
            f"median history    {self.median_user_history:g} interactions per user",
            f"long tail         {self.long_tail_item_share:.1%} of items have "
            f"< {self.long_tail_threshold} interactions "
            f"({self.long_tail_interaction_share:.1%} of interactions)",
        ]
        if self.events:
            out.append(
                "events            " + ", ".join(f"{k} {v:,}" for k, v in self.events.items())
            )
        if self.first_timestamp:
            out.append(f"time span         {self.first_timestamp} .. {self.last_timestamp}")
        return out


@dataclass(frozen=True)
class ItemSummary:
    """Counts and column fill rates of an item catalogue."""

    n_items: int
    columns: dict[str, float]
    """Share of non-empty values per column."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def lines(self) -> list[str]:
        out = [f"items             {self.n_items:,}", "columns (share filled):"]
        out += [f"  {name:<16}{share:.1%}" for name, share in self.columns.items()]
        return out


def summarize_interactions(frame: pd.DataFrame, long_tail_threshold: int = 5) -> InteractionSummary:
    """Summarise a validated interaction frame."""
    n_users = int(frame[C.user].nunique())
    counts = frame[C.item].value_counts()
    n_items = len(counts)
    tail = counts < long_tail_threshold
    events = (
        {str(k): int(v) for k, v in frame[C.event].value_counts().items()}
        if C.event in frame.columns
        else {}
    )
    first = last = None
    if C.timestamp in frame.columns:
        ts = frame[C.timestamp].to_numpy()
        first = pd.Timestamp(int(ts.min()), unit="s").isoformat()
        last = pd.Timestamp(int(ts.max()), unit="s").isoformat()
    return InteractionSummary(
        n_interactions=len(frame),
        n_users=n_users,
        n_items=n_items,
        sparsity=1.0 - len(frame) / max(1, n_users * n_items),
        long_tail_threshold=long_tail_threshold,
        long_tail_item_share=float(tail.mean()) if n_items else 0.0,
        long_tail_interaction_share=float(counts[tail].sum() / max(1, len(frame))),
        median_user_history=float(np.median(frame.groupby(C.user).size().to_numpy())),
        events=events,
        first_timestamp=first,
        last_timestamp=last,
    )


def summarize_items(frame: pd.DataFrame) -> ItemSummary:
    """Summarise a validated item catalogue."""
    fill: dict[str, float] = {}
    for col in frame.columns:
        if col == C.item:
            continue
        values = frame[col]
        filled = values.notna() & (values.astype(str).str.strip() != "")
        fill[str(col)] = float(filled.mean())
    return ItemSummary(n_items=len(frame), columns=fill)
