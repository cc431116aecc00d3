"""Baselines for the cold-start benchmark, each a small class implementing :class:`Method`.

* :class:`Random` — the sanity floor.
* :class:`Popularity` — training interaction counts (cold items all score 0, so
  they tie and never beat a warm item).
* :class:`ContentKNN` — a user is the L2-normalised mean of the content vectors
  of their training items; the score is the cosine to each item's content vector.
* :class:`LightFMBaseline` — LightFM WARP with an identity feature per warm
  item plus the same content vectors as item features; a cold item has no
  identity feature, so only its content features act (LightFM's cold-start
  recipe). LightFM is a benchmark-only dependency, imported lazily.
* :class:`EASE` — Steck's closed-form item-item model (WWW 2019); with
  ``content_weight > 0`` it is CEASE (Jeunen, Van Balen and Goethals, RecSys
  2020): each content dimension joins the interaction matrix as a pseudo-user,
  so a cold item, whose column has no interaction, gets item-item weights
  through its content. Its L2 penalty and content weight are chosen on the
  validation stage.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from hybrid_rec.data.columns import Columns
from hybrid_rec.errors import (
    DataValidationError,
    MissingDependencyError,
    NotFittedError,
    TrainingError,
    UnknownIdError,
)
from hybrid_rec.evaluation.protocol import Scorer

__all__ = [
    "EASE",
    "ContentKNN",
    "LightFMBaseline",
    "MissingDependencyError",
    "Popularity",
    "Random",
]

log = logging.getLogger(__name__)
C = Columns


# ----------------------------------------------------------------------------- helpers


def _lookup(index: pd.Index | None, ids: Sequence[str], kind: str, owner: str) -> np.ndarray:
    """Positions of ``ids`` in ``index``; :class:`UnknownIdError` names the unknown ones."""
    if index is None:
        raise NotFittedError(f"{owner} is not fitted. Fix: call fit() first.")
    pos = index.get_indexer(pd.Index([str(x) for x in ids]))
    if (pos < 0).any():
        missing = [str(ids[i]) for i in np.flatnonzero(pos < 0)[:5]]
        raise UnknownIdError(
            f"{owner}: {int((pos < 0).sum())} unknown {kind} id(s), e.g. {missing}."
        )
    return pos


def _item_index(items: pd.DataFrame) -> pd.Index:
    if C.item not in items.columns:
        raise DataValidationError("missing column.", source="items", column=C.item)
    return pd.Index(items[C.item].astype(str))


def _check_content(items: pd.DataFrame, content: np.ndarray | None, owner: str) -> np.ndarray:
    """Content vectors as float32, checked for shape and finiteness."""
    if content is None:
        raise DataValidationError(
            f"{owner} needs item content vectors, got None.",
            source="content",
            fix="embed the item texts (hybrid_rec.content) and pass them to fit().",
        )
    arr = np.asarray(content, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(items):
        raise DataValidationError(
            f"content has shape {arr.shape}, expected ({len(items)}, dim): one row per item, "
            "in the order of items['item_id'].",
            source="content",
        )
    bad = np.flatnonzero(~np.isfinite(arr).all(axis=1))
    if bad.size:
        raise DataValidationError(
            "content vectors hold NaN or inf.",
            source="content",
            rows=bad.tolist(),
            fix="re-embed those items, or replace the vectors with zeros.",
        )
    return arr


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def _principal_components(x: np.ndarray, dim: int | None) -> np.ndarray:
    """Centre ``x`` on its mean row; if wider than ``dim``, keep its top ``dim`` principal axes.

    Unsupervised: only the content vectors are looked at, never interactions.
    """
    centred = x - x.mean(axis=0, keepdims=True)
    if dim is None or dim >= x.shape[1]:
        return centred.astype(np.float32)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    return (centred @ vt[:dim].T).astype(np.float32)


def _interaction_matrix(
    train: pd.DataFrame, items: pd.Index, owner: str
) -> tuple[pd.Index, sp.csr_matrix]:
    """Users of ``train`` and their binary (users × items) matrix over ``items``."""
    codes, users = pd.factorize(train[C.user].astype(str), sort=True)
    cols = items.get_indexer(train[C.item].astype(str))
    if (cols < 0).any():
        missing = train[C.item].astype(str).to_numpy()[cols < 0][:5].tolist()
        raise DataValidationError(
            f"{owner}: training interactions name items missing from the items frame, "
            f"e.g. {missing}.",
            source="train",
            column=C.item,
            fix="pass the full item catalogue to fit().",
        )
    matrix = sp.csr_matrix(
        (np.ones(len(codes), dtype=np.float32), (codes, cols)), shape=(len(users), len(items))
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return pd.Index(users), matrix


# ----------------------------------------------------------------------------- baselines


class Random:
    """Uniform random scores: the floor every real method must clear.

    Parameters
    ----------
    seed
        Seed of the generator (re-seeded by every ``fit``).
    """

    def __init__(self, seed: int = 42) -> None:
        self.seed = seed
        self._rng = np.random.default_rng(seed)

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Reset the generator; nothing is learned."""
        self._rng = np.random.default_rng(self.seed)
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """Uniform [0, 1) float32 scores for any user, known or not."""
        return self._rng.random((len(user_ids), len(item_ids)), dtype=np.float32)


class Popularity:
    """Items ranked by their number of training interactions, the same for every user.

    Items without a training interaction (cold items) score 0 and tie.
    """

    def __init__(self) -> None:
        self._counts: pd.Series | None = None

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Count training interactions per item."""
        self._counts = train[C.item].astype(str).value_counts().astype(np.float32)
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """Training counts of ``item_ids``, repeated for every user (new users included)."""
        if self._counts is None:
            raise NotFittedError("Popularity is not fitted. Fix: call fit() first.")
        row = self._counts.reindex(pd.Index([str(i) for i in item_ids]), fill_value=0.0)
        return np.tile(row.to_numpy(dtype=np.float32), (len(user_ids), 1))


class ContentKNN:
    """Cosine between a user's mean history content vector and each item's content vector.

    A user's vector is the mean of the (L2-normalised) content vectors of the
    distinct items in their training history, L2-normalised again. Users
    without history raise :class:`~hybrid_rec.errors.UnknownIdError`.

    Parameters
    ----------
    center
        Subtract the catalogue's mean content vector before normalising.
        Sentence-transformer vectors share a large common direction, so
        uncentred cosines mostly measure "how generic is this item"; on
        ml-100k with MiniLM centring lifts cold recall@20 from 0.13 to 0.40.
        The mean is taken over the items given to ``fit`` (content only, no
        interactions).
    """

    def __init__(self, *, center: bool = True) -> None:
        self.center = center
        self._items: pd.Index | None = None
        self._users: pd.Index | None = None
        self._item_vecs = np.empty((0, 0), dtype=np.float32)
        self._user_vecs = np.empty((0, 0), dtype=np.float32)

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Average each user's history content vectors."""
        raw = _check_content(items, content, "ContentKNN")
        vecs = _l2_normalise(_principal_components(raw, None) if self.center else raw)
        index = _item_index(items)
        users, matrix = _interaction_matrix(train, index, "ContentKNN")
        counts = np.asarray(matrix.sum(axis=1), dtype=np.float32)
        self._user_vecs = _l2_normalise(np.asarray(matrix @ vecs) / np.maximum(counts, 1.0))
        self._item_vecs = vecs
        self._items, self._users = index, users
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """Cosine similarities, float32 ``(len(user_ids), len(item_ids))``."""
        urows = _lookup(self._users, user_ids, "user", "ContentKNN")
        irows = _lookup(self._items, item_ids, "item", "ContentKNN")
        return self._user_vecs[urows] @ self._item_vecs[irows].T


class LightFMBaseline:
    """LightFM (WARP) with identity + content item features; epochs chosen on validation.

    Item features are one identity column per *warm* item (an item with a
    training interaction) followed by the content vector. Cold items get no
    identity column — it would have no trained weight — so only their content
    features act, as in LightFM's cold-start recipe. The content vectors are
    centred and projected on their top ``content_dim`` principal components
    first: LightFM's cost grows with the non-zero features per item, and on
    ml-100k (MiniLM, 384 dims) 32 components trained 8× faster than the raw
    vectors, with better validation recall (all items 0.224 against 0.165; 16 and
    64 components read 0.221 and 0.187; ``scripts/tune_lightfm.py``). Each feature row is
    normalised as LightFM's ``Dataset(normalize=True)`` does: the content
    block is scaled to unit L1 norm and the whole row then to unit L1 norm
    (a warm item weighs identity and content half and half; a cold item is
    all content).

    Parameters
    ----------
    no_components
        Embedding size.
    loss
        LightFM loss; ``"warp"`` by default.
    learning_rate, item_alpha, user_alpha, max_sampled
        Passed to :class:`lightfm.LightFM`.
    content_dim
        Principal components of the content vectors used as features
        (``None``: all of them, centred).
    epochs
        Epochs when no ``validate`` callback is given.
    validate
        ``validate(scorer) -> float`` (higher is better), typically validation
        recall from :class:`~hybrid_rec.evaluation.ColdStartEvaluator` with
        ``stage="val"``. When given, training runs in chunks of ``eval_every``
        epochs up to ``max_epochs``, stops after ``patience`` chunks without
        improvement, and keeps the best chunk's parameters; the chosen epoch
        count is ``best_epochs_``. Never pass a test-split callback.
    threads
        OpenMP threads for LightFM. Above 1, LightFM's lock-free parallel SGD is
        not bit-reproducible (recall moved by about ±0.003 between ml-100k runs);
        use 1 for exact repeats.
    seed
        LightFM's ``random_state``.
    """

    def __init__(
        self,
        *,
        no_components: int = 64,
        loss: str = "warp",
        learning_rate: float = 0.05,
        item_alpha: float = 1e-6,
        user_alpha: float = 1e-6,
        max_sampled: int = 10,
        content_dim: int | None = 32,
        epochs: int = 30,
        validate: Callable[[Scorer], float] | None = None,
        max_epochs: int = 60,
        eval_every: int = 5,
        patience: int = 2,
        threads: int = 2,
        seed: int = 42,
    ) -> None:
        self.params: dict[str, Any] = {
            "no_components": no_components,
            "loss": loss,
            "learning_rate": learning_rate,
            "item_alpha": item_alpha,
            "user_alpha": user_alpha,
            "max_sampled": max_sampled,
            "random_state": seed,
        }
        self.content_dim = content_dim
        self.epochs = epochs
        self.validate = validate
        self.max_epochs = max_epochs
        self.eval_every = eval_every
        self.patience = patience
        self.threads = threads
        self.best_epochs_: int | None = None
        self.history_: list[tuple[int, float]] = []
        self._model: Any = None
        self._items: pd.Index | None = None
        self._users: pd.Index | None = None
        self._item_features: sp.csr_matrix | None = None
        self._reps: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @staticmethod
    def _import_lightfm() -> Any:
        try:
            from lightfm import LightFM
        except ImportError:
            raise MissingDependencyError(
                "LightFMBaseline needs lightfm 1.17, which is not installed. Fix: run "
                "`make bench-deps` (it builds lightfm from source with "
                "scripts/install_lightfm.sh)."
            ) from None
        return LightFM

    @staticmethod
    def item_features(items: pd.Index, warm_items: pd.Index, content: np.ndarray) -> sp.csr_matrix:
        """The (items × (n_warm + dim)) feature matrix described in the class docstring."""
        raw = np.asarray(content, dtype=np.float32)
        l1 = np.abs(raw).sum(axis=1, keepdims=True)
        block = (raw / np.where(l1 > 0, l1, 1.0)).astype(np.float32)
        ident_col = warm_items.get_indexer(items)
        is_warm = ident_col >= 0
        ident = sp.csr_matrix(
            (
                np.ones(int(is_warm.sum()), np.float32),
                (np.flatnonzero(is_warm), ident_col[is_warm]),
            ),
            shape=(len(items), len(warm_items)),
        )
        feats = sp.hstack([ident, sp.csr_matrix(block)], format="csr", dtype=np.float32)
        row_l1 = np.asarray(abs(feats).sum(axis=1)).ravel()
        scale = np.where(row_l1 > 0, 1.0 / np.where(row_l1 > 0, row_l1, 1.0), 0.0)
        return sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ feats, dtype=np.float32)

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Train WARP on the warm items; pick the epoch count on validation if asked."""
        light_fm = self._import_lightfm()
        vecs = _principal_components(
            _check_content(items, content, "LightFMBaseline"), self.content_dim
        )
        index = _item_index(items)
        warm = pd.Index(np.sort(train[C.item].astype(str).unique()))
        users, interactions = _interaction_matrix(train, warm, "LightFMBaseline")
        all_features = self.item_features(index, warm, vecs)
        train_features = all_features[index.get_indexer(warm)]
        self._items, self._users, self._item_features = index, users, all_features
        self._model = light_fm(**self.params)
        coo = interactions.tocoo()
        start = time.perf_counter()
        if self.validate is None:
            self._model.fit_partial(
                coo, item_features=train_features, epochs=self.epochs, num_threads=self.threads
            )
            self._check_finite(self.epochs)
            self.best_epochs_ = self.epochs
            self._cache_representations()
        else:
            self._fit_with_validation(coo, train_features)
        log.info("LightFM: %d epochs, %.1f s", self.best_epochs_, time.perf_counter() - start)
        return self

    def _fit_with_validation(self, coo: sp.coo_matrix, features: sp.csr_matrix) -> None:
        assert self.validate is not None
        best: tuple[float, int, dict[str, np.ndarray]] | None = None
        stale = 0
        self.history_ = []
        done = 0
        while done < self.max_epochs and stale < self.patience:
            step = min(self.eval_every, self.max_epochs - done)
            self._model.fit_partial(
                coo, item_features=features, epochs=step, num_threads=self.threads
            )
            done += step
            self._check_finite(done)
            self._cache_representations()
            value = float(self.validate(self))
            self.history_.append((done, value))
            log.info("LightFM epoch %d: validation %.4f", done, value)
            if best is None or value > best[0]:
                best, stale = (value, done, self._snapshot()), 0
            else:
                stale += 1
        assert best is not None
        for name, arr in best[2].items():
            setattr(self._model, name, arr)
        self.best_epochs_ = best[1]
        self._cache_representations()

    _PARAMS = ("item_embeddings", "item_biases", "user_embeddings", "user_biases")

    def _snapshot(self) -> dict[str, np.ndarray]:
        return {name: getattr(self._model, name).copy() for name in self._PARAMS}

    def _check_finite(self, epoch: int) -> None:
        for name in self._PARAMS:
            if not np.isfinite(getattr(self._model, name)).all():
                raise TrainingError(
                    f"LightFM produced non-finite {name} after {epoch} epoch(s). Fix: lower "
                    "learning_rate or raise item_alpha."
                )

    def _cache_representations(self) -> None:
        ib, ie = self._model.get_item_representations(self._item_features)
        ub, ue = self._model.get_user_representations()
        self._reps = (
            np.asarray(ub, np.float32),
            np.asarray(ue, np.float32),
            np.asarray(ib, np.float32),
            np.asarray(ie, np.float32),
        )

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """LightFM scores (user · item + biases), float32 ``(len(user_ids), len(item_ids))``."""
        urows = _lookup(self._users, user_ids, "user", "LightFMBaseline")
        irows = _lookup(self._items, item_ids, "item", "LightFMBaseline")
        assert self._reps is not None
        ub, ue, ib, ie = self._reps
        return ue[urows] @ ie[irows].T + ib[irows][None, :] + ub[urows][:, None]


class EASE:
    """EASE, or CEASE with content: closed-form item-item weights, chosen on validation.

    EASE (Steck, "Embarrassingly Shallow Autoencoders", WWW 2019) learns an
    item-item matrix ``B`` with a zero diagonal minimising
    ``||X - X B||² + λ ||B||²`` for the binary (users × items) training matrix
    ``X``; its closed form is ``P = (XᵀX + λI)⁻¹``, ``B = I - P diag(1 / diag P)``,
    and a user's scores are ``x_u B``. It is a strong warm-item baseline, and
    cannot place a cold item (an item without a training interaction has an
    empty column, hence a zero column of ``B``); such items are ranked below
    every other item, tied among themselves.

    With ``content_weight = α > 0`` it is CEASE (Jeunen, Van Balen and
    Goethals, "Closed-form models for collaborative filtering with
    side-information", RecSys 2020): the content matrix ``F`` (items × dim, the
    content vectors centred and L2-normalised) is stacked under ``X`` as ``dim``
    pseudo-users weighted by ``α``, so the Gram matrix becomes
    ``XᵀX + α² F Fᵀ``. A cold item's column is then its content similarity to
    every item, and ``B`` links it to the warm items users interacted with —
    the same closed form on warm and cold items.

    Parameters
    ----------
    l2
        Candidate values of λ (one value: no search).
    content_weight
        Candidate values of α; ``(0.0,)`` is plain EASE and needs no content.
    content_dim
        Principal components of the content vectors kept (``None``: all, centred).
    validate
        ``validate(scorer) -> float`` (higher is better) on the *validation*
        stage; required when there is more than one candidate pair. Every pair
        is fitted and the best kept (``best_`` holds it, ``history_`` every
        pair's value). Never pass a test-split callback.
    max_items
        Refuse larger catalogues: the model is a dense items × items matrix
        (20,000 items: 3.2 GB of float64 while solving, one inversion per
        candidate taking minutes).
    """

    MAX_ITEMS = 20_000

    def __init__(
        self,
        *,
        l2: Sequence[float] = (500.0,),
        content_weight: Sequence[float] = (0.0,),
        content_dim: int | None = None,
        validate: Callable[[Scorer], float] | None = None,
        max_items: int = MAX_ITEMS,
    ) -> None:
        self.l2 = [float(v) for v in l2]
        self.content_weight = [float(v) for v in content_weight]
        if not self.l2 or not self.content_weight:
            raise ValueError("EASE needs at least one l2 and one content_weight value.")
        if min(self.l2) <= 0 or min(self.content_weight) < 0:
            raise ValueError(
                f"EASE: l2 must be > 0 and content_weight >= 0, got {self.l2} and "
                f"{self.content_weight}."
            )
        if validate is None and len(self.l2) * len(self.content_weight) > 1:
            raise ValueError("EASE: several candidate settings need a validate callback.")
        self.content_dim = content_dim
        self.validate = validate
        self.max_items = max_items
        self.best_: tuple[float, float] | None = None
        self.history_: list[tuple[float, float, float]] = []
        self._items: pd.Index | None = None
        self._users: pd.Index | None = None
        self._matrix: sp.csr_matrix | None = None
        self._weights = np.empty((0, 0), dtype=np.float32)
        self._placed = np.empty(0, dtype=bool)

    @property
    def placed(self) -> np.ndarray:
        """Per item of the fitted catalogue: whether the model can place it (plain EASE:
        it has a training interaction; CEASE: every item)."""
        return self._placed

    @property
    def uses_content(self) -> bool:
        return max(self.content_weight) > 0

    @staticmethod
    def closed_form(gram: np.ndarray, l2: float) -> np.ndarray:
        """``B = I - P diag(1 / diag P)`` with ``P = (gram + l2 I)⁻¹``, float64: the
        library's own :func:`~hybrid_rec.models.item_item.ease_weights` (imported here:
        ``hybrid_rec.models`` brings torch, which the other baselines do not need)."""
        from hybrid_rec.models.item_item import ease_weights

        return ease_weights(gram, l2)

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Build the Gram matrix once, then solve for each candidate (λ, α)."""
        index = _item_index(items)
        if len(index) > self.max_items:
            raise DataValidationError(
                f"EASE keeps a dense items × items matrix; {len(index):,} items exceed its "
                f"limit of {self.max_items:,} ({8 * len(index) ** 2 / 1e9:.1f} GB per copy).",
                source="items",
                fix="leave ease and cease out of the methods, or evaluate on a sample of the "
                "catalogue.",
            )
        users, matrix = _interaction_matrix(train, index, "EASE")
        xtx = np.asarray((matrix.T @ matrix).toarray(), dtype=np.float64)
        self._items, self._users, self._matrix = index, users, matrix
        warm = np.asarray(matrix.sum(axis=0)).ravel() > 0
        sim: np.ndarray | None = None  # content similarities: CEASE only
        if self.uses_content:
            raw = _check_content(items, content, "EASE")
            vecs = _l2_normalise(_principal_components(raw, self.content_dim)).astype(np.float64)
            sim = vecs @ vecs.T
        start = time.perf_counter()
        best: tuple[float, float, float, np.ndarray] | None = None
        self.history_ = []
        for alpha in self.content_weight:
            gram = xtx + (alpha * alpha) * sim if alpha > 0 and sim is not None else xtx
            # content places every item; plain EASE only those with an interaction
            self._placed = np.ones(len(index), dtype=bool) if alpha > 0 else warm
            for l2 in self.l2:
                weights = self.closed_form(gram, l2)
                if not np.isfinite(weights).all():
                    raise TrainingError(
                        f"EASE: non-finite weights with l2={l2}, content_weight={alpha}. "
                        "Fix: raise l2."
                    )
                self._weights = weights.astype(np.float32)
                if self.validate is None:
                    best = (l2, alpha, float("nan"), self._weights)
                    break
                value = float(self.validate(self))
                self.history_.append((l2, alpha, value))
                log.info("EASE l2=%g content_weight=%g: validation %.4f", l2, alpha, value)
                if best is None or value > best[2]:
                    best = (l2, alpha, value, self._weights)
        assert best is not None
        self.best_ = (best[0], best[1])
        self._weights = best[3]
        self._placed = np.ones(len(index), dtype=bool) if best[1] > 0 else warm
        log.info(
            "EASE: l2=%g content_weight=%g chosen in %.1f s",
            *self.best_,
            time.perf_counter() - start,
        )
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """``x_u B`` per user, float32 ``(len(user_ids), len(item_ids))``; items the model
        cannot place score below every other item."""
        urows = _lookup(self._users, user_ids, "user", "EASE")
        irows = _lookup(self._items, item_ids, "item", "EASE")
        assert self._matrix is not None
        # every column, then the asked ones: no copy of the (items × items) weights per call
        scores = np.asarray(self._matrix[urows] @ self._weights, dtype=np.float32)[:, irows]
        unplaced = ~self._placed[irows]
        if unplaced.any():
            floor = scores[:, ~unplaced].min(axis=1, initial=0.0) - 1.0
            scores[:, unplaced] = floor[:, None]
        return scores
