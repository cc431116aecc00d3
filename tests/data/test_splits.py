from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.config import SplitConfig
from hybrid_rec.data.splits import cold_start_split, temporal_split
from hybrid_rec.errors import DataValidationError


def _frame(
    n_users: int = 60, n_items: int = 100, per_user: int = 15, seed: int = 0
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=per_user, replace=False):
            rows.append((f"u{u}", f"i{i}", int(rng.integers(1_000, 2_000_000))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def test_cold_items_leave_training_entirely() -> None:
    frame = _frame()
    split = cold_start_split(frame, SplitConfig(seed=1))
    cold = set(split.cold_items)
    assert len(cold) == round(0.2 * frame["item_id"].nunique())
    assert not cold & set(split.train["item_id"])
    assert set(split.val_cold["item_id"]) <= set(split.val_cold_items)
    assert set(split.test_cold["item_id"]) <= set(split.test_cold_items)
    assert not set(split.val_cold_items) & set(split.test_cold_items)
    assert abs(len(split.val_cold_items) - len(split.test_cold_items)) <= 1
    # every interaction lands in exactly one part
    parts = [split.train, split.val_warm, split.test_warm, split.val_cold, split.test_cold]
    assert sum(len(p) for p in parts) <= len(frame)
    assert len(split.val_cold) + len(split.test_cold) == frame["item_id"].isin(cold).sum()


def test_warm_test_is_a_share_of_each_users_warm_history() -> None:
    frame = _frame()
    split = cold_start_split(frame, SplitConfig(warm_test_share=0.2, warm_val_share=0.1))
    assert set(split.test_warm["item_id"]) <= set(split.train["item_id"])
    assert set(split.test_warm["item_id"]).isdisjoint(split.cold_items)
    share = len(split.test_warm) / (len(split.train) + len(split.test_warm) + len(split.val_warm))
    assert 0.15 < share < 0.25
    train_pairs = set(zip(split.train["user_id"], split.train["item_id"], strict=True))
    test_pairs = set(zip(split.test_warm["user_id"], split.test_warm["item_id"], strict=True))
    assert not train_pairs & test_pairs


def test_every_row_of_a_pair_lands_in_one_part() -> None:
    """A bookshop log has a view, a cart and a purchase of one book: split by rows,
    the view trained and the purchase was held out, then dropped as already seen,
    so most warm test pairs never counted."""
    base = _frame(seed=5)
    events = pd.concat(
        [base.assign(event="view"), base.assign(event="purchase", timestamp=base["timestamp"] + 9)]
    ).sort_values("timestamp", kind="stable")
    split = cold_start_split(events.reset_index(drop=True), SplitConfig(seed=2))

    def pairs(part: pd.DataFrame) -> set[tuple[str, str]]:
        return set(zip(part["user_id"], part["item_id"], strict=True))

    train = pairs(split.train)
    held = pairs(split.test_warm) | pairs(split.val_warm)
    assert held and not train & held
    for part in (split.train, split.test_warm, split.val_warm):
        assert (part.groupby(["user_id", "item_id"]).size() == 2).all()  # both rows together
    # the share is of each user's pairs, as it was of rows with one row per pair
    one_row = cold_start_split(base, SplitConfig(seed=2))
    assert len(split.test_warm) == 2 * len(one_row.test_warm)


def test_seeded_and_reproducible() -> None:
    frame = _frame()
    a = cold_start_split(frame, SplitConfig(seed=3))
    b = cold_start_split(frame, SplitConfig(seed=3))
    c = cold_start_split(frame, SplitConfig(seed=4))
    assert a.test_cold_items.tolist() == b.test_cold_items.tolist()
    pd.testing.assert_frame_equal(a.test_warm, b.test_warm)
    assert a.test_cold_items.tolist() != c.test_cold_items.tolist()


def test_too_few_items() -> None:
    with pytest.raises(DataValidationError, match="cold"):
        cold_start_split(pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"]}))


def test_temporal_split_global_and_per_user() -> None:
    frame = _frame()
    split = temporal_split(frame, test_share=0.2)
    assert split.train["timestamp"].max() <= split.cutoff < split.test["timestamp"].min()
    per_user = temporal_split(frame, test_share=0.2, by="user")
    last_train = per_user.train.groupby("user_id")["timestamp"].max()
    first_test = per_user.test.groupby("user_id")["timestamp"].min()
    assert (last_train.loc[first_test.index] <= first_test).all()
    assert per_user.test.groupby("user_id").size().min() >= 1
    with pytest.raises(DataValidationError, match="timestamp"):
        temporal_split(frame.drop(columns="timestamp"))


def test_each_users_warm_shares_are_exact() -> None:
    """0.2 + 0.1 is 0.30000000000000004 in floating point: a user with 10 warm
    interactions got 2 test, 2 validation and 6 training ones instead of 2, 1 and 7."""
    frame = _frame(n_users=60, n_items=50, per_user=20)  # every item well trained
    split = cold_start_split(frame, SplitConfig(cold_item_share=0.04, seed=2))
    n_warm = frame[~frame["item_id"].isin(split.cold_items)].groupby("user_id").size()
    parts = {
        name: part.groupby("user_id").size().reindex(n_warm.index, fill_value=0)
        for name, part in (("test", split.test_warm), ("val", split.val_warm))
    }
    kept = split.train.groupby("user_id").size().reindex(n_warm.index, fill_value=0)
    whole = (kept + parts["test"] + parts["val"]) == n_warm  # nothing dropped as untrained
    exact = np.ceil(np.round(n_warm * 0.2, 9)), np.ceil(np.round(n_warm * 0.3, 9))
    assert whole.sum() >= 40 and (n_warm[whole] % 10 == 0).sum() >= 5
    assert (parts["test"][whole] == exact[0][whole]).all()
    assert (parts["val"][whole] == (exact[1] - exact[0])[whole]).all()
