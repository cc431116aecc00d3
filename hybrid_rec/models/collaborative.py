"""Collaborative embeddings learned from implicit feedback.

``CollaborativeEmbeddings`` is the item-side CF table: one learned vector per
item that has interactions. It grows when items are added (new rows start at
zero and carry no evidence until feedback arrives and is folded in). The
user-side collaborative signal is the user tower's attention over the items a
user interacted with, so users need no table of their own.

The loss is a (sampled) softmax over catalogue items with the event or rating
weight of each positive as its sample weight.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CollaborativeEmbeddings", "weighted_softmax_loss"]


class CollaborativeEmbeddings(nn.Module):
    """An item embedding table that can grow without losing trained rows."""

    def __init__(self, n_items: int, dim: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_items, dim) * 0.05)
        # (rows, position of each item among them) while learning_rows runs: a tuple,
        # so that the rows are no parameter of the module (nor in its state dict)
        self._learning: tuple[nn.Parameter, torch.Tensor] | None = None
        # the table's rows and spare zero rows after them, once it has grown
        self._room: torch.Tensor | None = None

    @property
    def n_items(self) -> int:
        return int(self.weight.shape[0])

    def forward(self, index: torch.Tensor) -> torch.Tensor:
        if self._learning is None:
            return F.embedding(index, self.weight)
        rows, position = self._learning
        at = position[index]
        base = F.embedding(index, self.weight.detach())
        return torch.where((at >= 0).unsqueeze(-1), rows[at.clamp(min=0)], base)

    @contextlib.contextmanager
    def learning_rows(self, items: torch.Tensor) -> Iterator[nn.Parameter]:
        """Only the rows of ``items`` learn, as a parameter of their own (an optimiser
        then updates those rows, not the whole table); written back to the table when
        the block ends without an error, left out of it otherwise."""
        items = torch.as_tensor(items, dtype=torch.long)
        rows = nn.Parameter(self.weight.detach()[items].clone())
        position = torch.full((self.n_items,), -1, dtype=torch.long)
        position[items] = torch.arange(len(items))
        self._learning = (rows, position)
        try:
            yield rows
            with torch.no_grad():
                self.weight[items] = rows.detach()
        finally:
            self._learning = None

    def grow(self, n_new: int) -> None:
        """Append ``n_new`` zero rows (new items: no behaviour yet).

        The table is a view of a larger zeroed block with room for a quarter more
        rows, as the item arrays (:mod:`hybrid_rec.data.arrays`): adding one item
        to a 200,000-row table copied all of it (30 ms of the add), now only when
        the room runs out.
        """
        if n_new <= 0:
            return
        n, dim = self.weight.shape
        room = self._room
        if (
            room is None
            or len(room) < n + n_new
            or room.data_ptr() != self.weight.data_ptr()  # the weight was replaced
        ):
            room = torch.zeros(n + n_new + max(n_new, n // 4), dim, dtype=self.weight.dtype)
            room[:n] = self.weight.detach()
            self._room = room
        # rows past the table were never written (no view reaches them): still zero
        self.weight = nn.Parameter(room[: n + n_new])


def weighted_softmax_loss(
    users: torch.Tensor,
    candidates: torch.Tensor,
    target_col: torch.Tensor,
    weights: torch.Tensor,
    temperature: float,
    accidental: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax cross-entropy of each user's target among the candidate items.

    Parameters
    ----------
    users
        (B, d) user vectors, L2-normalised.
    candidates
        (M, d) candidate item vectors, L2-normalised.
    target_col
        (B,) column of each row's positive in ``candidates``.
    weights
        (B,) sample weights (event type / rating).
    temperature
        Softmax temperature on cosine scores.
    accidental
        Optional (B, M) bool: other positives to remove from the negatives.
    """
    logits = users @ candidates.T / temperature
    if accidental is not None:
        logits = logits.masked_fill(accidental, float("-inf"))
    loss = F.cross_entropy(logits, target_col, reduction="none")
    return (loss * weights).sum() / weights.sum().clamp(min=1e-8)
