"""The user side: attention over the user's history items.

A user vector is a learned query (conditioned on the time-of-day and weekday
context) attending over the user's recent items, each token carrying the
item's fused vector plus embeddings of its event type, its recency (log-scale
time since the interaction) and its position from the most recent. There is no
per-user parameter, so a brand-new user with two picked items, or a taste
written in words, is served by the same network.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

__all__ = [
    "NO_CONTEXT",
    "N_RECENCY_BUCKETS",
    "UserAttention",
    "context_features",
    "recency_bucket",
]

N_RECENCY_BUCKETS = 24
"""log2 buckets of hours since an interaction; bucket 0 also means 'unknown'."""
NO_CONTEXT = (24, 7)
"""Indices used for hour / weekday when there are no timestamps."""


def recency_bucket(ref_time: np.ndarray, times: np.ndarray, known: bool) -> np.ndarray:
    """Bucket ``ref_time - times`` (seconds) as ``1 + floor(log2(1 + hours))``; 0 if unknown."""
    if not known:
        return np.zeros(np.shape(times), dtype=np.int64)
    hours = np.maximum(ref_time - times, 0) / 3600.0
    bucket = 1 + np.floor(np.log2(1.0 + hours))
    return np.clip(bucket, 1, N_RECENCY_BUCKETS - 1).astype(np.int64)


def context_features(ref_time: np.ndarray, known: bool) -> tuple[np.ndarray, np.ndarray]:
    """Hour of day (0-23) and weekday (0=Monday) of unix times; 'no context' if unknown."""
    ref = np.asarray(ref_time, dtype=np.int64)
    if not known:
        return np.full(ref.shape, NO_CONTEXT[0]), np.full(ref.shape, NO_CONTEXT[1])
    hour = (ref // 3600) % 24
    weekday = ((ref // 86400) + 3) % 7  # 1970-01-01 was a Thursday
    return hour.astype(np.int64), weekday.astype(np.int64)


class UserAttention(nn.Module):
    """Multi-head attention pooling of history tokens with a context query.

    Parameters
    ----------
    dim
        The shared vector dimension.
    n_events
        Size of the event vocabulary (index 0 = padding / unknown).
    max_len
        Maximum history length (positions).
    heads
        Attention heads.
    """

    def __init__(self, dim: int, n_events: int, max_len: int, heads: int = 2) -> None:
        super().__init__()
        self.dim = dim
        self.max_len = max_len
        self.event = nn.Embedding(n_events, dim)
        self.recency = nn.Embedding(N_RECENCY_BUCKETS, dim)
        self.position = nn.Embedding(max_len, dim)
        self.hour = nn.Embedding(NO_CONTEXT[0] + 1, dim)
        self.weekday = nn.Embedding(NO_CONTEXT[1] + 1, dim)
        self.base_query = nn.Parameter(torch.zeros(dim))
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.out = nn.Linear(dim, dim)
        for emb in (self.event, self.recency, self.position, self.hour, self.weekday):
            nn.init.normal_(emb.weight, std=0.02)
        nn.init.normal_(self.base_query, std=0.1)

    def forward(
        self,
        items: torch.Tensor,
        valid: torch.Tensor,
        events: torch.Tensor,
        recency: torch.Tensor,
        hour: torch.Tensor,
        weekday: torch.Tensor,
        need_weights: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pool a batch of histories.

        Parameters
        ----------
        items
            (B, L, dim) fused vectors of the history items (most recent first).
        valid
            (B, L) bool, False for padding (each row needs one True).
        events, recency
            (B, L) event ids and recency buckets.
        hour, weekday
            (B,) context indices.

        Returns
        -------
        users, weights
            (B, dim) user vectors and (B, L) attention weights (0 on padding), or
            None for the weights when ``need_weights`` is False (faster, for training).
        """
        length = items.shape[1]
        pos = torch.arange(length, device=items.device).clamp(max=self.max_len - 1)
        tokens = items + self.event(events) + self.recency(recency) + self.position(pos)
        query = (self.base_query + self.hour(hour) + self.weekday(weekday)).unsqueeze(1)
        pooled, weights = self.attn(
            query, tokens, tokens, key_padding_mask=~valid, need_weights=need_weights
        )
        pooled = pooled.squeeze(1)
        # residual to the mean of the item vectors keeps the user in the item space
        mean = (items * valid.unsqueeze(-1)).sum(1) / valid.sum(1, keepdim=True).clamp(min=1)
        return mean + self.out(pooled), (weights.squeeze(1) if weights is not None else None)
