"""Padded per-user histories (most recent first), the user tower's input."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Histories", "build_histories"]

PAD = -1


@dataclass
class Histories:
    """Dense (n_users, max_len) views of each user's latest interactions.

    ``items`` holds internal item ids, most recent first, ``-1`` as padding.
    """

    items: np.ndarray
    events: np.ndarray
    times: np.ndarray
    ref_time: np.ndarray
    has_time: bool

    @property
    def n_users(self) -> int:
        return int(self.items.shape[0])

    @property
    def lengths(self) -> np.ndarray:
        return (self.items >= 0).sum(axis=1)


def build_histories(
    users: np.ndarray,
    items: np.ndarray,
    events: np.ndarray,
    times: np.ndarray | None,
    n_users: int,
    max_len: int,
) -> Histories:
    """Build padded histories from parallel arrays of internal ids.

    Without timestamps, row order stands for time (later rows are more recent).
    """
    n = len(users)
    has_time = times is not None
    t = np.asarray(times, dtype=np.int64) if times is not None else np.arange(n, dtype=np.int64)
    order = np.lexsort((-np.arange(n), -t, users))  # by user, newest first, ties: later row first
    u_sorted = users[order]
    starts = np.searchsorted(u_sorted, np.arange(n_users))
    rank = np.arange(n) - starts[u_sorted]
    keep = rank < max_len
    rows, cols, src = u_sorted[keep], rank[keep], order[keep]
    out_items = np.full((n_users, max_len), PAD, dtype=np.int64)
    out_events = np.zeros((n_users, max_len), dtype=np.int64)
    out_times = np.zeros((n_users, max_len), dtype=np.int64)
    out_items[rows, cols] = items[src]
    out_events[rows, cols] = events[src]
    out_times[rows, cols] = t[src]
    ref = np.zeros(n_users, dtype=np.int64)
    if n:
        np.maximum.at(ref, users, t)
    return Histories(out_items, out_events, out_times, ref, has_time)
