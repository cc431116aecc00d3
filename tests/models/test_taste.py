"""The content-taste term: principal coordinates and users' tastes in them."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import hybrid_rec.models.taste as taste_module
from hybrid_rec.models.taste import ContentTaste


def _content(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # three clusters along different directions, plus a large common offset
    centres = rng.normal(size=(3, 16)) * 3
    rows = centres[np.repeat(np.arange(3), 20)] + rng.normal(size=(60, 16)) * 0.3
    return (rows + 10.0).astype(np.float32)


def test_basis_is_orthonormal_and_ordered_by_variance() -> None:
    content = _content()
    taste = ContentTaste.fit(content, 4)
    assert taste.basis.shape == (16, 4) and taste.dim == 4
    np.testing.assert_allclose(taste.basis.T @ taste.basis, np.eye(4), atol=1e-5)
    spread = ((content - taste.mean) @ taste.basis).var(axis=0)
    assert np.all(np.diff(spread) <= 1e-4)  # first component carries the most variance
    np.testing.assert_allclose(taste.mean, content.mean(axis=0), rtol=1e-5)


def test_item_coordinates_ignore_the_common_offset_and_are_unit_length() -> None:
    content = _content()
    taste = ContentTaste.fit(content, 2)
    coords = taste.items(content)
    np.testing.assert_allclose(np.linalg.norm(coords, axis=1), 1.0, atol=1e-5)
    same = coords[:20] @ coords[:20].T
    other = coords[:20] @ coords[20:40].T
    assert same.mean() > 0.9 > other.mean()  # clusters stay apart once the mean is removed


def test_user_taste_is_the_normalised_sum_of_their_items() -> None:
    content = _content()
    taste = ContentTaste.fit(content, 3)
    coords = taste.items(content)
    users = np.array([0, 0, 2])
    items = np.array([1, 5, 45])
    tastes = taste.users(coords, users, items, n_users=3)
    want = coords[1] + coords[5]
    np.testing.assert_allclose(tastes[0], want / np.linalg.norm(want), atol=1e-5)
    np.testing.assert_allclose(tastes[1], 0.0)  # no history: no taste
    np.testing.assert_allclose(tastes[2], coords[45], atol=1e-5)


def test_dim_is_capped_by_the_content_width() -> None:
    assert ContentTaste.fit(_content(), 64).dim == 16


def test_the_covariance_is_summed_in_blocks_within_a_fraction_of_the_input(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The principal directions of a blockwise sum are numpy's SVD's, and the fit
    holds about one block, not float64 copies of every row (6x the input before)."""
    rows = np.random.default_rng(1).standard_normal((20_000, 200)).astype(np.float32)
    rows[:, :3] *= [5.0, 4.0, 3.0]  # three clear leading directions
    monkeypatch.setattr(taste_module, "_COV_BLOCK", 4096, raising=False)
    tracemalloc.start()
    taste = ContentTaste.fit(rows, 3)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 1.5 * rows.nbytes, peak / rows.nbytes
    centred = rows.astype(np.float64) - rows.mean(axis=0, dtype=np.float64)
    vt = np.linalg.svd(centred, full_matrices=False)[2][:3]
    np.testing.assert_allclose(np.abs(vt @ taste.basis), np.eye(3), atol=1e-4)
