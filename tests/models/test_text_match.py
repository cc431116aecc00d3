"""text_match: how closely a taste in words matches the catalogue (the app warns when weakly)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from hybrid_rec import HybridRecommender
from hybrid_rec.content import HashingEncoder, item_texts
from hybrid_rec.errors import DataValidationError, NotFittedError

WORDS = "quokka zebra xylophone marmalade"


def _by_hand(rec: HybridRecommender, text: str, served: np.ndarray) -> float:
    """The best cosine, from the item texts encoded again (not the stored vectors)."""
    encoder = HashingEncoder(256)
    items = encoder.encode(item_texts(rec.items_[served], rec.config.content).tolist())
    query = encoder.encode([text])[0]
    cosines = items @ query / (np.linalg.norm(items, axis=1) * np.linalg.norm(query))
    return float(cosines.max())


def test_text_match_is_the_best_cosine_with_a_served_item(
    fresh: Callable[[], HybridRecommender],
) -> None:
    rec = fresh()
    rec.add_items(pd.DataFrame({"item_id": ["odd"], "title": [WORDS], "category": ["misc"]}))
    everything = np.ones(len(rec.items_), dtype=bool)
    best = rec.text_match(WORDS)
    assert best == pytest.approx(_by_hand(rec, WORDS, everything), abs=1e-5)
    assert best > 0.8  # the item says just these words (and its category)
    description = str(rec.items_["description"].iloc[0])
    assert rec.text_match(description) == pytest.approx(
        _by_hand(rec, description, everything), abs=1e-5
    )
    # a removed item matches nothing: the words now find only unrelated items
    rec.remove_items(["odd"])
    served = ~rec.items_["item_id"].isin(["odd"]).to_numpy()
    weak = rec.text_match(WORDS)
    assert weak == pytest.approx(_by_hand(rec, WORDS, served), abs=1e-5) and weak < best - 0.5
    rec.restore_items(["odd"])
    assert rec.text_match(WORDS) == pytest.approx(best)


@pytest.mark.parametrize("text", ["", "   ", None, 3])
def test_text_match_needs_text(fitted: HybridRecommender, text: object) -> None:
    with pytest.raises(DataValidationError, match="text_match needs some text"):
        fitted.text_match(text)  # type: ignore[arg-type]


def test_text_match_needs_a_fitted_model() -> None:
    with pytest.raises(NotFittedError):
        HybridRecommender(encoder=HashingEncoder(256)).text_match("rockets")
