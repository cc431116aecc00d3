from __future__ import annotations

from collections.abc import Callable

import pytest

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic


@pytest.fixture(scope="session")
def clustered() -> Dataset:
    return synthetic(n_users=240, n_items=300, n_clusters=4, interactions_per_user=20, seed=7)


def _small_config(epochs: int = 6) -> RecommenderConfig:
    cfg = RecommenderConfig()
    cfg.model.epochs = epochs
    cfg.model.dim = 32
    cfg.model.batch_size = 256
    cfg.model.history_len = 20
    cfg.model.patience = 3
    # the library default (0.2) was chosen on MovieLens validation; this tiny model
    # (dim 32, a few epochs, four clean clusters) separates its clusters more sharply
    # at 0.1, which the cluster-share assertions below rely on
    cfg.model.temperature = 0.1
    return cfg


@pytest.fixture(scope="session")
def small_config() -> Callable[..., RecommenderConfig]:
    """A factory of small, fast configs."""
    return _small_config


@pytest.fixture(scope="session")
def fitted(clustered: Dataset) -> HybridRecommender:
    rec = HybridRecommender(_small_config(), encoder=HashingEncoder(256))
    return rec.fit(clustered.interactions, clustered.items, show_progress=False)


@pytest.fixture
def fresh(
    fitted: HybridRecommender, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[], HybridRecommender]:
    """Independent copies of the fitted model (through save/load) for tests that change it."""

    def make() -> HybridRecommender:
        path = fitted.save(tmp_path_factory.mktemp("model") / "m")
        return HybridRecommender.load(path, encoder=HashingEncoder(256))

    return make
