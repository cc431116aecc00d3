"""Baselines on a clustered synthetic catalogue whose right answers are known.

Every item belongs to one cluster and its content vector is the cluster's
centroid plus noise; every user draws items from one cluster, with Zipf-like
popularity inside it. Content must therefore find a user's cold items, and
popularity must beat chance on warm items.
"""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from hybrid_rec.config import SplitConfig
from hybrid_rec.data.splits import ColdStartSplit, cold_start_split
from hybrid_rec.errors import DataValidationError, NotFittedError, UnknownIdError
from hybrid_rec.evaluation.baselines import (
    EASE,
    ContentKNN,
    LightFMBaseline,
    MissingDependencyError,
    Popularity,
    Random,
)
from hybrid_rec.evaluation.protocol import ColdStartEvaluator, Method, evaluate_cold_start

N_CLUSTERS = 4
ITEMS_PER_CLUSTER = 100
USERS_PER_CLUSTER = 25
DIM = 16


def clustered(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Interactions, items and content vectors (rows follow ``items``)."""
    rng = np.random.default_rng(seed)
    n_items = N_CLUSTERS * ITEMS_PER_CLUSTER
    item_cluster = np.repeat(np.arange(N_CLUSTERS), ITEMS_PER_CLUSTER)
    centroids = rng.normal(size=(N_CLUSTERS, DIM))
    content = centroids[item_cluster] + 0.4 * rng.normal(size=(n_items, DIM))
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)]})
    zipf = 1.0 / np.arange(1, ITEMS_PER_CLUSTER + 1) ** 0.8
    zipf /= zipf.sum()
    rows = []
    for c in range(N_CLUSTERS):
        for u in range(USERS_PER_CLUSTER):
            picks = rng.choice(ITEMS_PER_CLUSTER, size=14, replace=False, p=zipf)
            rows += [(f"u{c}_{u}", f"i{c * ITEMS_PER_CLUSTER + p}") for p in picks]
    interactions = pd.DataFrame(rows, columns=["user_id", "item_id"])
    return interactions, items, content.astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[ColdStartSplit, pd.DataFrame, np.ndarray]:
    interactions, items, content = clustered()
    return cold_start_split(interactions, SplitConfig(seed=7)), items, content


def _recall(method: Method, split: ColdStartSplit, name: str, stage: str = "test") -> float:
    res = evaluate_cold_start(method, split, k=5, which=(name,), stage=stage)  # type: ignore[arg-type]
    return float(res[name]["recall@5"])


def _fit(method: Method, data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray]) -> Method:
    split, items, content = data
    return method.fit(split.train, items, content)


# ----------------------------------------------------------------------------- contract


@pytest.mark.parametrize("make", [Random, Popularity, ContentKNN, EASE], ids=lambda m: m.__name__)
def test_contract(make: type, data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray]) -> None:
    split, items, _ = data
    method = make()
    assert isinstance(method, Method)
    assert _fit(method, data) is method
    users = split.train["user_id"].unique()[:5].tolist()
    item_ids = items["item_id"].tolist()
    scores = method.score(users, item_ids)
    assert scores.shape == (5, len(item_ids))
    assert np.issubdtype(scores.dtype, np.floating)
    assert np.isfinite(scores).all()
    assert method.score(users[:2], item_ids[:3]).shape == (2, 3)


@pytest.mark.parametrize("make", [Popularity, ContentKNN, EASE], ids=lambda m: m.__name__)
def test_refit_is_deterministic(
    make: type, data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray]
) -> None:
    users, item_ids = ["u0_0", "u1_3"], data[1]["item_id"].tolist()
    a = _fit(make(), data).score(users, item_ids)
    b = _fit(make(), data).score(users, item_ids)
    np.testing.assert_array_equal(a, b)


def test_unfitted_methods_say_so() -> None:
    with pytest.raises(NotFittedError):
        Popularity().score(["u"], ["i"])
    with pytest.raises(NotFittedError):
        ContentKNN().score(["u"], ["i"])
    with pytest.raises(NotFittedError):
        EASE().score(["u"], ["i"])


# ----------------------------------------------------------------------------- quality


def test_content_knn_beats_random_on_cold(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    knn = _recall(_fit(ContentKNN(), data), split, "cold")
    rnd = _recall(_fit(Random(seed=1), data), split, "cold")
    assert knn > 2 * rnd
    assert knn > 0.4  # random among the user's cluster's cold items would get about 0.5


def test_popularity_beats_random_on_warm(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    pop = _recall(_fit(Popularity(), data), split, "warm")
    rnd = _recall(_fit(Random(seed=1), data), split, "warm")
    assert pop > 1.5 * rnd


def test_popularity_ties_cold_items_at_zero(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    pop = _fit(Popularity(), data)
    scores = pop.score(["anyone", "new-user"], split.test_cold_items.tolist())
    assert (scores == 0).all()
    warm = pop.score(["x"], split.warm_items.tolist())
    assert (warm >= 1).all()


# ----------------------------------------------------------------------------- inputs


def test_content_knn_needs_known_users_and_good_content(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, content = data
    knn = _fit(ContentKNN(), data)
    with pytest.raises(UnknownIdError, match="unknown user"):
        knn.score(["nobody"], ["i0"])
    with pytest.raises(UnknownIdError, match="unknown item"):
        knn.score(["u0_0"], ["no-such-item"])
    with pytest.raises(DataValidationError, match="needs item content"):
        ContentKNN().fit(split.train, items, None)
    with pytest.raises(DataValidationError, match="shape"):
        ContentKNN().fit(split.train, items, content[:-1])
    bad = content.copy()
    bad[3, 0] = np.nan
    with pytest.raises(DataValidationError, match=r"row\(s\) 3"):
        ContentKNN().fit(split.train, items, bad)
    with pytest.raises(DataValidationError, match="missing from the items frame"):
        keep = (items["item_id"] != split.train["item_id"].iloc[0]).to_numpy()
        ContentKNN().fit(split.train, items[keep], content[keep])


def test_content_knn_user_vector_is_mean_of_history() -> None:
    train = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"]})
    items = pd.DataFrame({"item_id": ["x", "y", "z"]})
    content = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=np.float32)
    knn = ContentKNN(center=False).fit(train, items, content)
    scores = knn.score(["a", "b"], ["x", "y", "z"])
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(scores, [[s, s, 1.0], [1.0, 0.0, s]], atol=1e-6)


def test_centred_content_knn_ignores_a_direction_shared_by_all_items(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, content = data
    users, item_ids = split.train["user_id"].unique()[:5].tolist(), items["item_id"].tolist()
    plain = ContentKNN().fit(split.train, items, content).score(users, item_ids)
    shifted = ContentKNN().fit(split.train, items, content + 3.0).score(users, item_ids)
    np.testing.assert_allclose(plain, shifted, atol=1e-5)
    uncentred = ContentKNN(center=False).fit(split.train, items, content + 3.0)
    assert not np.allclose(uncentred.score(users, item_ids), plain, atol=1e-2)


def test_missing_lightfm_names_the_make_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightfm", None)  # makes `import lightfm` fail
    interactions, items, content = clustered()
    with pytest.raises(MissingDependencyError, match="make bench-deps"):
        LightFMBaseline().fit(interactions, items, content)


def test_lightfm_item_features_give_cold_items_content_only() -> None:
    items = pd.Index(["a", "b", "c"])
    warm = pd.Index(["a", "c"])
    content = np.array([[0.6, -0.8], [1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    feats = LightFMBaseline.item_features(items, warm, content)
    assert isinstance(feats, sp.csr_matrix) and feats.shape == (3, 2 + 2)
    dense = feats.toarray()
    np.testing.assert_allclose(np.abs(dense).sum(axis=1), 1.0, rtol=1e-6)
    # warm "a": identity 0.5, content (0.6, -0.8) / 1.4 scaled by 0.5
    np.testing.assert_allclose(dense[0], [0.5, 0.0, 0.3 / 1.4, -0.4 / 1.4], rtol=1e-6)
    # cold "b": no identity column, content only
    np.testing.assert_allclose(dense[1], [0.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(dense[2], [0.0, 0.5, 0.0, 0.5])


# ----------------------------------------------------------------------------- LightFM


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("lightfm") is None,
    reason="lightfm is not installed (run `make bench-deps`)",
)
def test_lightfm_tunes_epochs_on_validation_and_beats_random(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, content = data
    val = ColdStartEvaluator(split, k=10, which=("all",), stage="val")
    seen: list[int] = []

    def validate(scorer: object) -> float:
        seen.append(1)
        return float(val(scorer)["all"]["recall@10"])  # type: ignore[arg-type]

    model = LightFMBaseline(
        no_components=16,
        content_dim=8,
        validate=validate,
        max_epochs=20,
        eval_every=5,
        patience=2,
        threads=1,
        seed=0,
    )
    model.fit(split.train, items, content)
    assert model.best_epochs_ in {e for e, _ in model.history_}
    assert len(seen) == len(model.history_) >= 2
    best = max(v for _, v in model.history_)
    assert val(model)["all"]["recall@10"] == pytest.approx(best)  # best chunk restored
    rnd = _fit(Random(seed=1), data)
    assert _recall(model, split, "cold") > 1.5 * _recall(rnd, split, "cold")
    assert _recall(model, split, "warm") > 1.5 * _recall(rnd, split, "warm")
    with pytest.raises(UnknownIdError):
        model.score(["nobody"], ["i0"])


def test_random_scores_new_users_too() -> None:
    scores = Random(seed=3).fit(pd.DataFrame(), pd.DataFrame(), None).score(["new"], ["a", "b"])
    assert scores.shape == (1, 2) and ((scores >= 0) & (scores < 1)).all()


# ----------------------------------------------------------------------------- EASE / CEASE


def test_ease_closed_form_solves_the_constrained_least_squares() -> None:
    """Stationarity of ||X - XB||² + λ||B||² under diag(B) = 0: every off-diagonal entry
    of (XᵀX + λI) B - XᵀX is zero (the diagonal carries the constraint's multipliers)."""
    rng = np.random.default_rng(3)
    x = (rng.random((60, 12)) < 0.3).astype(np.float64)
    gram, l2 = x.T @ x, 5.0
    b = EASE.closed_form(gram, l2)
    assert np.allclose(np.diag(b), 0.0)
    residual = (gram + l2 * np.eye(12)) @ b - gram
    off = residual[~np.eye(12, dtype=bool)]
    assert np.abs(off).max() < 1e-9
    # and it is not trivially zero: items that co-occur get weight
    assert np.abs(b).max() > 0.01


def test_cease_is_ease_on_the_content_stacked_as_pseudo_users(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    """CEASE's Gram is that of [X; α Fᵀ]: α² F Fᵀ added to XᵀX, with F the centred,
    L2-normalised content."""
    split, items, content = data
    l2, alpha = 30.0, 3.0
    cease = _fit(EASE(l2=(l2,), content_weight=(alpha,)), data)
    index = pd.Index(items["item_id"])
    x = np.zeros((split.train["user_id"].nunique(), len(index)))
    users = pd.factorize(split.train["user_id"], sort=True)[0]
    x[users, index.get_indexer(split.train["item_id"])] = 1.0
    f = content - content.mean(axis=0, keepdims=True)
    f /= np.linalg.norm(f, axis=1, keepdims=True)
    stacked = np.vstack([x, alpha * f.T])
    want = EASE.closed_form(stacked.T @ stacked, l2)
    np.testing.assert_allclose(cease._weights, want, rtol=1e-3, atol=1e-5)


def test_ease_learns_clusters_on_warm_items(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    ease = _recall(_fit(EASE(l2=(10.0,)), data), split, "warm")
    pop = _recall(_fit(Popularity(), data), split, "warm")
    assert ease > pop


def test_plain_ease_ranks_cold_items_last_and_tied(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    ease = _fit(EASE(l2=(10.0,)), data)
    warm_ids = split.train["item_id"].unique().tolist()
    cold_ids = split.test_cold_items.tolist()
    users = ["u0_0", "u2_5"]
    scores = ease.score(users, warm_ids + cold_ids)
    warm, cold = scores[:, : len(warm_ids)], scores[:, len(warm_ids) :]
    assert (cold == cold[:, :1]).all()  # tied within a user
    assert (cold.max(axis=1) < warm.min(axis=1)).all()  # and below every warm item


def test_cease_places_cold_items_through_content(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split = data[0]
    cease = _recall(_fit(EASE(l2=(100.0,), content_weight=(3.0,)), data), split, "cold")
    rnd = _recall(_fit(Random(seed=1), data), split, "cold")
    assert cease > 2 * rnd
    assert cease > 0.45  # as ContentKNN (0.54): the user's cluster's cold items come first


def test_ease_chooses_its_setting_on_validation(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, content = data
    val = ColdStartEvaluator(split, k=5, which=("cold",), stage="val")
    calls = []

    def validate(scorer: Method) -> float:
        value = float(val(scorer)["cold"]["recall@5"])
        calls.append(value)
        return value

    ease = EASE(l2=(10.0, 1000.0), content_weight=(0.0, 3.0), validate=validate)
    ease.fit(split.train, items, content)
    assert len(ease.history_) == len(calls) == 4
    best = max(ease.history_, key=lambda h: h[2])
    assert ease.best_ == (best[0], best[1])
    assert ease.best_[1] == 3.0  # on cold items only content can beat a tie
    # the kept weights are the best pair's: scoring again reproduces its validation value
    assert validate(ease) == pytest.approx(best[2])


def test_ease_rejects_bad_settings_and_missing_content(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, _ = data
    with pytest.raises(ValueError, match="l2 must be > 0"):
        EASE(l2=(0.0,))
    with pytest.raises(ValueError, match="content_weight >= 0"):
        EASE(content_weight=(-1.0,))
    with pytest.raises(ValueError, match="validate callback"):
        EASE(l2=(1.0, 2.0))
    with pytest.raises(DataValidationError, match="content vectors"):
        EASE(content_weight=(2.0,)).fit(split.train, items, None)
    ease = _fit(EASE(), data)
    with pytest.raises(UnknownIdError, match="unknown user"):
        ease.score(["nobody"], ["i0"])


def test_ease_refuses_a_catalogue_its_dense_matrix_would_not_fit(
    data: tuple[ColdStartSplit, pd.DataFrame, np.ndarray],
) -> None:
    split, items, _ = data
    with pytest.raises(DataValidationError, match=r"dense items × items matrix; 400 items"):
        EASE(max_items=399).fit(split.train, items, None)
    assert EASE(max_items=400).fit(split.train, items, None).best_ == (500.0, 0.0)
