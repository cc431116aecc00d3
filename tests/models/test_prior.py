"""The content prior: predicted popularity of items from their content vectors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic_new_items
from hybrid_rec.models.prior import ContentPrior


def _catalogue(n: int = 400, dim: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Content vectors and counts whose log depends linearly on one content direction."""
    rng = np.random.default_rng(seed)
    content = rng.normal(size=(n, dim)).astype(np.float32) + 5.0
    direction = rng.normal(size=dim)
    signal = (content - 5.0) @ direction
    counts = np.round(np.expm1(2.0 + 0.5 * signal / signal.std() + rng.normal(0, 0.1, n)))
    return content, np.maximum(counts, 1).astype(np.int64)


def test_prior_recovers_popularity_from_content_on_held_out_items() -> None:
    content, counts = _catalogue()
    train = counts.copy()
    train[300:] = 0  # the last 100 items are cold: the prior never sees their counts
    prior = ContentPrior.fit(content, train)
    held_out = np.corrcoef(prior.score(content[300:]), np.log1p(counts[300:]))[0, 1]
    assert held_out > 0.9
    warm = prior.score(content[:300])
    assert abs(warm.mean()) < 1e-3 and warm.std() == pytest.approx(1.0, rel=1e-3)


def test_cold_items_do_not_change_the_fit() -> None:
    content, counts = _catalogue()
    counts[300:] = 0
    a = ContentPrior.fit(content, counts)
    moved = content.copy()
    moved[300:] += 100.0  # wild content on items without interactions
    b = ContentPrior.fit(moved, counts)
    np.testing.assert_allclose(a.coef, b.coef, rtol=1e-5)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-5)


@pytest.mark.parametrize("case", ["few warm items", "equal counts", "no items"])
def test_no_evidence_gives_the_zero_prior(case: str) -> None:
    content, counts = _catalogue()
    if case == "few warm items":
        counts[10:] = 0
    elif case == "equal counts":
        counts[:] = 7
    else:
        content, counts = content[:0], counts[:0]
    prior = ContentPrior.fit(content, counts)
    assert not prior.coef.any()
    assert not prior.score(content).any()


def test_cold_offsets_carry_the_prior_and_survive_save_load(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    rec = fresh()
    before = rec._fingerprint()
    rec.prior_weight_ = 0.25
    assert rec._fingerprint() != before  # a resumed batch job sees the change
    rec._refresh_vectors()
    new = synthetic_new_items(5, cluster=1, seed=4, start_id=30_000)
    ids = rec.add_items(new)
    rows = rec.index_.vectors
    want = rec.cold_bias_ + 0.25 * rec.prior_.score(rec.content_[ids])
    np.testing.assert_allclose(rows[ids, -1], want, atol=1e-6)
    assert rec.prior_.score(rec.content_[ids]).std() > 0  # the items really differ
    warm = np.flatnonzero(rec.counts_ > 0)
    assert not rows[warm, -1].any()  # warm items keep the popularity their interactions taught
    # the batch path builds the same rows for content it has never seen
    np.testing.assert_allclose(rec.item_index_vectors(rec.content_[ids]), rows[ids], atol=1e-5)
    info = rec.item_info(str(new["item_id"].iloc[0]))
    assert info["score_offset"] == pytest.approx(float(want[0]), abs=1e-6)
    assert info["content_prior"] == pytest.approx(float(rec.item_prior_[ids[0]]), abs=1e-6)
    rec.save(tmp_path / "m")
    loaded = HybridRecommender.load(tmp_path / "m", encoder=HashingEncoder(256))
    assert loaded.prior_weight_ == 0.25
    np.testing.assert_allclose(loaded.index_.vectors[ids], rows[ids], atol=1e-6)


def test_a_model_without_content_has_no_content_prior(
    clustered: Dataset, small_config: Callable[..., RecommenderConfig]
) -> None:
    cfg = small_config(epochs=2)
    cfg.model.use_content, cfg.model.taste_dim = False, 0
    rec = HybridRecommender(cfg, encoder=HashingEncoder(256)).fit(
        clustered.interactions, clustered.items, show_progress=False
    )
    assert not rec.item_prior_.any() and rec.prior_weight_ == 0.0
    query = rec.attributes_.pad(rec.encoder.encode(["a new item about anything"]))
    assert not rec.prior_.score(query).any()
