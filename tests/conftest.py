from __future__ import annotations

import os

# Never touch the network: models and data come from installed packages.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from collections.abc import Callable

import pytest

from hybrid_rec import RecommenderConfig


@pytest.fixture(scope="session")
def app_config() -> Callable[[], RecommenderConfig]:
    """Small, fast configs for the app and browser tests (template explanations)."""

    def make() -> RecommenderConfig:
        cfg = RecommenderConfig()
        cfg.content.encoder = "hashing"
        cfg.model.epochs = 4
        cfg.model.dim = 32
        cfg.model.batch_size = 256
        cfg.model.history_len = 20
        cfg.model.patience = 2
        cfg.explain.backend = "template"  # fast; the real LLM has its own tests
        return cfg

    return make
