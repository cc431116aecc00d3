"""One recommender shared by threads: readers beside a thread that updates it."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from hybrid_rec import HybridRecommender
from hybrid_rec.data.datasets import Dataset
from hybrid_rec.errors import DataValidationError


def test_readers_beside_a_writer_see_whole_updates(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    """Before the lock, ~2% of reads raised IndexError / TypeError while add_items,
    remove_items, update_items and partial_fit ran in another thread (a removed-item
    mask longer than the index, a user-vector cache reset under a reader)."""
    rec = fresh()
    users = list(rec.user_ids_.external_ids[:200])
    known = [str(i) for i in clustered.items["item_id"][:250]]
    template = clustered.items.iloc[:1]
    rounds, readers = 40, 3
    errors: list[str] = []
    removed_at: dict[str, float] = {}
    late: list[tuple[str, str]] = []
    writing = threading.Event()
    writing.set()
    reads = [0] * readers

    def read(n: int) -> None:
        rng = np.random.default_rng(n)
        while writing.is_set():
            started = time.monotonic()
            try:
                kind = ("rec", "similar", "new")[reads[n] % 3]
                if kind == "rec":
                    out = rec.recommend([users[rng.integers(len(users))]], k=10)
                    served = out["item_id"]
                elif kind == "similar":
                    out = rec.similar_items([known[rng.integers(len(known))]], k=10)
                    served = out["similar_item_id"]
                else:
                    out = rec.recommend_for_new_user(
                        liked_items=[known[rng.integers(len(known))]], k=10
                    )
                    served = out["item_id"]
                assert len(out) == 10, out
                late.extend((kind, i) for i in served if removed_at.get(i, np.inf) < started)
                reads[n] += 1
            except Exception:
                errors.append(traceback.format_exc())

    threads = [threading.Thread(target=read, args=(n,)) for n in range(readers)]
    for t in threads:
        t.start()
    try:
        for r in range(rounds):
            rec.add_items(template.assign(item_id=f"new-{r}", title=f"Fresh item {r}"))
            rec.remove_items([known[r]])
            removed_at[known[r]] = time.monotonic()
            rec.update_items(pd.DataFrame({"item_id": [known[-1 - r]], "title": [f"New {r}"]}))
            rec.partial_fit(
                pd.DataFrame(
                    {
                        "user_id": [users[r], f"newcomer-{r}"],
                        "item_id": [known[100 + r]] * 2,
                        "event": ["click", "view"],
                        "timestamp": [1_700_000_000 + r] * 2,
                    }
                )
            )
    finally:
        writing.clear()
        for t in threads:
            t.join(60)
    assert not errors, f"{len(errors)} failed reads of {sum(reads)}; first:\n{errors[0]}"
    assert not late, late[:5]  # a removed item is never served by a later request
    assert min(reads) > 0
    assert rec.recommend([users[0]], k=10).shape == (10, 4)


def _feedback(rec: HybridRecommender) -> pd.DataFrame:
    users = list(rec.user_ids_.external_ids[:5])
    items = list(rec.item_ids_.external_ids[-5:])
    return pd.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "event": ["click"] * 5,
            "timestamp": [1_700_000_000] * 5,
        }
    )


def test_partial_fit_folds_the_same_feedback_in_the_same_way(
    fresh: Callable[[], HybridRecommender],
) -> None:
    """Two loads given the same feedback ended 0.04 apart: the content dropout drew
    from torch's global generator wherever the process had left it."""
    a, b = fresh(), fresh()
    torch.manual_seed(1)
    a.partial_fit(_feedback(a))
    state = torch.get_rng_state()
    torch.manual_seed(2)
    torch.rand(100)
    b.partial_fit(_feedback(b))
    np.testing.assert_array_equal(a.item_vectors_, b.item_vectors_)
    torch.manual_seed(1)
    assert torch.equal(state, torch.get_rng_state())  # the caller's generator given back


def test_updates_leave_the_process_threads_and_the_encoder_alone(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    """A service's partial_fit set torch to the model's thread count for the whole
    process, and a save built the sentence encoder (11 s) only to write its name."""
    rec = fresh()
    rec.config.model.threads = 1
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        rec.partial_fit(_feedback(rec))
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    loaded = HybridRecommender.load(rec.save(tmp_path / "m"))
    loaded.save(tmp_path / "again")
    assert loaded._encoder is None  # its name came from the manifest


def test_an_update_prepared_on_a_copy_leaves_the_served_model_whole(
    fresh: Callable[[], HybridRecommender], clustered: Dataset
) -> None:
    rec = fresh()
    user = str(rec.user_ids_.external_ids[0])
    before = rec.recommend([user], k=10)
    n_items, n_log = len(rec.item_ids_), len(rec._log)
    new = rec.copy()
    assert new.recommend([user], k=10).equals(before)
    new.add_items(clustered.items.iloc[:1].assign(item_id="fresh-1", title="Fresh"))
    new.partial_fit(_feedback(new))
    new.remove_items([str(before["item_id"].iloc[0])])
    assert (len(new.item_ids_), len(new._log)) == (n_items + 1, n_log + 5)
    assert (len(rec.item_ids_), len(rec._log), rec.index_.ntotal) == (n_items, n_log, n_items)
    assert rec.recommend([user], k=10).equals(before)
    assert str(before["item_id"].iloc[0]) not in set(new.recommend([user], k=10)["item_id"])
    assert new._encoder is rec._encoder  # shared, never copied


def test_a_quiet_minute_and_ordinary_requests_are_no_errors_and_little_noise(
    fresh: Callable[[], HybridRecommender], caplog: pytest.LogCaptureFixture
) -> None:
    """An empty feedback batch raised; every request whose filter matched nothing
    logged a WARNING; a form's empty field (None) silently matched nothing."""
    rec = fresh()
    log_rows = len(rec._log)
    assert rec.partial_fit(_feedback(rec).iloc[:0]) is rec and len(rec._log) == log_rows
    with pytest.raises(DataValidationError, match="user_id"):
        rec.partial_fit(pd.DataFrame({"customer": [], "item_id": []}))
    user = str(rec.user_ids_.external_ids[0])
    with caplog.at_level(logging.DEBUG, logger="hybrid_rec.recommender"):
        for _ in range(5):
            assert rec.recommend([user], k=5, filters={"category": "no such"}).empty
    warned = [r for r in caplog.records if "no item passes" in r.getMessage()]
    assert [r.levelno for r in warned] == [logging.WARNING] + [logging.DEBUG] * 4
    with pytest.raises(DataValidationError, match="is None"):
        rec.recommend([user], k=5, filters={"category": None})


def test_recent_popularity_follows_the_log(fresh: Callable[[], HybridRecommender]) -> None:
    """Counted once per state of the log (it was counted per anonymous request), and
    again once feedback grows it."""
    rec = fresh()
    rec.config.model.popular_days = 30
    first = rec._popularity()
    assert rec._popularity() is first  # cached
    rec.partial_fit(_feedback(rec).assign(timestamp=int(rec._log["t"].max()) + 60))
    again = rec._popularity()
    assert again is not first
    touched = rec.item_ids_.to_internal(list(_feedback(rec)["item_id"]), kind="item")
    np.testing.assert_array_equal(again[touched], first[touched] + 1)
