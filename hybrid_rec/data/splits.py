"""Evaluation splits.

``cold_start_split`` follows the item cold-start protocol of the literature
(ColdRec, GAR, Heater): a seeded share of items becomes *cold* — every one of
their interactions leaves training — and those items are halved into a
validation and a test group. Among the remaining *warm* interactions a share
of each user's (user, item) pairs, every row of a pair together, is held out
for warm validation and warm test.

``temporal_split`` holds out the last interactions by time (globally, or per
user), for the "what happens next" view.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from hybrid_rec.config import SplitConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.idmap import ids_in
from hybrid_rec.errors import DataValidationError

__all__ = ["ColdStartSplit", "TemporalSplit", "cold_start_split", "temporal_split"]

log = logging.getLogger(__name__)
C = Columns


@dataclass
class ColdStartSplit:
    """The frames of a cold-start split. Item sets are disjoint where noted."""

    train: pd.DataFrame
    val_warm: pd.DataFrame
    test_warm: pd.DataFrame
    val_cold: pd.DataFrame
    test_cold: pd.DataFrame
    warm_items: np.ndarray
    """Items with at least one training interaction."""
    val_cold_items: np.ndarray
    test_cold_items: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def cold_items(self) -> np.ndarray:
        """All cold items (validation and test)."""
        return np.concatenate([self.val_cold_items, self.test_cold_items])


@dataclass
class TemporalSplit:
    """Train on the past, test on what came after."""

    train: pd.DataFrame
    test: pd.DataFrame
    cutoff: int | None
    info: dict[str, Any] = field(default_factory=dict)


def _check(interactions: pd.DataFrame) -> None:
    missing = [c for c in C.interaction_required if c not in interactions.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {missing}.",
            source="interactions",
            fix="validate the frame with validate_interactions first.",
        )
    if interactions.empty:
        raise DataValidationError("there are no interactions to split.", source="interactions")


def cold_start_split(
    interactions: pd.DataFrame, config: SplitConfig | None = None
) -> ColdStartSplit:
    """Split interactions for item cold-start evaluation.

    Parameters
    ----------
    interactions
        A validated interaction frame.
    config
        Shares and seed; the defaults are 20% cold items, and 20% / 10% of each
        user's warm (user, item) pairs, with all their rows, for warm test / validation.
    """
    cfg = config or SplitConfig()
    _check(interactions)
    rng = np.random.default_rng(cfg.seed)
    frame = interactions.reset_index(drop=True)
    items = np.sort(frame[C.item].unique().astype(str))
    n_cold = round(cfg.cold_item_share * len(items))
    if n_cold < 2 or n_cold >= len(items):
        raise DataValidationError(
            f"cannot make {cfg.cold_item_share:.0%} of {len(items)} items cold.",
            source="interactions",
            fix="use more items or another cold_item_share.",
        )
    cold = rng.permutation(items)[:n_cold]
    half = n_cold // 2
    val_cold_items, test_cold_items = np.sort(cold[:half]), np.sort(cold[half:])

    is_val_cold = ids_in(frame[C.item], val_cold_items)
    is_test_cold = ids_in(frame[C.item], test_cold_items)
    warm = frame[~(is_val_cold | is_test_cold)]

    # Per user: a random share of warm (user, item) pairs to test, then to validation,
    # with every row of a pair: a log of views, carts and purchases put the view in
    # training and the purchase in test, where it was dropped as already seen. A log
    # with one row per pair (ratings) draws exactly as the rows did.
    pair = warm.groupby([C.user, C.item], sort=False).ngroup().to_numpy()
    first = np.unique(pair, return_index=True)[1]  # each pair's first row, pair order
    pair_user = warm[C.user].to_numpy()[first]
    u = rng.random(len(first))
    rank = pd.Series(u).groupby(pair_user).rank(method="first").to_numpy()
    size = pd.Series(pair_user).groupby(pair_user).transform("size").to_numpy()
    pos = ((rank - 1) / size)[pair]  # in [0, 1), per row
    size = size[pair]
    is_test = pos < cfg.warm_test_share
    # rounded: 0.2 + 0.1 is 0.30000000000000004 in floating point, which gave every user
    # with 10, 20, 30 ... warm interactions one more validation interaction than its share
    val_end = round(cfg.warm_test_share + cfg.warm_val_share, 12)
    is_val = (pos >= cfg.warm_test_share) & (pos < val_end)
    # users with a single warm interaction keep it for training
    single = size < 2
    is_test &= ~single
    is_val &= ~single
    train = warm[~(is_test | is_val)]
    train_items = pd.Index(train[C.item].unique())

    def _only_trained(part: pd.DataFrame, name: str) -> pd.DataFrame:
        keep = ids_in(part[C.item], train_items)
        if (~keep).any():
            log.info(
                "%s: %d interaction(s) of items unseen in training moved out.",
                name,
                int((~keep).sum()),
            )
        return part[keep]

    test_warm = _only_trained(warm[is_test], "test_warm")
    val_warm = _only_trained(warm[is_val], "val_warm")
    split = ColdStartSplit(
        train=train.reset_index(drop=True),
        val_warm=val_warm.reset_index(drop=True),
        test_warm=test_warm.reset_index(drop=True),
        val_cold=frame[is_val_cold].reset_index(drop=True),
        test_cold=frame[is_test_cold].reset_index(drop=True),
        warm_items=np.sort(train_items.to_numpy().astype(str)),
        val_cold_items=val_cold_items,
        test_cold_items=test_cold_items,
    )
    split.info = {
        "seed": cfg.seed,
        "n_items": len(items),
        "n_warm_items": len(split.warm_items),
        "n_cold_items": n_cold,
        **{
            f"n_{k}": len(getattr(split, k))
            for k in ("train", "val_warm", "test_warm", "val_cold", "test_cold")
        },
    }
    return split


def temporal_split(
    interactions: pd.DataFrame,
    *,
    test_share: float = 0.2,
    by: Literal["global", "user"] = "global",
) -> TemporalSplit:
    """Hold out the most recent interactions.

    ``by="global"`` cuts at the time quantile ``1 - test_share`` (everything
    after the cut is test); ``by="user"`` holds out each user's last
    ``test_share`` of interactions (at least one, for users with two or more).
    """
    _check(interactions)
    if C.timestamp not in interactions.columns:
        raise DataValidationError(
            "a temporal split needs a timestamp column.",
            source="interactions",
            column=C.timestamp,
            fix="add timestamps or use cold_start_split.",
        )
    if not 0 < test_share < 1:
        raise DataValidationError(f"test_share must be in (0, 1), got {test_share}.")
    frame = interactions.sort_values([C.timestamp], kind="stable").reset_index(drop=True)
    if by == "global":
        cutoff = int(np.quantile(frame[C.timestamp].to_numpy(), 1 - test_share))
        is_test = frame[C.timestamp].to_numpy() > cutoff
        return TemporalSplit(
            frame[~is_test].reset_index(drop=True),
            frame[is_test].reset_index(drop=True),
            cutoff,
            {"by": by, "test_share": test_share},
        )
    order = frame.groupby(C.user).cumcount(ascending=False).to_numpy()  # 0 = latest
    size = frame.groupby(C.user)[C.item].transform("size").to_numpy()
    n_test = np.where(size >= 2, np.maximum(1, np.floor(size * test_share)), 0)
    is_test = order < n_test
    return TemporalSplit(
        frame[~is_test].reset_index(drop=True),
        frame[is_test].reset_index(drop=True),
        None,
        {"by": by, "test_share": test_share},
    )
