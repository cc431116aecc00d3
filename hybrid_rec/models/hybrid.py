"""The hybrid network: CF table + attention fusion (item tower) + user attention (user tower)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hybrid_rec.config import ModelConfig
from hybrid_rec.models.collaborative import CollaborativeEmbeddings
from hybrid_rec.models.fusion import AttentionFusion
from hybrid_rec.models.history import Histories
from hybrid_rec.models.user import UserAttention, context_features, recency_bucket

__all__ = ["HybridModel", "UserBatch"]


class UserBatch:
    """Tensors describing a batch of user histories (internal item ids, -1 = pad)."""

    def __init__(
        self,
        items: np.ndarray,
        events: np.ndarray,
        times: np.ndarray,
        ref_time: np.ndarray,
        has_time: bool,
        users: np.ndarray | None = None,
    ) -> None:
        self.items = torch.as_tensor(items, dtype=torch.long)
        n = self.items.shape[0]
        self.users = torch.as_tensor(
            users if users is not None else np.full(n, -1), dtype=torch.long
        )
        self.valid = self.items >= 0
        self.events = torch.as_tensor(events, dtype=torch.long)
        self.recency = torch.as_tensor(
            recency_bucket(np.asarray(ref_time)[:, None], np.asarray(times), has_time)
        )
        hour, weekday = context_features(np.asarray(ref_time), has_time)
        self.hour = torch.as_tensor(hour)
        self.weekday = torch.as_tensor(weekday)

    @classmethod
    def from_histories(cls, hist: Histories, users: np.ndarray) -> UserBatch:
        return cls(
            hist.items[users],
            hist.events[users],
            hist.times[users],
            hist.ref_time[users],
            hist.has_time,
            users,
        )


class HybridModel(nn.Module):
    """Item tower (CF + content fused by attention) and user tower (history attention).

    Parameters
    ----------
    content_dim
        Dimension of the content vectors.
    n_items
        Rows of the CF table (grows with :meth:`grow`).
    n_events
        Size of the event vocabulary.
    config
        Model settings.
    """

    def __init__(
        self, content_dim: int, n_items: int, n_events: int, config: ModelConfig, n_users: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        self.cf = CollaborativeEmbeddings(n_items, config.dim)
        # per-user residual vectors (zero for users who arrive after training)
        self.user_emb = CollaborativeEmbeddings(n_users if config.user_embedding else 0, config.dim)
        nn.init.zeros_(self.user_emb.weight)
        self.fusion = AttentionFusion(
            content_dim,
            config.dim,
            use_content=config.use_content,
            use_cf=config.use_cf,
            content_hidden=config.content_hidden,
            content_dropout=config.content_dropout,
        )
        self.user = UserAttention(config.dim, n_events, config.history_len)

    def grow(self, n_new: int) -> None:
        """Make room for ``n_new`` new items in the CF table."""
        self.cf.grow(n_new)

    def user_residual(self, users: torch.Tensor) -> torch.Tensor:
        """The learned per-user vectors (zeros for unknown users, -1)."""
        n = self.user_emb.n_items
        if n == 0:
            return torch.zeros(len(users), self.config.dim)
        known = (users >= 0) & (users < n)
        vecs = self.user_emb(users.clamp(min=0, max=n - 1))
        return vecs * known.unsqueeze(-1)

    def items_forward(
        self,
        content: torch.Tensor,
        index: torch.Tensor,
        counts: torch.Tensor,
        has_cf: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Fused, L2-normalised vectors and fusion weights for items ``index``."""
        cf = self.cf(index.clamp(max=self.cf.n_items - 1))
        fused, weights = self.fusion(content, cf, counts, has_cf)
        return F.normalize(fused, dim=-1), weights

    def users_forward(
        self, item_vectors: torch.Tensor, batch: UserBatch, *, need_weights: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """User vectors from the fused vectors of their history items.

        ``item_vectors`` is (B, L, dim), aligned with ``batch.items``.
        """
        users, weights = self.user(
            item_vectors * batch.valid.unsqueeze(-1),
            batch.valid,
            batch.events,
            batch.recency,
            batch.hour,
            batch.weekday,
            need_weights=need_weights,
        )
        return F.normalize(users + self.user_residual(batch.users), dim=-1), weights

    # ------------------------------------------------------------------ inference

    @torch.no_grad()
    def encode_items(
        self,
        content: np.ndarray,
        counts: np.ndarray,
        *,
        ids: np.ndarray | None = None,
        batch_size: int = 65536,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fused vectors and fusion weights for every row of ``content``.

        ``ids`` are the catalogue positions the rows belong to (their CF rows);
        None means ``0 .. len(content) - 1``, the whole catalogue. Items beyond
        the CF table (new ones) and items with count 0 use the same network
        with ``has_cf = False``.
        """
        if self.training:
            self.eval()
        vecs, weights = [], []
        n_cf = self.cf.n_items
        positions = np.arange(len(content)) if ids is None else np.asarray(ids, dtype=np.int64)
        # no rows still run the network once, on an empty batch: (0, dim) and (0, 2) out
        for start, stop in list(_chunks(len(content), batch_size)) or [(0, 0)]:
            idx = torch.as_tensor(positions[start:stop], dtype=torch.long)
            cnt = torch.as_tensor(counts[start:stop], dtype=torch.long)
            has_cf = (cnt > 0) & (idx < n_cf)
            v, w = self.items_forward(torch.as_tensor(content[start:stop]), idx, cnt, has_cf)
            vecs.append(v.numpy())
            weights.append(w.numpy())
        return (np.concatenate(vecs).astype(np.float32), np.concatenate(weights).astype(np.float32))

    @torch.no_grad()
    def encode_users(
        self, item_vectors: np.ndarray, batch: UserBatch
    ) -> tuple[np.ndarray, np.ndarray]:
        """User vectors for a batch of histories given the fused vectors they index.

        ``batch.items`` index rows of ``item_vectors`` (a caller may append
        pseudo-items, such as a free-text taste, as extra rows).
        """
        if self.training:
            self.eval()
        table = torch.as_tensor(item_vectors)
        hist = table[batch.items.clamp(min=0)]
        users, weights = self.users_forward(hist, batch)
        assert weights is not None
        return users.numpy().astype(np.float32), weights.numpy().astype(np.float32)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)
