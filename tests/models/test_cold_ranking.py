"""Items without interactions: their own content-taste weight, tuned on the new items
the validation names, ranked among themselves."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import synthetic_new_items
from hybrid_rec.persistence import sha256_file


def _with_new_items(rec: HybridRecommender, n: int, seed: int = 5) -> np.ndarray:
    """Add ``n`` items without interactions; their internal ids."""
    new = synthetic_new_items(n, cluster=1, seed=seed, start_id=40_000)
    return np.asarray(rec.add_items(new))


def test_new_items_weigh_the_users_taste_by_their_own_weight(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    rec = fresh()
    rec.taste_weight_, rec.cold_taste_weight_ = 0.1, 0.1
    before = rec._fingerprint()
    rec.cold_taste_weight_ = 0.8
    assert rec._fingerprint() != before  # a resumed batch job sees the change
    rec._refresh_vectors()
    ids = _with_new_items(rec, 6)
    dim, taste_dim = rec.item_vectors_.shape[1], rec.taste_.dim
    rows = rec.index_.vectors
    taste = slice(dim, dim + taste_dim)
    np.testing.assert_allclose(rows[ids, taste], 0.8 * rec.item_taste_[ids], atol=1e-6)
    warm = np.flatnonzero(rec.counts_ > 0)
    np.testing.assert_allclose(rows[warm, taste], 0.1 * rec.item_taste_[warm], atol=1e-6)
    # the batch path (score_cold_items) builds the same rows for content it has never seen
    np.testing.assert_allclose(rec.item_index_vectors(rec.content_[ids]), rows[ids], atol=1e-5)
    # and score() adds exactly the cold weight times the taste match
    user = str(rec.user_ids_.external_ids[0])
    item = str(rec.item_ids_.external_ids[ids[0]])
    high = rec.score([user], [item])[0, 0]
    rec.cold_taste_weight_ = 0.0
    low = rec.score([user], [item])[0, 0]
    match = float(rec._user_taste()[0] @ rec.item_taste_[ids[0]])
    assert match != 0
    assert high - low == pytest.approx(0.8 * match, abs=1e-5)
    assert rec.describe()["cold_taste_weight"] == 0.0


def test_the_cold_taste_weight_survives_save_load_and_older_models_use_the_warm_one(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    rec = fresh()
    rec.taste_weight_, rec.cold_taste_weight_ = 0.2, 0.75
    rec._refresh_vectors()
    path = rec.save(tmp_path / "m")
    back = HybridRecommender.load(path, encoder=HashingEncoder(256))
    assert (back.taste_weight_, back.cold_taste_weight_) == (0.2, 0.75)
    # a model saved before the cold weight existed weighed every item's taste alike
    meta = json.loads((path / "meta.json").read_text())
    del meta["cold_taste_weight"]
    (path / "meta.json").write_text(json.dumps(meta))
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["files"]["meta.json"] = sha256_file(path / "meta.json")
    (path / "manifest.json").write_text(json.dumps(manifest))
    old = HybridRecommender.load(path, encoder=HashingEncoder(256))
    assert old.cold_taste_weight_ == 0.2


def _patched(
    rec: HybridRecommender,
    monkeypatch: pytest.MonkeyPatch,
    users: np.ndarray,
    tastes: np.ndarray | None = None,
) -> None:
    """Fix the user vectors (all along the first axis) and tastes the tuners read."""
    n_users, dim = len(rec.user_ids_), rec.item_vectors_.shape[1]
    vectors = np.zeros((n_users, dim), np.float32)
    vectors[:, 0] = 1.0
    monkeypatch.setattr(rec, "user_vectors", lambda: vectors)
    if tastes is None:
        tastes = np.zeros((n_users, rec.taste_.dim), np.float32)
    monkeypatch.setattr(rec, "_user_taste", lambda: tastes)
    rec.item_prior_ = np.zeros_like(rec.item_prior_)


def test_the_cold_taste_weight_is_chosen_on_new_items_ranked_among_themselves(
    fresh: Callable[[], HybridRecommender], monkeypatch: pytest.MonkeyPatch
) -> None:
    rec = fresh()
    rec.config.eval.k = 5
    cold = _with_new_items(rec, 30)
    users = np.arange(40)
    # each user's target is the new item their content taste points at; the vectors'
    # scores are noise, so only a taste weight well above 0 ranks it in the top 5
    target = cold[users % len(cold)]
    tastes = np.zeros((len(rec.user_ids_), rec.taste_.dim), np.float32)
    tastes[users, np.arange(len(users)) % len(cold)] = 1.0
    rec.item_taste_[cold] = np.eye(len(cold), rec.taste_.dim, dtype=np.float32)
    _patched(rec, monkeypatch, users, tastes)
    rec.item_vectors_[cold] = 0.0
    rec.item_vectors_[cold, 0] = np.random.default_rng(0).uniform(-0.3, 0.3, len(cold))
    validation = pd.DataFrame(
        {
            "user_id": rec.user_ids_.external_ids[users],
            "item_id": rec.item_ids_.external_ids[target],
        }
    )
    weight, prior = rec._tune_cold_ranking(validation)
    assert weight >= 0.5 and prior == 0.0
    # with no taste to go on, the simplest setting: no taste weight
    _patched(rec, monkeypatch, users)
    assert rec._tune_cold_ranking(validation) == (0.0, 0.0)
    # a validation naming fewer than two cold items tunes nothing
    one_item = validation[validation["item_id"] == validation["item_id"][0]]
    assert rec._tune_cold_ranking(one_item) is None
