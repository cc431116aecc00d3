"""HybridRecommender: the facade the app, the scripts and the CLI use.

>>> from hybrid_rec import HybridRecommender, datasets       # doctest: +SKIP
>>> ds = datasets.load_movielens("100k")                     # doctest: +SKIP
>>> rec = HybridRecommender().fit(ds.interactions, ds.items) # doctest: +SKIP
>>> rec.recommend(["42"], k=10)                               # doctest: +SKIP
"""

from __future__ import annotations

import contextvars
import copy
import datetime as _dt
import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from hybrid_rec._version import __version__
from hybrid_rec.batch import (
    BatchReport,
    InputTable,
    TopK,
    collect,
    input_rows,
    result_schema,
    topk_table,
    write_parquet,
)
from hybrid_rec.config import ModelConfig, RecommenderConfig
from hybrid_rec.content import Encoder, item_texts, make_encoder
from hybrid_rec.content.attributes import AttributeFeatures
from hybrid_rec.content.encoders import encode_queries, progress_enabled, torch_threads
from hybrid_rec.content.store import EmbeddingStore
from hybrid_rec.content.text import new_item_texts
from hybrid_rec.data.arrays import append_rows
from hybrid_rec.data.columns import FREE_TEXT_COLUMNS, TITLE_COLUMNS, Columns
from hybrid_rec.data.idmap import IdMap, id_list, id_text, ids_in
from hybrid_rec.data.io import atomic_write_json
from hybrid_rec.data.schema import (
    ValidationReport,
    source_name,
    validate_interactions,
    validate_items,
)
from hybrid_rec.errors import (
    DataValidationError,
    ModelFileError,
    NotFittedError,
    UnknownIdError,
)
from hybrid_rec.filters import Filters, filter_mask
from hybrid_rec.index import VectorIndex, choose_factory
from hybrid_rec.index.slots import reserve_slots
from hybrid_rec.locks import ReadWriteLock
from hybrid_rec.models import (
    HybridModel,
    TrainData,
    TrainResult,
    UserBatch,
    build_histories,
    train_model,
)
from hybrid_rec.models.history import Histories, rebuild_users
from hybrid_rec.models.item_item import ItemItem
from hybrid_rec.models.neighbours import NeighbourTransfer, neighbour_share
from hybrid_rec.models.prior import ContentPrior
from hybrid_rec.models.taste import ContentTaste
from hybrid_rec.models.training import N_SAMPLED_NEGATIVES
from hybrid_rec.persistence import (
    SAVE_LOCK_WAIT_S,
    atomic_directory,
    load_npy,
    manifest_digest,
    model_lock,
    read_manifest,
    recover_interrupted_save,
    write_manifest,
)

if TYPE_CHECKING:
    from hybrid_rec.explain.explainer import Explanation

__all__ = ["CatalogueSync", "HybridRecommender"]

log = logging.getLogger(__name__)

# Set while recommend_batch runs its chunks: it has warned about k once already.
_K_WARNED = contextvars.ContextVar("hybrid_rec_k_warned", default=False)

C = Columns

# Special event tokens of the user tower (index 0 is padding).
PAD_EVENT, TASTE_EVENT, PICKED_EVENT = "<pad>", "<taste>", "<picked>"
LIGHTLY_SEEN = 10
"""Items with fewer training interactions get their CF vector re-fitted by ``partial_fit``."""
VAL_SCORE_BLOCK = 4_000_000
"""Validation scores (users × candidate items) ranked at a time."""
FOLD_IN_FULL_SOFTMAX_ITEMS = 2 * N_SAMPLED_NEGATIVES
"""Above this many items, ``partial_fit``'s fold-in ranks against sampled items."""


@dataclass
class _Seen:
    """CSR view of each user's interacted items (for excluding them), and of the
    log rows they come from."""

    indptr: np.ndarray
    indices: np.ndarray
    log_rows: np.ndarray

    @classmethod
    def build(cls, users: np.ndarray, items: np.ndarray, n_users: int) -> _Seen:
        order = np.lexsort((items, users))
        u, i = users[order], items[order]
        indptr = np.searchsorted(u, np.arange(n_users + 1))
        return cls(indptr.astype(np.int64), i.astype(np.int64), order.astype(np.int64))

    def appended(self, users: np.ndarray, items: np.ndarray, n_users: int) -> _Seen:
        """This view with the log's next rows (``users``, ``items``) added: what
        :meth:`build` gives over the longer log, by merging instead of sorting it all."""
        first_row = len(self.log_rows)
        old_users = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        width = int(max(self.indices.max(initial=-1), items.max(initial=-1))) + 1
        order = np.lexsort((items, users))
        new_key = users[order].astype(np.int64) * width + items[order]
        # after the equal entries already there: build's stable sort puts earlier rows first
        pos = np.searchsorted(old_users * width + self.indices, new_key, side="right")
        u = np.insert(old_users, pos, users[order])
        indptr = np.searchsorted(u, np.arange(n_users + 1))
        return _Seen(
            indptr.astype(np.int64),
            np.insert(self.indices, pos, items[order]).astype(np.int64),
            np.insert(self.log_rows, pos, first_row + order).astype(np.int64),
        )

    def log_rows_of(self, users: np.ndarray) -> np.ndarray:
        """Positions in the log of every row of ``users`` (internal ids, ascending;
        a user the view does not hold has none)."""
        users = np.unique(users)
        users = users[users < len(self.indptr) - 1]
        starts, lens = self.indptr[users], np.diff(self.indptr)[users]
        at = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()))
        return np.sort(self.log_rows[at])

    def row(self, user: int) -> np.ndarray:
        return np.unique(self.indices[self.indptr[user] : self.indptr[user + 1]])

    def rows_of(self, user: int) -> np.ndarray:
        """Positions in the interaction log of ``user``'s rows (in log order)."""
        return np.sort(self.log_rows[self.indptr[user] : self.indptr[user + 1]])


@dataclass(frozen=True)
class CatalogueSync:
    """What :meth:`HybridRecommender.sync_catalogue` did, in items."""

    added: int
    updated: int
    unchanged: int
    removed: int
    restored: int

    def __str__(self) -> str:
        return (
            f"added {self.added} · updated {self.updated} · unchanged {self.unchanged} · "
            f"removed {self.removed} · restored {self.restored}"
        )


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reads(
    method: Callable[Concatenate[HybridRecommender, _P], _R],
) -> Callable[Concatenate[HybridRecommender, _P], _R]:
    """Run ``method`` holding the recommender's lock shared: beside other readers."""

    @functools.wraps(method)
    def locked(self: HybridRecommender, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock.read():
            return method(self, *args, **kwargs)

    return locked


def _writes(
    method: Callable[Concatenate[HybridRecommender, _P], _R],
) -> Callable[Concatenate[HybridRecommender, _P], _R]:
    """Run ``method`` holding the recommender's lock alone: no reader sees half an update."""

    @functools.wraps(method)
    def locked(self: HybridRecommender, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        with self._lock.write():
            return method(self, *args, **kwargs)

    return locked


class HybridRecommender:
    """Content + collaborative recommendations that work for cold items and new users.

    Parameters
    ----------
    config
        A :class:`~hybrid_rec.config.RecommenderConfig`; ``None`` means the defaults.
    encoder
        A content encoder (``encode(texts) -> float32 array``, ``dim``, ``name``);
        ``None`` builds the one named by ``config.content.encoder``.

    Threads
    -------
    One recommender may serve many threads while another updates it: the methods
    that read it (``recommend``, ``similar_items``, ``score_cold_items``, ``explain``
    ...) run side by side, those that change it (``fit``, ``add_items``,
    ``update_items``, ``remove_items``, ``restore_items``, ``sync_catalogue``,
    ``partial_fit``) run alone, and a waiting update goes before reads that arrive
    after it. A call therefore sees the model before or after an update, never half
    of one. Batch jobs (``recommend_batch``, ``score_cold_items``) and ``save`` read
    it from start to end, so an update waits for them: in a service, run those on a
    model loaded apart. :attr:`lock` keeps several calls on one state.
    """

    def __init__(self, config: RecommenderConfig | None = None, *, encoder: Encoder | None = None):
        self.config = config or RecommenderConfig()
        self._encoder = encoder
        self._saved_encoder: str | None = None  # set by load(): the encoder the vectors came from
        self._fitted = False
        self.feedback_report_: ValidationReport | None = None  # the last partial_fit's
        # share of validation lists' places items without interactions got at fit (None:
        # not measured, or a loaded model)
        self.new_item_share_: float | None = None
        self.fitted_at_: str | None = None  # when fit ended, UTC (None: saved before it was kept)
        # the item-item stage (models.item_item): None, or weights chosen on validation
        self.item_item_: ItemItem | None = None
        self.item_item_weight_ = 0.0
        self.item_item_scale_ = 0.0
        # add_items' repeated-text check: (items_ it describes, keys, each key's first row)
        self._text_keys: tuple[pd.DataFrame, np.ndarray, dict[int, int]] | None = None
        self._lock = ReadWriteLock()
        self._cache_lock = threading.RLock()  # readers filling caches (encoder, user vectors)
        self._noted: set[str] = set()  # kinds of request already warned about (_note)
        self._popular: tuple[float, np.ndarray] | None = None  # (days, counts): _popularity
        # directory -> manifest sha256 of the state this object loaded from or saved there
        self._on_disk: dict[str, str] = {}
        self._save_lock = threading.Lock()  # this object's saves, one at a time

    def copy(self) -> HybridRecommender:
        """An independent copy, for an update prepared off to the side: ``new =
        rec.copy(); new.partial_fit(events); rec = new`` keeps ``rec`` serving, whole,
        while ``new`` changes (at the cost of a second model's memory). The encoder,
        which never changes, is shared."""
        with self._lock.read():
            memo: dict[int, Any] = {
                id(self._lock): ReadWriteLock(),
                id(self._cache_lock): threading.RLock(),
                id(self._save_lock): threading.Lock(),
            }
            if self._encoder is not None:
                memo[id(self._encoder)] = self._encoder
            return copy.deepcopy(self, memo)

    @property
    def lock(self) -> ReadWriteLock:
        """The lock the methods hold: ``with rec.lock.read():`` keeps updates from
        other threads out of several calls (a ranking and its explanations, say);
        ``with rec.lock.write():`` makes a sequence of updates one."""
        return self._lock

    # ================================================================ fitting

    @property
    def encoder(self) -> Encoder:
        """The content encoder (built on first use)."""
        if self._encoder is not None:
            return self._encoder
        with self._cache_lock:  # two first requests build it once
            if self._encoder is not None:
                return self._encoder
            encoder = make_encoder(self.config.content)
            if self._saved_encoder is not None and encoder.name != self._saved_encoder:
                raise ModelFileError(
                    f"this model's vectors come from encoder {self._saved_encoder!r}, but its "
                    f"config builds {encoder.name!r}; vectors from different encoders cannot be "
                    "mixed. Pass the original encoder to HybridRecommender.load(..., encoder=...)."
                )
            self._encoder = encoder
        return self._encoder

    def _encoder_name(self) -> str:
        """The encoder's name, without building it where a loaded model knows it."""
        if self._encoder is None and self._saved_encoder is not None:
            return self._saved_encoder
        return str(getattr(self.encoder, "name", "unknown"))

    @_writes
    def fit(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame,
        *,
        validation: pd.DataFrame | None = None,
        content: np.ndarray | None = None,
        store: EmbeddingStore | str | Path | None = None,
        show_progress: bool | None = None,
    ) -> HybridRecommender:
        """Learn from interactions and the item catalogue.

        Parameters
        ----------
        interactions
            ``user_id, item_id`` and optional ``timestamp, event, weight, rating``.
        items
            The catalogue: ``item_id`` and any text/attribute columns. Items with
            no interactions are cold: they are embedded from content alone.
        validation
            Held-out interactions for early stopping (e.g. a cold-start split's
            ``val_warm`` and ``val_cold`` concatenated). Without it, every
            interaction of a random 5% of the items (as new items) and a random 5%
            of the interactions of each user with 5 or more are held out, for early
            stopping and for tuning the new-item weights, then folded back in.
        content
            Precomputed sentence vectors aligned with ``items`` rows (skips encoding),
            e.g. from an embedding store. The attribute part
            (:mod:`~hybrid_rec.content.attributes`) is appended to them here, as to
            encoded ones.
        store
            An embedding store (``hybrid-rec embed``) of this encoder: items whose
            text it holds are read from it, the others encoded (a refit then encodes
            only what changed since the store was last brought up to date).

        A fit that fails (bad input found late, a NaN in training, an interrupt)
        leaves a fitted model as it was before the call.
        """
        previous = dict(self.__dict__)
        try:
            # the encoder's threads too, not only training's; the process's own after
            with torch_threads(self.config.model.threads):
                return self._fit(interactions, items, validation, content, store, show_progress)
        except BaseException:  # bad input found late, a NaN, Ctrl-C: the old model stays
            self.__dict__.clear()
            self.__dict__.update(previous)
            raise

    def _fit(
        self,
        interactions: pd.DataFrame,
        items: pd.DataFrame,
        validation: pd.DataFrame | None,
        content: np.ndarray | None,
        store: EmbeddingStore | str | Path | None,
        show_progress: bool | None,
    ) -> HybridRecommender:
        cfg = self.config
        self.new_item_share_ = None
        catalogue = validate_items(items)
        _warn_of_languages(
            catalogue, self._encoder.name if self._encoder is not None else cfg.content.encoder
        )
        inter = _drop_repeated_events(
            validate_interactions(interactions, catalogue, config=cfg.data)
        )
        self.items_ = catalogue
        self.item_ids_ = IdMap(catalogue[C.item])
        self.removed_ = np.zeros(len(self.item_ids_), dtype=bool)
        self.unlisted_ = np.zeros(len(self.item_ids_), dtype=bool)
        self.attributes_ = AttributeFeatures.fit(catalogue, cfg.content)
        if self.attributes_.dim:
            log.info("attribute features: %r", self.attributes_)
        self.content_ = self.attributes_.append(
            self._content_vectors(catalogue, content, store, show_progress), catalogue
        )
        self.taste_ = ContentTaste.fit(self.content_, cfg.model.taste_dim, seed=cfg.model.seed)
        self.item_taste_ = self.taste_.items(self.content_)
        self.taste_weight_ = self.cold_taste_weight_ = 0.0
        holdout = None
        if validation is None:
            inter, holdout = _internal_holdout(inter, cfg.model.seed)
            validation = holdout
        self.user_ids_ = IdMap.from_values(inter[C.user])
        events = sorted(inter[C.event].unique()) if C.event in inter.columns else ["interaction"]
        self.event_vocab_ = [PAD_EVENT, TASTE_EVENT, PICKED_EVENT, *events]
        self._set_log(inter)
        self.prior_ = (  # a model told to ignore content gets no content prior either
            ContentPrior.fit(self.content_, self.counts_, seed=cfg.model.seed)
            if cfg.model.use_content
            else ContentPrior.none(self.content_.shape[1])
        )
        self.item_prior_ = self.prior_.score(self.content_)
        self.prior_weight_ = 0.0
        torch.manual_seed(cfg.model.seed)
        self.model_ = HybridModel(
            self.content_.shape[1],
            len(self.item_ids_),
            len(self.event_vocab_),
            cfg.model,
            n_users=len(self.user_ids_),
        )
        with torch.no_grad():
            self.model_.fusion.content_mean.copy_(torch.as_tensor(self.content_.mean(axis=0)))
        val_fn = self._validation_fn(validation) if validation is not None else None
        log.info(
            "fitting on %d interactions, %d users, %d items (%d without interactions)",
            len(inter),
            len(self.user_ids_),
            len(self.item_ids_),
            int((self.counts_ == 0).sum()),
        )
        self.train_result_: TrainResult = train_model(
            self.model_,
            self._train_data(self._log),
            cfg.model,
            validate=val_fn,
            show_progress=show_progress,
        )
        self._fitted = True
        self.cold_bias_ = float(cfg.model.cold_offset or 0.0)  # tuning may choose another
        self.neighbour_weight_ = 0.0
        # after training: minutes on a large catalogue (63 s of fold-in at 80,000 items)
        stages = [
            *(("tuning",) * 3 if validation is not None else ()),
            *(("folding in the holdout",) if holdout is not None else ()),
            "building the index",
        ]
        quiet = not progress_enabled(show_progress, logging.getLogger("hybrid_rec"))
        with tqdm(total=len(stages), desc=stages[0], unit="step", disable=quiet) as bar:

            def done() -> None:
                bar.update()
                if bar.n < len(stages):
                    bar.set_description(stages[bar.n])

            # the tuning steps read the vectors, not the index: it is built once, at the end
            self._refresh_vectors(build_index=False)
            if validation is not None:
                self.neighbour_weight_ = self._tune_neighbours(validation)
                if self.neighbour_weight_:
                    self._refresh_vectors(build_index=False)
                done()
                cold_ranking = self._tune_cold_ranking(validation)
                done()
                natural = holdout is not None  # our own holdout: match the cold share
                self.cold_bias_, self.taste_weight_, self.prior_weight_ = self._tune_offsets(
                    validation, natural_share=natural, cold_ranking=cold_ranking
                )
                self.cold_taste_weight_ = (
                    cold_ranking[0] if cold_ranking is not None else self.taste_weight_
                )
                done()
            self.item_item_, self.item_item_weight_, self.item_item_scale_ = None, 0.0, 0.0
            if validation is not None and self._item_item_fits():
                self._tune_item_item(validation)
            if holdout is not None:  # fold the early-stopping interactions back in
                self._absorb(holdout, fold_in=True, refresh=False)
                done()
            if self.item_item_weight_ and holdout is not None:  # on the folded-in log too
                if self._item_item_fits():
                    self.item_item_ = self._fit_item_item()
                else:  # the holdout's items took it past the limit
                    self.item_item_, self.item_item_weight_ = None, 0.0
            self._refresh_vectors()  # the pseudo-cold items, folded in, join the neighbours
            done()
        self.fitted_at_ = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        return self

    def _tune_neighbours(self, validation: pd.DataFrame) -> float:
        """The neighbour-transfer weight (:mod:`hybrid_rec.models.neighbours`) that
        maximises validation Recall@k of items without interactions ranked among
        themselves; the smallest weight within 0.5% of the best. 0 without
        content, neighbours or cold validation items."""
        if not self.config.model.use_content or self.neighbours_.size == 0:
            return 0.0
        found = self._cold_validation(validation)
        if found is None:
            return 0.0
        users, targets, cold = found
        grid = [0.0, 0.25, 0.5, 0.75]
        keep = np.isin(users, self._tuning_users(users, len(cold), len(grid)))
        users, targets = users[keep], targets[keep]
        raw = self.item_vectors_[cold]
        moved = self.neighbours_.matched_targets(raw, self._neighbour_coords(cold)) - raw
        k = self.config.eval.k
        recalls = []
        for weight in grid:
            vecs = self.item_vectors_.copy()
            vecs[cold] = raw + weight * moved
            recalls.append(self._val_recall(self.model_, vecs, users, targets, cold, k, False))
        best, best_recall = _simplest_best(grid, recalls)
        log.info(
            "neighbour weight %.2f (cold validation recall@%d %.4f, without %.4f)",
            best,
            k,
            best_recall,
            recalls[0],
        )
        return best

    def _cold_validation(
        self, validation: pd.DataFrame
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(users, targets, candidates)`` of the validation interactions on items
        without training interactions (internal ids), or None with fewer than two
        such items that the validation names.

        The candidates are the items without training interactions that the
        validation has interactions with: the items that arrived during the
        validation period, as the cold-start protocol ranks a stage's cold items
        (:mod:`hybrid_rec.evaluation.protocol`). An item nobody has touched in
        training or validation (withdrawn, not yet on sale, or a later stage's
        new item) is not one of them: tuned against such items as well, the
        weights fit a ranking nobody serves (on MovieLens-100k validation the
        taste weight came out 0.1 instead of 0.75, cold Recall@20 0.494 against
        0.509).
        """
        cold = np.flatnonzero(self.counts_ == 0)
        val = validation[ids_in(validation[C.user], self.user_ids_.external_ids)]
        val = val[ids_in(val[C.item], self.item_ids_.external_ids[cold])]
        if val[C.item].nunique() < 2:
            return None
        users = self.user_ids_.to_internal(val[C.user], kind="user")
        targets = self.item_ids_.to_internal(val[C.item], kind="item")
        return users, targets, np.unique(targets)

    def _tune_cold_ranking(self, validation: pd.DataFrame) -> tuple[float, float] | None:
        """The content-taste weight of items without interactions, and the weight of
        their predicted popularity, that maximise validation Recall@k of such items
        ranked among themselves (the smallest setting within 0.5% of the best).

        A new item has only its content to go on, so the user's content taste
        (:mod:`hybrid_rec.models.taste`) deserves more weight in its score than
        in a warm item's, whose fused vector already carries behaviour: on
        MovieLens-100k validation the weight that ranks new items best is 0.5-1,
        while warm and new items ranked together want 0.1-0.2 (see
        ``benchmarks/RESULTS.md``). None without cold validation interactions
        (the warm weight then serves both), or when the model ignores content.
        """
        if not self.config.model.use_content:
            return None
        found = self._cold_validation(validation)
        if found is None:
            return None
        users, targets, cold = found
        weights = [0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0] if self.taste_.dim else [0.0]
        prior = self.item_prior_[cold]
        fixed = self.config.model.cold_offset is not None  # no popularity term: see config
        priors = [0.0] if fixed or not prior.any() else [0.0, 0.02, 0.05, 0.1, 0.2]
        grid = [(float(w), float(p)) for p in priors for w in weights]  # simplest first
        uniq = self._tuning_users(users, len(cold), len(grid))
        keep = np.isin(users, uniq)
        pos = np.full(len(self.item_ids_), -1)
        pos[cold] = np.arange(len(cold))
        relevant = np.zeros((len(uniq), len(cold)), dtype=bool)
        relevant[np.searchsorted(uniq, users[keep]), pos[targets[keep]]] = True
        n_rel = relevant.sum(axis=1)
        scores = self.user_vectors()[uniq] @ self.item_vectors_[cold].T
        taste = self._user_taste()[uniq] @ self.item_taste_[cold].T
        k = min(self.config.eval.k, len(cold))
        recalls = [_recall_at(scores + w * taste + p * prior, relevant, n_rel, k) for w, p in grid]
        best, best_recall = _simplest_best(grid, recalls)
        log.info(
            "new items: taste weight %.2f, prior weight %.2f (cold validation recall@%d %.4f)",
            *best,
            k,
            best_recall,
        )
        return best

    def _tuning_users(self, users: np.ndarray, n_items: int, n_settings: int) -> np.ndarray:
        """The distinct ``users`` (sorted) a grid search over ``n_settings`` ranks
        ``n_items`` for: all of them, or a seeded sample small enough that their
        scores take about 200 MB and about 1e9 scores are ranked over the grid."""
        uniq = np.unique(users)
        n = max(1, n_items)
        cap = max(50, min(2000, 50_000_000 // n, 1_000_000_000 // (n * n_settings)))
        if len(uniq) > cap:
            rng = np.random.default_rng(self.config.model.seed)
            uniq = np.sort(rng.choice(uniq, cap, replace=False))
        return uniq

    def _item_item_fits(self) -> bool:
        """Whether the item-item stage applies: on, few enough items with interactions,
        and a catalogue small enough for exact search (where serving scores every item
        anyway; a larger one keeps its FAISS retrieval)."""
        limit = self.config.model.item_item_max_items
        if len(self.item_ids_) > self.config.index.exact_max_items:
            return False
        return 0 < int((np.bincount(self._log["i"].to_numpy()) > 0).sum()) <= limit

    @property
    def _item_item_on(self) -> bool:
        """Whether serving applies the stage: fitted with a weight, and the catalogue
        still within exact search (``add_items`` may grow it past; then FAISS serves)."""
        return (
            self.item_item_ is not None
            and bool(self.item_item_weight_)
            and len(self.item_ids_) <= self.config.index.exact_max_items
        )

    def _fit_item_item(self) -> ItemItem:
        return ItemItem.fit(
            self._log["u"].to_numpy(),
            self._log["i"].to_numpy(),
            len(self.item_ids_),
            self.config.model.item_item_l2,
        )

    def _served_scores(self, users: np.ndarray) -> np.ndarray:
        """Every item's index score for known users (internal ids), before the
        item-item stage: ``(len(users), n_items)``."""
        queries = self._as_query(self._cached_user_vectors(users), self._user_taste()[users])
        return self._scores_all(queries)

    def _item_item_term(
        self,
        users: np.ndarray,
        served: np.ndarray,
        stage: ItemItem | None = None,
        weight: float | None = None,
    ) -> np.ndarray:
        """The item-item stage's addition to ``served`` (:meth:`_served_scores` of
        ``users``): ``w σ (e - ē)`` on the items it places, 0 elsewhere, where ``ē``
        is the mean EASE score of the ``eval.k`` unseen, served placed items ``served``
        ranks first (:mod:`hybrid_rec.models.item_item`)."""
        stage = self.item_item_ if stage is None else stage
        weight = self.item_item_weight_ if weight is None else weight
        n_items = len(self.item_ids_)
        if stage is None or not weight:
            return np.zeros((len(users), n_items), dtype=np.float32)
        seen = [self._seen.row(int(u)) for u in users]
        ease = stage.scores(seen, n_items)
        placed = stage.placed(n_items)
        ranked = np.where((placed & ~self.removed_)[None, :], served, -np.inf)
        for row, items in enumerate(seen):
            ranked[row, items] = -np.inf
        centre = np.zeros(len(users), dtype=np.float32)
        available = np.isfinite(ranked).sum(axis=1)
        n = min(self.config.eval.k, int(available.min())) if len(available) else 0
        if n > 0:
            top = np.argpartition(-ranked, n - 1, axis=1)[:, :n]
            centre = np.take_along_axis(ease, top, axis=1).mean(axis=1)
        term = weight * self.item_item_scale_ * (ease - centre[:, None])
        return np.where(placed[None, :], term, 0.0).astype(np.float32)

    def _tune_item_item(self, validation: pd.DataFrame) -> None:
        """The item-item stage's weight that maximises validation Recall@k over all
        items (the smallest within 0.5% of the best; 0 keeps the stage off)."""
        val = validation[ids_in(validation[C.user], self.user_ids_.external_ids)]
        val = val[ids_in(val[C.item], self.item_ids_.external_ids)]
        if val.empty:
            return
        stage = self._fit_item_item()
        grid = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0]
        uniq, relevant, seen_rows = self._tuning_targets(val, len(grid))
        served = self._served_scores(uniq)
        for r, seen in enumerate(seen_rows):
            served[r, seen] = -np.inf
        n_rel = relevant.sum(axis=1)
        some = n_rel > 0  # users whose every target they had seen: nothing to score
        served, relevant, n_rel, uniq = served[some], relevant[some], n_rel[some], uniq[some]
        seen_rows = [seen for seen, keep in zip(seen_rows, some, strict=True) if keep]
        if not len(uniq):
            return
        n_items = len(self.item_ids_)
        ease = stage.scores(seen_rows, n_items)
        spread_e = float(ease[:, stage.placed(n_items)].std())
        self.item_item_scale_ = (
            float(served[np.isfinite(served)].std()) / spread_e if spread_e > 0 else 0.0
        )
        # the term is linear in the weight: its EASE scores and centres are found once
        unit = self._item_item_term(uniq, served, stage, 1.0)
        k = min(self.config.eval.k, n_items)
        recalls = [_recall_at(served + w * unit, relevant, n_rel, k) for w in grid]
        weight, best = _simplest_best(grid, recalls)
        log.info(
            "item-item weight %.1f (validation recall@%d %.4f, without %.4f)",
            weight,
            k,
            best,
            recalls[0],
        )
        self.item_item_weight_ = float(weight)
        self.item_item_ = stage if weight else None

    def _tuning_targets(
        self, val: pd.DataFrame, n_settings: int
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """For a grid search over ``n_settings`` on ``val`` (known users and items only):
        the users it ranks for (:meth:`_tuning_users`), their relevant items, and the
        items each had seen, which are left out of the ranking and so are no target."""
        users_all = self.user_ids_.to_internal(val[C.user], kind="user")
        items = self.item_ids_.to_internal(val[C.item], kind="item")
        uniq = self._tuning_users(users_all, len(self.item_ids_), n_settings)
        keep = np.isin(users_all, uniq)
        relevant = np.zeros((len(uniq), len(self.item_ids_)), dtype=bool)
        relevant[np.searchsorted(uniq, users_all[keep]), items[keep]] = True
        seen_rows = [self._seen.row(int(u)) for u in uniq]
        for r, seen in enumerate(seen_rows):
            relevant[r, seen] = False
        return uniq, relevant, seen_rows

    def _tune_offsets(
        self,
        validation: pd.DataFrame,
        *,
        natural_share: bool = False,
        cold_ranking: tuple[float, float] | None = None,
    ) -> tuple[float, float, float]:
        """The cold-item score offset, the content-taste weight and the weight of the
        content prior that maximise validation Recall@k when cold and warm items
        are ranked together.

        A model trained on behaviour learns a popularity prior that pushes
        items without evidence below every warm item; one scalar, chosen on
        validation (never test), puts them back in competition
        (``config.model.cold_offset`` fixes it instead). The taste
        weight scales the content-taste term (:mod:`hybrid_rec.models.taste`); the prior
        weight scales each cold item's predicted popularity
        (:mod:`hybrid_rec.models.prior`), added to its offset. With
        ``natural_share`` the cold interactions are subsampled so that their
        share of the validation equals the cold items' share of the catalogue,
        so new items are promoted as much as a typical item deserves, no more.
        With ``cold_ranking`` (``(taste weight, prior weight)`` of items without
        interactions, from :meth:`_tune_cold_ranking`) those two are kept, and
        only the offset and the warm items' taste weight are chosen here.

        Every item without interactions is a candidate here, not only those the
        validation names (as :meth:`_tune_cold_ranking` has it): how far new items
        should be promoted depends on the share of demand they draw, and a
        validation split rarely holds that share. The cold-start split's
        validation gives cold items 56% of its interactions on MovieLens-100k and
        its test 34%; tuned against the named items only, the offset followed
        the 56% and filled 62% of the test lists with long-tail items (all-items
        Recall@20 0.264 against 0.284, see ``benchmarks/RESULTS.md``).
        """
        val = validation[ids_in(validation[C.user], self.user_ids_.external_ids)]
        val = val[ids_in(val[C.item], self.item_ids_.external_ids)]
        cold = self.counts_ == 0
        if natural_share:
            is_cold = cold[self.item_ids_.to_internal(val[C.item], kind="item")]
            n_warm, share = int((~is_cold).sum()), float(cold.mean())
            want = round(share / max(1e-9, 1 - share) * n_warm)
            if 0 < want < int(is_cold.sum()):
                rng = np.random.default_rng(self.config.model.seed)
                drop = rng.choice(np.flatnonzero(is_cold), int(is_cold.sum()) - want, replace=False)
                val = val.drop(val.index[drop])
        items = self.item_ids_.to_internal(val[C.item], kind="item")
        fixed = self.config.model.cold_offset
        if len(items) == 0:
            return float(fixed or 0.0), 0.0, 0.0
        has_cold = bool(cold[items].any()) and not bool(cold[items].all())
        biases = sorted(np.round(np.arange(-0.3, 0.61, 0.05), 2), key=abs) if has_cold else [0.0]
        weights = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5] if self.taste_.dim else [0.0]
        priors = [0.0, 0.02, 0.05, 0.1] if has_cold and self.item_prior_.any() else [0.0]
        if fixed is not None:  # the user's choice, with no predicted-popularity term on top
            biases, priors = [fixed], [0.0]
        if cold_ranking is not None:
            priors = [cold_ranking[1]]
        grid = [  # simplest first
            (float(b), float(w), float(p)) for p in priors for w in weights for b in biases
        ]
        uniq, relevant, seen_rows = self._tuning_targets(val, len(grid))
        scores = self.user_vectors()[uniq] @ self.item_vectors_.T
        taste = self._user_taste()[uniq] @ self.item_taste_.T
        for r, seen in enumerate(seen_rows):
            scores[r, seen] = -np.inf
        k = min(self.config.eval.k, len(self.item_ids_))
        n_rel = relevant.sum(axis=1)
        if not n_rel.all():  # users whose every target they had seen: nothing to score
            scores, taste, relevant = scores[n_rel > 0], taste[n_rel > 0], relevant[n_rel > 0]
            n_rel = n_rel[n_rel > 0]
        if not len(n_rel):
            return float(fixed or 0.0), 0.0, 0.0
        cold_prior = np.where(cold, self.item_prior_, 0.0).astype(np.float32)

        def total(bias: float, weight: float, prior: float) -> np.ndarray:
            cold_weight = weight if cold_ranking is None else cold_ranking[0]
            out = scores + np.where(cold, cold_weight, weight) * taste
            out += bias * cold + prior * cold_prior
            return out

        recalls = [_recall_at(total(*setting), relevant, n_rel, k) for setting in grid]
        # the simplest setting within 0.5% of the best recall: no more promotion than needed
        best, best_recall = _simplest_best(grid, recalls)
        top = np.argpartition(-total(*best), k - 1, axis=1)[:, :k]
        # what a catalogue that wants its new items seen should know: how many places
        # the tuned offset gives them (none: `new_items=` promises some)
        self.new_item_share_ = float(cold[top].mean())
        log.info(
            "cold-item offset %.2f, taste weight %.2f, prior weight %.2f "
            "(validation recall@%d %.4f; items without interactions take %.1f%% of the "
            "places, %.1f%% of the catalogue)",
            *best,
            k,
            best_recall,
            100 * self.new_item_share_,
            100 * float(cold.mean()),
        )
        return best

    def _content_vectors(
        self,
        catalogue: pd.DataFrame,
        content: np.ndarray | None,
        store: EmbeddingStore | str | Path | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        if content is None:
            texts = item_texts(catalogue, self.config.content)
            opened = self._check_store(store)
            ids = catalogue[C.item].tolist()
            return self._sentence_vectors(ids, texts.to_numpy(), opened, show_progress)
        if store is not None:
            raise DataValidationError(
                "pass content vectors or a store, not both.", source="content"
            )
        arr = np.asarray(content, dtype=np.float32)
        if arr.ndim != 2 or len(arr) != len(catalogue):
            raise DataValidationError(
                f"content vectors have shape {arr.shape}, expected ({len(catalogue)}, dim).",
                source="content",
                fix="pass one row per catalogue item, in catalogue order.",
            )
        if not np.isfinite(arr).all():
            raise DataValidationError("content vectors contain NaN/inf.", source="content")
        return arr

    def _set_log(self, inter: pd.DataFrame) -> None:
        """Keep the interaction log (internal ids) and derive counts, histories, seen sets."""
        frame = self._log_rows(inter)
        self._has_time = C.timestamp in inter.columns
        frame["t"] = (
            inter[C.timestamp].to_numpy(np.int64)
            if self._has_time
            else np.arange(len(inter), dtype=np.int64)
        )
        self._log = frame
        self._derive()

    def _log_rows(self, inter: pd.DataFrame) -> pd.DataFrame:
        """Validated interactions as log rows (internal ids; the caller adds ``t``)."""
        return pd.DataFrame(
            {
                "u": self.user_ids_.to_internal(inter[C.user], kind="user"),
                "i": self.item_ids_.to_internal(inter[C.item], kind="item"),
                "w": inter[C.weight].to_numpy(np.float32),
                "e": self._event_ids(inter),
                "r": _ratings(inter),
            }
        )

    def _derive(self, appended_from: int | None = None) -> None:
        """Counts, histories and seen sets from the log; with ``appended_from`` (the
        log's length before rows were appended) only the users of the new rows are
        derived again (the full pass is a quarter of a second at 580,000 rows)."""
        f = self._log
        u, i = f["u"].to_numpy(), f["i"].to_numpy()
        self.counts_ = np.bincount(i, minlength=len(self.item_ids_)).astype(np.int64)
        if appended_from is None:
            self.histories_: Histories = build_histories(
                u,
                i,
                f["e"].to_numpy(),
                f["t"].to_numpy() if self._has_time else None,
                len(self.user_ids_),
                self.config.model.history_len,
            )
            self._seen = _Seen.build(u, i, len(self.user_ids_))
        else:
            new = slice(appended_from, None)
            self._seen = self._seen.appended(u[new], i[new], len(self.user_ids_))
            rows = self._seen.log_rows_of(u[new])
            self.histories_ = rebuild_users(
                self.histories_,
                u[rows],
                i[rows],
                f["e"].to_numpy()[rows],
                f["t"].to_numpy()[rows],
                len(self.user_ids_),
            )
        # rating_range is read for every explanation: derived here, not a scan each time
        rated = f["r"].dropna()
        self._rating_range = (float(rated.min()), float(rated.max())) if len(rated) else None
        self._user_vectors: np.ndarray | None = None
        self._user_done = np.zeros(0, dtype=bool)
        self._user_tastes: np.ndarray | None = None
        self._popular = None  # the recent counts of this log (_popularity)

    def _event_ids(self, inter: pd.DataFrame) -> np.ndarray:
        vocab = {e: n for n, e in enumerate(self.event_vocab_)}
        if C.event not in inter.columns:
            return np.full(len(inter), vocab.get("interaction", vocab[PICKED_EVENT]))
        return inter[C.event].map(lambda e: vocab.get(e, vocab[PICKED_EVENT])).to_numpy(np.int64)

    def _train_data(self, frame: pd.DataFrame) -> TrainData:
        return TrainData(
            content=self.content_,
            counts=self.counts_,
            histories=self.histories_,
            users=frame["u"].to_numpy(),
            items=frame["i"].to_numpy(),
            weights=frame["w"].to_numpy(np.float32),
            times=(
                frame["t"].to_numpy(np.int64)
                if self.config.model.causal_history and self._has_time
                else None
            ),
        )

    def _validation_fn(self, validation: pd.DataFrame) -> Any:
        """Early-stopping score: mean of warm Recall@k (among warm items, train
        positives excluded) and cold Recall@k (among items with no training
        interactions, or — with no cold items — among CF-dropped warm items)."""
        val = validate_interactions(validation, self.items_, config=self.config.data)
        known = ids_in(val[C.user], self.user_ids_.external_ids)
        if not known.any():
            raise DataValidationError(
                f"none of the {val[C.user].nunique()} validation user(s) is in the training "
                "interactions, so early stopping would have nothing to score.",
                source="validation",
                column=C.user,
                fix="hold out some interactions of training users (or pass no validation: "
                "5% of each user's interactions is then held out automatically).",
            )
        val = val[known]
        users = self.user_ids_.to_internal(val[C.user], kind="user")
        items = self.item_ids_.to_internal(val[C.item], kind="item")
        k = self.config.eval.k
        counts = self.counts_
        warm_items = np.flatnonzero(counts > 0)
        cold_items = np.flatnonzero(counts == 0)
        is_cold = counts[items] == 0
        # a warm target the user has in training is left out of the ranking (seen), so
        # it could never be hit: not a target, as in the evaluation protocol (a view
        # trained on, its purchase held out)
        n_items = len(self.item_ids_)
        pair = users.astype(np.int64) * n_items + items
        trained = self._log["u"].to_numpy(np.int64) * n_items + self._log["i"].to_numpy()
        hit = is_cold | ~np.isin(pair, trained)
        users, items, is_cold, pair = users[hit], items[hit], is_cold[hit], pair[hit]
        # a pair's view, cart and purchase are one target, not three
        first = np.sort(np.unique(pair, return_index=True)[1])
        users, items, is_cold = users[first], items[first], is_cold[first]
        rng = np.random.default_rng(self.config.model.seed)

        def _sample(u: np.ndarray, i: np.ndarray, cap: int = 3000) -> tuple[np.ndarray, np.ndarray]:
            users_u = np.unique(u)
            if len(users_u) > cap:
                keep = np.isin(u, rng.choice(users_u, cap, replace=False))
                return u[keep], i[keep]
            return u, i

        warm_u, warm_i = _sample(users[~is_cold], items[~is_cold])
        cold_u, cold_i = _sample(users[is_cold], items[is_cold])

        def score(model: HybridModel) -> float:
            vecs, _ = model.encode_items(self.content_, counts)
            parts = []
            if len(warm_u):
                parts.append(self._val_recall(model, vecs, warm_u, warm_i, warm_items, k, True))
            if len(cold_u):
                parts.append(self._val_recall(model, vecs, cold_u, cold_i, cold_items, k, False))
            else:  # no cold items: rank the warm targets with content-only item vectors
                content_only, _ = model.encode_items(self.content_, np.zeros_like(counts))
                parts.append(
                    self._val_recall(
                        model,
                        vecs,
                        warm_u,
                        warm_i,
                        warm_items,
                        k,
                        True,
                        candidates_vecs=content_only,
                    )
                )
            return float(np.mean(parts)) if parts else 0.0

        return score

    def _val_recall(
        self,
        model: HybridModel,
        vecs: np.ndarray,
        users: np.ndarray,
        targets: np.ndarray,
        candidates: np.ndarray,
        k: int,
        exclude_seen: bool,
        candidates_vecs: np.ndarray | None = None,
    ) -> float:
        uniq, inv = np.unique(users, return_inverse=True)
        cand_vecs = (candidates_vecs if candidates_vecs is not None else vecs)[candidates]
        pos = np.full(len(self.item_ids_), -1)
        pos[candidates] = np.arange(len(candidates))
        kk = min(k, len(candidates))
        top_items = np.empty((len(uniq), kk), dtype=np.int64)
        # users in blocks of about VAL_SCORE_BLOCK scores: 3,000 users against 50,000
        # new items was one 2.3 GB matrix per epoch
        block = max(1, VAL_SCORE_BLOCK // max(1, len(candidates)))
        for start in range(0, len(uniq), block):
            part = uniq[start : start + block]
            uvecs, _ = model.encode_users(vecs, UserBatch.from_histories(self.histories_, part))
            scores = uvecs @ cand_vecs.T
            if exclude_seen:
                for row, u in enumerate(part):
                    cols = pos[self._seen.row(int(u))]
                    scores[row, cols[cols >= 0]] = -np.inf
            top = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
            top_items[start : start + len(part)] = candidates[top]
        hits = np.zeros(len(uniq))
        total = np.bincount(inv, minlength=len(uniq)).astype(float)
        for row, t in zip(inv, targets, strict=True):
            hits[row] += t in top_items[row]
        return float(np.mean(hits / total))

    def _refresh_vectors(
        self, items: np.ndarray | None = None, *, build_index: bool = True
    ) -> None:
        """Recompute fused item vectors (all, or ``items``) and the index (unless a
        full refresh is told not to build it: ``fit`` builds it once, at the end)."""
        if items is None or not hasattr(self, "index_"):
            vecs, weights = self.model_.encode_items(self.content_, self.counts_)
            self.neighbours_ = self._neighbour_base(vecs)
            self.item_vectors_ = self._blend(vecs, np.arange(len(vecs)))
            self.fusion_weights_ = weights
            if build_index:
                self._build_index()
        else:  # only those items: encode them only, not the whole catalogue
            vecs, weights = self.model_.encode_items(
                self.content_[items], self.counts_[items], ids=items
            )
            # neighbour-base items lend their vectors as they are now, found by their text now
            self.neighbours_.update(items, vecs, self._neighbour_coords(items))
            self.item_vectors_[items] = self._blend(vecs, items)
            self.fusion_weights_[items] = weights
            self.index_.update(items, self._index_vectors(items))
        self._user_vectors = None

    def _neighbour_base(self, vecs: np.ndarray) -> NeighbourTransfer:
        """The items with interactions and their (unblended) fused vectors ``vecs``."""
        cfg = self.config.model
        if not cfg.use_content or cfg.neighbours == 0:
            return NeighbourTransfer.empty(
                vecs.shape[1], self._coords_of(self.content_[:0]).shape[1]
            )
        warm = np.flatnonzero(self.counts_ > 0)
        return NeighbourTransfer(
            warm,
            vecs[warm],
            self._neighbour_coords(warm),
            cfg.neighbours,
            cfg.neighbour_temperature,
            self.config.index,
        )

    def _coords_of(self, content: np.ndarray) -> np.ndarray:
        """Where content neighbours are looked for: the content-taste coordinates
        (centred content in its top principal components; on MovieLens-100k
        validation they found better neighbours than the raw sentence vectors,
        cold Recall@20 0.494 against 0.478), or the centred content without them."""
        if self.taste_.dim:
            return self.taste_.items(content)
        return np.asarray(content, np.float32) - self.taste_.mean

    def _neighbour_coords(self, items: np.ndarray) -> np.ndarray:
        """:meth:`_coords_of` catalogue ``items`` (internal ids), cached taste rows if any."""
        if self.taste_.dim:
            return self.item_taste_[items]
        return self._coords_of(self.content_[items])

    def _blend(self, vecs: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Catalogue items' fused vectors ``vecs`` blended with their content neighbours'."""
        return self.neighbours_.blend(
            vecs, self._neighbour_coords(items), self.counts_[items], self.neighbour_weight_, items
        )

    def _blend_new(self, vecs: np.ndarray, content: np.ndarray) -> np.ndarray:
        """Fused vectors ``vecs`` of items without interactions, from ``content``,
        blended with their content neighbours' (as a catalogue item with none is)."""
        zeros = np.zeros(len(content), np.int64)
        return self.neighbours_.blend(vecs, self._coords_of(content), zeros, self.neighbour_weight_)

    def _index_vectors(self, items: np.ndarray) -> np.ndarray:
        """Item vectors as indexed (see :meth:`_as_index`)."""
        return self._as_index(
            self.item_vectors_[items],
            self.item_taste_[items],
            self.counts_[items] == 0,
            self.item_prior_[items],
        )

    def _as_index(
        self, vectors: np.ndarray, taste: np.ndarray, cold: np.ndarray, prior: np.ndarray
    ) -> np.ndarray:
        """``[fused vector, taste weight × content coordinates, cold offset]``: a user
        query ``[user vector, user taste, 1]`` scores ``u·v + w·t·c + offset``. The
        offset of an item without interactions is the cold bias plus the prior
        weight times its content prior; warm items have none."""
        weight, offset = self._index_terms(cold, prior)
        return np.concatenate([vectors, weight[:, None] * taste, offset[:, None]], axis=1)

    def _index_terms(self, cold: np.ndarray, prior: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per item, the weight of its content coordinates and its score offset: the
        cold taste weight and the cold bias plus the prior weight times its content
        prior for an item without interactions; the taste weight and none for others."""
        offset = self.cold_bias_ + self.prior_weight_ * np.asarray(prior, np.float32)
        weight = np.where(cold, self.cold_taste_weight_, self.taste_weight_)
        return weight.astype(np.float32), np.where(cold, offset, 0.0).astype(np.float32)

    def _as_query(self, vectors: np.ndarray, taste: np.ndarray | None = None) -> np.ndarray:
        """User vectors (and their content tastes) as index queries. Item-to-item
        queries pass no taste: they match fused vectors only, with no offsets."""
        n, dim = vectors.shape
        out = np.zeros((n, dim + self.taste_.dim + 1), dtype=np.float32)
        out[:, :dim] = vectors
        if taste is not None:
            out[:, dim:-1] = taste
            out[:, -1] = 1.0
        return out

    def _user_taste(self) -> np.ndarray:
        """Content tastes of every known user from their whole log (cached)."""
        if self._user_tastes is not None:
            return self._user_tastes
        with self._cache_lock:
            if self._user_tastes is None:
                self._user_tastes = self.taste_.users(
                    self.item_taste_,
                    self._log["u"].to_numpy(),
                    self._log["i"].to_numpy(),
                    len(self.user_ids_),
                )
            return self._user_tastes

    @_reads
    def user_queries(self) -> np.ndarray:
        """Every known user as an index query ``[user vector, taste, 1]``: the inner
        product with an item's index row (:meth:`item_index_vectors`) is its score."""
        return self._as_query(self.user_vectors(), self._user_taste())

    @_reads
    def item_index_vectors(self, content: np.ndarray) -> np.ndarray:
        """Index rows for items with no interactions, from their content vectors."""
        return self._as_index(
            self._blend_new(self._new_item_vectors(content), content),
            self.taste_.items(content),
            np.ones(len(content), dtype=bool),
            self.prior_.score(content),
        )

    # ================================================================ helpers

    def _check_fitted(self) -> None:
        if not self._fitted:
            raise NotFittedError("this HybridRecommender is not fitted: call fit() or load().")

    def _check_k(self, k: int, n: int, *, of_users: bool = False) -> int:
        """``k`` checked and capped at the ``n`` candidates (0: nothing passes the
        filters, and the caller returns an empty frame); ``of_users``: the candidates
        are users (:meth:`score_cold_items`)."""
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or k <= 0:
            raise DataValidationError(f"k must be a positive integer, got {k!r}.", source="k")
        if n == 0:
            self._note("empty", "no item passes the candidates/filters given; the result is empty.")
        elif k > n and of_users:
            self._note("k users", "k=%d is larger than the %d users; at most %d per item.", k, n, n)
        elif k > n:
            self._note(
                "k items",
                "k=%d is larger than the %d candidate items; at most %d per query "
                "(fewer where seen or liked items are left out).",
                k,
                n,
                n,
            )
        return int(min(k, n))

    def _note(self, kind: str, message: str, *args: object) -> None:
        """Log what a request asked for that could not be (a filter matching nothing, k
        past the candidates): a warning the first time this recommender meets ``kind``,
        then at debug level, so a service's ordinary requests do not flood its log. A
        batch job that warned before its chunks says nothing per chunk."""
        if _K_WARNED.get():
            return
        first = kind not in self._noted
        self._noted.add(kind)
        log.log(logging.WARNING if first else logging.DEBUG, message, *args)

    def _user_vectors_for(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model_.encode_users(
            self.item_vectors_, UserBatch.from_histories(self.histories_, users)
        )

    @_reads
    def user_vectors(self) -> np.ndarray:
        """Vectors of every known user (cached until feedback changes them)."""
        self._check_fitted()
        return self._cached_user_vectors(np.arange(len(self.user_ids_)), copy=False)

    def _cached_user_vectors(self, users: np.ndarray, *, copy: bool = True) -> np.ndarray:
        """Vectors of known users ``users`` (internal ids). Each is computed on first
        use and kept until feedback or a refit changes it, so a serving process pays
        for the user tower once per user, not once per request."""
        vectors, done = self._user_vectors, self._user_done
        if vectors is None or not done[users].all():
            # readers fill the cache one at a time: two filling it at once could pair one
            # reader's fresh array with the other's done flags
            with self._cache_lock:
                if self._user_vectors is None:  # reset by _derive() and _refresh_vectors()
                    n, dim = len(self.user_ids_), self.config.model.dim
                    self._user_done = np.zeros(n, dtype=bool)
                    self._user_vectors = np.zeros((n, dim), np.float32)
                vectors, done = self._user_vectors, self._user_done
                todo = np.unique(users[~done[users]])
                for s in range(0, len(todo), 4096):
                    part = todo[s : s + 4096]
                    vectors[part] = self._user_vectors_for(part)[0]
                    done[part] = True  # after the rows: a reader that sees it finds them
        return vectors[users] if copy else vectors

    def _allowed(
        self, candidates: Sequence[str] | None, filters: Filters | None
    ) -> np.ndarray | None:
        mask = filter_mask(self.items_, filters)
        if candidates is not None:
            cand = np.zeros(len(self.item_ids_), dtype=bool)
            cand[self.item_ids_.to_internal(id_list(candidates), kind="item")] = True
            mask = cand if mask is None else mask & cand
        if self.removed_.any():  # removed items are never served, whatever else is asked
            mask = ~self.removed_ if mask is None else mask & ~self.removed_
        return mask

    def _check_new_items(self, new_items: int, k: int) -> int:
        """``new_items`` checked: a whole number from 0 to ``k`` (a ``k`` that is not
        a positive integer is :meth:`_check_k`'s to report)."""
        ok = isinstance(new_items, int | np.integer) and not isinstance(new_items, bool)
        bound = k if isinstance(k, int | np.integer) and not isinstance(k, bool) else None
        if not ok or new_items < 0 or (bound is not None and new_items > max(bound, 0)):
            raise DataValidationError(
                f"new_items must be a whole number from 0 to k ({k}), got {new_items!r}.",
                source="new_items",
            )
        return int(new_items)

    def _search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        allowed: np.ndarray | None,
        exclude: list[np.ndarray] | None,
        new_items: int = 0,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The index's top ``k``, with ``new_items`` places reserved for items
        without interactions (:func:`~hybrid_rec.index.slots.reserve_slots`)."""
        scores, ids = self.index_.search(queries, k, allowed=allowed, exclude=exclude)
        if not new_items:
            return scores, ids
        fresh = self._fresh(allowed)
        if not fresh.any():
            return scores, ids
        extra_scores, extra_ids = self.index_.search(
            queries, new_items, allowed=fresh, exclude=exclude
        )
        return reserve_slots(scores, ids, extra_scores, extra_ids, fresh, new_items)

    def _item_item_search(
        self,
        users: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        exclude: list[np.ndarray] | None,
        new_items: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_search` with the item-item stage: every item scored exactly (the
        stage runs on catalogues of at most ``item_item_max_items`` warm items)."""
        found_scores, found = [], []
        for s in range(0, len(users), _ITEM_ITEM_CHUNK):
            part = users[s : s + _ITEM_ITEM_CHUNK]
            served = self._served_scores(part)
            served += self._item_item_term(part, served)
            for row in range(len(part)):
                ex = [exclude[s + row]] if exclude is not None else None
                top_scores, top_ids = self._exact_search(served[row], k, allowed, ex, new_items)
                found_scores.append(top_scores)
                found.append(top_ids)
        return np.concatenate(found_scores), np.concatenate(found)

    def _fresh(self, allowed: np.ndarray | None) -> np.ndarray:
        """The allowed items without interactions (``new_items`` places go to them);
        :meth:`_allowed` leaves out removed items, and is None when nothing is."""
        fresh = self.counts_ == 0
        return fresh & allowed if allowed is not None else fresh

    def _scores_all(self, queries: np.ndarray) -> np.ndarray:
        """Every item's index score for queries ``[u, taste, 1]`` (one per row),
        ``(len(queries), n_items)`` float32, computed exactly and without building the
        index rows (:meth:`_as_index`)."""
        dim = self.item_vectors_.shape[1]
        weight, offset = self._index_terms(self.counts_ == 0, self.item_prior_)
        scores = queries[:, :dim] @ self.item_vectors_.T
        scores += (queries[:, dim:-1] @ self.item_taste_.T) * weight[None, :]
        scores += queries[:, -1:] * offset[None, :]
        return np.asarray(scores, dtype=np.float32)

    def _exact_search(
        self,
        scores: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        exclude: list[np.ndarray] | None,
        new_items: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_search` for one query whose every score is given: the top ``k`` of
        the allowed, not excluded items, with ``new_items`` places reserved."""
        scores = np.asarray(scores, np.float32).copy()
        if allowed is not None:
            scores[~allowed] = -np.inf
        if exclude:
            scores[np.concatenate(exclude)] = -np.inf

        def top(values: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
            """Best first, padded with -inf / -1 as the index pads."""
            have = min(n, int(np.isfinite(values).sum()))
            best = np.argpartition(-values, have - 1)[:have] if have else np.zeros(0, np.int64)
            best = best[np.argsort(-values[best], kind="stable")]
            out_scores = np.full((1, n), -np.inf, np.float32)
            out_ids = np.full((1, n), -1, np.int64)
            out_scores[0, :have], out_ids[0, :have] = values[best], best
            return out_scores, out_ids

        found_scores, found = top(scores, k)
        if not new_items:
            return found_scores, found
        fresh = self._fresh(allowed)
        if not fresh.any():
            return found_scores, found
        extra_scores, extra = top(np.where(fresh, scores, -np.inf), new_items)
        return reserve_slots(found_scores, found, extra_scores, extra, fresh, new_items)

    def _frame(
        self,
        query_ids: np.ndarray,
        scores: np.ndarray,
        ids: np.ndarray,
        query_col: str,
        result_col: str,
        result_map: IdMap,
    ) -> pd.DataFrame:
        valid = ids >= 0
        rows = np.repeat(np.arange(len(query_ids)), valid.sum(axis=1))
        ranks = (
            np.concatenate([np.arange(1, v + 1) for v in valid.sum(axis=1)])
            if len(rows)
            else np.zeros(0, dtype=np.int64)
        )
        return pd.DataFrame(
            {
                query_col: query_ids[rows].astype(str),
                result_col: result_map.to_external(ids[valid]).astype(str),
                C.score: scores[valid].astype(np.float32),
                C.rank: ranks.astype(np.int64),
            }
        )

    def _empty_frame(self, query_col: str, result_col: str) -> pd.DataFrame:
        """No results, with the columns and dtypes of :meth:`_frame`'s."""
        none = np.zeros((0, 0), dtype=np.int64)
        return self._frame(
            np.zeros(0, dtype=object),
            none.astype(np.float32),
            none,
            query_col,
            result_col,
            self.item_ids_,
        )

    # ================================================================ serving

    @_reads
    def recommend(
        self,
        users: Sequence[str] | str,
        k: int = 10,
        *,
        candidates: Sequence[str] | None = None,
        exclude_seen: bool = True,
        filters: Filters | None = None,
        unknown_users: Literal["error", "popular", "skip"] = "error",
        explain: bool | int = False,
        new_items: int = 0,
    ) -> pd.DataFrame:
        """Top-``k`` items for known users.

        Parameters
        ----------
        users
            External user ids.
        candidates
            Restrict results to these item ids.
        exclude_seen
            Leave out items the user already interacted with.
        filters
            Attribute filters, e.g. ``{"genres": "Drama", "price": ("<", 20)}``.
        unknown_users
            ``"error"`` (default) raises :class:`UnknownIdError`; ``"popular"``
            serves unknown users the most popular allowed items (the new-user
            path with no information; their score is the item's interaction count
            over the top item's, in [0, 1]); ``"skip"`` leaves them out.
        explain
            ``True`` (top 3 per user) or a number of ranks: adds an ``explanation``
            column, generated in one batch where the backend allows.
        new_items
            At least this many of each known user's ``k`` items are items without
            interactions (new arrivals), where enough of them pass the filters:
            the best-scored ones take the places of the lowest-scored other items
            (:mod:`hybrid_rec.index.slots`). 0 (default) ranks every item by
            score alone. Unknown users served popular items get none.

        Returns
        -------
        pandas.DataFrame
            ``user_id, item_id, score, rank``.
        """
        self._check_fitted()
        _check_choice(unknown_users, "unknown_users", UNKNOWN_USERS)
        top = _explain_ranks(explain)
        user_list = id_list(users)
        codes = self.user_ids_.lookup(user_list)
        unknown = [u for u, c in zip(user_list, codes, strict=True) if c < 0]
        if unknown and unknown_users == "error":
            raise UnknownIdError(
                f"unknown user(s): {', '.join(map(repr, unknown[:5]))}"
                f"{' ...' if len(unknown) > 5 else ''}. Use recommend_for_new_user() for a new "
                "user, or recommend(..., unknown_users='popular')."
            )
        allowed = self._allowed(candidates, filters)
        return self._recommend_codes(
            user_list, codes, k, allowed, exclude_seen, unknown_users, top, new_items
        )

    def _recommend_codes(
        self,
        user_list: list[str],
        codes: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
        exclude_seen: bool,
        unknown_users: str,
        top: int,
        new_items: int,
    ) -> pd.DataFrame:
        """:meth:`recommend` once the users are looked up and the filters evaluated
        (``recommend_batch`` evaluates them once for all its chunks)."""
        unknown = [u for u, c in zip(user_list, codes, strict=True) if c < 0]
        n_cand = int(allowed.sum()) if allowed is not None else len(self.item_ids_)
        new_items = self._check_new_items(new_items, k)
        k = self._check_k(k, n_cand)
        known = codes >= 0
        frames = []
        if known.any() and k:
            q_users = codes[known]
            uvecs = self._cached_user_vectors(q_users)
            exclude = [self._seen.row(int(u)) for u in q_users] if exclude_seen else None
            if self._item_item_on:
                scores, ids = self._item_item_search(q_users, k, allowed, exclude, new_items)
            else:
                scores, ids = self._search(
                    self._as_query(uvecs, self._user_taste()[q_users]),
                    k,
                    allowed=allowed,
                    exclude=exclude,
                    new_items=new_items,
                )
            frames.append(
                self._frame(
                    np.asarray(user_list, dtype=object)[known],
                    scores,
                    ids,
                    C.user,
                    C.item,
                    self.item_ids_,
                )
            )
        if top and frames:  # the known users' lists; the popular fallback has no history
            from hybrid_rec.explain import add_explanations

            frames[0] = add_explanations(self, frames[0], top=top)
        if unknown and unknown_users == "popular" and k:
            popular = self._popular_for(np.asarray(unknown, dtype=object), k, allowed)
            frames.append(popular.assign(explanation=None) if top else popular)
        if not frames:
            out = self._empty_frame(C.user, C.item)
            return out.assign(explanation=pd.Series(dtype=object)) if top else out
        out = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        if len(frames) == 1 and known.all():
            return out  # already in the callers' user order, best first
        order = {u: n for n, u in enumerate(user_list)}
        return out.sort_values(
            [C.user, C.rank], key=lambda s: s.map(order) if s.name == C.user else s, kind="stable"
        ).reset_index(drop=True)

    @_reads
    def score(self, users: Sequence[str], items: Sequence[str]) -> np.ndarray:
        """Dense (len(users), len(items)) scores (cosine of user and item vectors).

        For evaluation and re-ranking; use :meth:`recommend` for retrieval.
        """
        self._check_fitted()
        u = self.user_ids_.to_internal(id_list(users), kind="user")
        i = self.item_ids_.to_internal(id_list(items), kind="item")
        if self._item_item_on:  # the stage needs each user's whole ranking
            out = np.empty((len(u), len(i)), dtype=np.float32)
            for s in range(0, len(u), _ITEM_ITEM_CHUNK):
                part = u[s : s + _ITEM_ITEM_CHUNK]
                served = self._served_scores(part)
                out[s : s + len(part)] = (served + self._item_item_term(part, served))[:, i]
            return out
        queries = self._as_query(self.user_vectors()[u], self._user_taste()[u])
        return np.asarray(queries @ self._index_vectors(i).T, dtype=np.float32)

    def _popular_for(self, users: np.ndarray, k: int, allowed: np.ndarray | None) -> pd.DataFrame:
        pop = self._popularity()
        if allowed is not None:
            pop = np.where(allowed, pop, -np.inf)
        top = np.argsort(-pop, kind="stable")[:k]
        top = top[np.isfinite(pop[top])]
        # on a scale like the cosine scores beside them, not log counts: each item's
        # interactions as a share of the most popular allowed item's, in [0, 1]
        scores = (np.maximum(pop[top], 0) / max(float(pop[top[:1]].max(initial=0)), 1.0)).astype(
            np.float32
        )
        return self._frame(
            users,
            np.tile(scores, (len(users), 1)),
            np.tile(top, (len(users), 1)),
            C.user,
            C.item,
            self.item_ids_,
        )

    def _popularity(self) -> np.ndarray:
        """Interactions per item: all of them, or those of the last ``popular_days`` of
        the log (a log without timestamps has no days: all of them)."""
        days = self.config.model.popular_days
        if days is None or not self._has_time or self._log.empty:
            return self.counts_.astype(np.float64)
        # counted once per state of the log (_derive forgets them), not per anonymous
        # visitor; add_items lengthens the catalogue without changing the log
        cached = self._popular
        if cached is not None and cached[0] == days and len(cached[1]) == len(self.item_ids_):
            return cached[1]
        t = self._log["t"].to_numpy()
        recent = t >= t.max() - days * 86_400
        items = self._log["i"].to_numpy()[recent]
        counts = np.bincount(items, minlength=len(self.item_ids_)).astype(np.float64)
        self._popular = (days, counts)
        return counts

    @_reads
    def recommend_for_new_user(
        self,
        liked_items: Sequence[str] = (),
        text: str | None = None,
        k: int = 10,
        *,
        filters: Filters | None = None,
        exclude_liked: bool = True,
        new_items: int = 0,
    ) -> pd.DataFrame:
        """Recommendations for someone with no history: a few liked items and/or a taste in words.

        The liked items and the text (embedded by the content encoder and fused
        like a brand-new item) become the history the user tower attends over.
        ``new_items`` reserves places for items without interactions, as in
        :meth:`recommend`.

        Returns
        -------
        pandas.DataFrame
            ``item_id, score, rank``.
        """
        self._check_fitted()
        liked = id_list(liked_items)
        if text is not None and not isinstance(text, str):
            raise DataValidationError(
                f"the taste description must be text, got {type(text).__name__}.",
                source="recommend_for_new_user",
            )
        text = (text or "").strip()
        if not liked and not text:
            raise DataValidationError(
                "a new user needs at least one liked item or a taste description.",
                source="recommend_for_new_user",
                fix="pass liked_items=[...] and/or text='...'.",
            )
        if len(text) > self.config.content.max_chars:
            text = text[: self.config.content.max_chars]
        liked_codes = self.item_ids_.to_internal(liked, kind="item") if liked else np.zeros(0, int)
        taste = self.item_taste_[liked_codes].sum(axis=0)
        table = self.item_vectors_
        hist = list(liked_codes[::-1][: self.config.model.history_len])
        events = [self.event_vocab_.index(PICKED_EVENT)] * len(hist)
        text_taste = None
        if text:
            query_v = self.attributes_.pad(encode_queries(self.encoder, [text]))
            table = np.concatenate([table, self._new_item_vectors(query_v)])
            text_taste = self.taste_.items(query_v)[0]
            taste = taste + text_taste
            hist = [len(self.item_vectors_), *hist][: self.config.model.history_len]
            events = [self.event_vocab_.index(TASTE_EVENT), *events][: len(hist)]
        batch = UserBatch(
            np.asarray([hist]),
            np.asarray([events]),
            np.zeros((1, len(hist)), np.int64),
            np.zeros(1, np.int64),
            False,
        )
        uvec, _ = self.model_.encode_users(table, batch)
        allowed = self._allowed(None, filters)
        n_cand = int(allowed.sum()) if allowed is not None else len(self.item_ids_)
        new_items = self._check_new_items(new_items, k)
        k = self._check_k(k, n_cand)
        if not k:
            return self._empty_frame(C.user, C.item).drop(columns=[C.user])
        exclude = [np.unique(liked_codes)] if exclude_liked and len(liked_codes) else None
        taste = taste / max(float(np.linalg.norm(taste)), 1e-12)
        query = self._as_query(uvec, taste[None, :].astype(np.float32))
        if text_taste is not None and self.config.model.text_weight > 0:
            # the words count for every item alike, known or new: the index weighs
            # content differently for the two (both tuned for users with a history),
            # so this one query is scored exactly
            bonus = self.config.model.text_weight * (self.item_taste_ @ text_taste)
            scores, ids = self._exact_search(
                self._scores_all(query)[0] + bonus, k, allowed, exclude, new_items
            )
        else:
            scores, ids = self._search(
                query, k, allowed=allowed, exclude=exclude, new_items=new_items
            )
        out = self._frame(
            np.asarray(["new"], dtype=object), scores, ids, C.user, C.item, self.item_ids_
        )
        return out.drop(columns=[C.user])

    def _new_item_vectors(self, content: np.ndarray) -> np.ndarray:
        """Fused vectors of items with no interactions (same network, no CF evidence)."""
        with torch.no_grad():
            n = len(content)
            vecs, _ = self.model_.items_forward(
                torch.as_tensor(content),
                torch.zeros(n, dtype=torch.long),
                torch.zeros(n, dtype=torch.long),
                torch.zeros(n, dtype=torch.bool),
            )
        return vecs.numpy().astype(np.float32)

    def _embed_new_items(
        self, new_items: pd.DataFrame, store: EmbeddingStore | None = None
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Validate and embed new items; with a ``store``, items whose text it already
        holds a vector for (same sha256) are read from it, not encoded again."""
        frame, texts = new_item_texts(new_items, self.config.content)
        vectors = self._sentence_vectors(frame[C.item].tolist(), np.asarray(texts), store)
        return frame, self.attributes_.append(vectors, frame)

    def _sentence_vectors(
        self,
        ids: list[str],
        texts: np.ndarray,
        store: EmbeddingStore | None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """The encoder's vectors of ``texts``: read from ``store`` where it holds the
        item's text (same sha256), encoded otherwise."""
        asked = {} if show_progress is None else {"show_progress": show_progress}

        def encode(some: list[str]) -> np.ndarray:
            return self.encoder.encode(some, **asked)

        if store is None:
            return np.asarray(encode(list(texts)), dtype=np.float32)
        return store.vectors_for(ids, list(texts), encode)

    def _check_store(self, store: EmbeddingStore | str | Path | None) -> EmbeddingStore | None:
        """Open ``store`` and check that its vectors come from this model's encoder."""
        if store is None:
            return None
        opened = store if isinstance(store, EmbeddingStore) else EmbeddingStore.open(store)
        # a loaded model knows its encoder's name without building it: a store that holds
        # every new item then spares the model load too
        opened.check_encoder(self._encoder_name())
        return opened

    @_writes
    def add_items(
        self, new_items: pd.DataFrame, *, store: EmbeddingStore | str | Path | None = None
    ) -> np.ndarray:
        """Add brand-new items: embedded, fused and retrievable at once, with no refit.

        Returns the new items' internal ids. Ids already in the catalogue are an error.
        With a ``store`` (as in :meth:`score_cold_items`), items whose text it holds are
        read from it instead of being encoded again.
        """
        self._check_fitted()
        frame, content = self._embed_new_items(new_items, self._check_store(store))
        dup = self.item_ids_.lookup(frame[C.item]) >= 0
        if dup.any():
            raise DataValidationError(
                f"item(s) already in the catalogue: {frame[C.item][dup].tolist()[:5]}.",
                source="new items",
                column=C.item,
                rows=np.flatnonzero(dup),
                fix="add only new ids; change an item with `update_items`, and bring a "
                "removed one back with `restore_items`.",
            )
        return self._apply_add(self._typed_like_items(frame), content)

    def _apply_add(self, frame: pd.DataFrame, content: np.ndarray) -> np.ndarray:
        """Append validated, embedded new items already typed like the catalogue
        (:meth:`_typed_like_items`); no encoder call or check: cannot fail midway."""
        n_old = len(self.item_ids_)
        keys = self._warn_repeated_texts(frame)
        self.item_ids_ = self.item_ids_.add_ids(frame[C.item])
        self.items_ = pd.concat([self.items_, frame], ignore_index=True)
        if keys is not None:  # the catalogue's keys, kept up to date for the next add
            self._text_keys = (self.items_, *keys)
        # spare room in the arrays' buffers: one item at a time copies no catalogue array
        self.content_ = append_rows(self.content_, content)
        self.item_taste_ = append_rows(self.item_taste_, self.taste_.items(content))
        self.item_prior_ = append_rows(self.item_prior_, self.prior_.score(content))
        self.counts_ = append_rows(self.counts_, np.zeros(len(frame), np.int64))
        self.removed_ = append_rows(self.removed_, np.zeros(len(frame), dtype=bool))
        self.unlisted_ = append_rows(self.unlisted_, np.zeros(len(frame), dtype=bool))
        self.model_.grow(len(frame))
        vecs, weights = self.model_.encode_items(content, np.zeros(len(frame), np.int64))
        vecs = self._blend_new(vecs, content)
        self.item_vectors_ = append_rows(self.item_vectors_, vecs)
        self.fusion_weights_ = append_rows(self.fusion_weights_, weights)
        ids = self.index_.add(self._index_vectors(np.arange(n_old, len(self.item_ids_))))
        assert ids[0] == n_old
        log.info("added %d new item(s); catalogue now %d", len(frame), len(self.item_ids_))
        return ids

    def _article_keys(self, frame: pd.DataFrame) -> np.ndarray | None:
        """One hash per row of its title and free-text columns (0 where all are empty),
        None when the catalogue has no such column."""
        names = {str(c).lower() for c in (*TITLE_COLUMNS, *FREE_TEXT_COLUMNS)}
        columns = [c for c in self.items_.columns if str(c).lower() in names]
        if not columns:
            return None
        text = frame.reindex(columns=columns).astype("string").fillna("")
        keys = pd.util.hash_pandas_object(text, index=False).to_numpy()
        return np.where((text == "").all(axis=1).to_numpy(), np.uint64(0), keys)

    def _warn_repeated_texts(self, frame: pd.DataFrame) -> tuple[np.ndarray, dict[int, int]] | None:
        """Warn when new items repeat the title and text of items already in the
        catalogue (a re-published article under a new id: both would be served, side by
        side in some lists); returns the catalogue's keys with the new items', and each
        key's first item."""
        new = self._article_keys(frame)
        if new is None:
            return None
        cached = self._text_keys
        if cached is not None and cached[0] is self.items_:
            old, first = cached[1], cached[2]
        else:  # hashed once, then extended by each add (0.7 s at 200,000 items)
            catalogue = self._article_keys(self.items_)
            assert catalogue is not None  # same columns as the new items'
            old, first = catalogue, {}
            for n, key in enumerate(old.tolist()):
                first.setdefault(key, n)
        position = np.full(len(new), -1, dtype=np.int64)
        for r, key in enumerate(new.tolist()):
            at = first.get(key, -1) if key else -1
            if at >= 0 and self.removed_[at]:  # the first one is removed: a live one?
                live = np.flatnonzero((old == key) & ~self.removed_[: len(old)])
                at = int(live[0]) if len(live) else -1
            position[r] = at
        repeated = position >= 0
        if repeated.any():
            pairs = [
                f"{frame[C.item].iloc[r]!r} = {self.item_ids_.external_ids[position[r]]!r}"
                for r in np.flatnonzero(repeated)[:3]
            ]
            log.warning(
                "%d new item(s) have the same title and text as an item already in the "
                "catalogue (%s%s): both will be recommended, sometimes in one list. Remove "
                "the copy (remove_items / hybrid-rec remove-items) or give it text of its own.",
                int(repeated.sum()),
                ", ".join(pairs),
                " ..." if repeated.sum() > 3 else "",
            )
        for n, key in enumerate(new.tolist(), start=len(old)):
            first.setdefault(key, n)
        return append_rows(old, new), first

    @_writes
    def update_items(
        self, changed: pd.DataFrame, *, store: EmbeddingStore | str | Path | None = None
    ) -> np.ndarray:
        """Apply changed item records (new price, description, tags …) with no refit.

        ``changed`` holds ``item_id`` and the columns that changed: the values
        given replace the item's, columns left out keep theirs (an empty cell
        clears that value). Each item's text is rendered and embedded again and
        its vector recomputed with the behaviour evidence it already has, so
        recommendations, filters (a new price) and explanations follow at once.
        Ids not in the catalogue raise :class:`~hybrid_rec.errors.UnknownIdError`
        and change nothing (:meth:`add_items` adds new ones). The taste, prior
        and content-neighbour models themselves are refreshed by the next
        :meth:`fit`. Returns the internal ids of the updated items.
        """
        self._check_fitted()
        frame = validate_items(changed, source=source_name(changed, "changed items"))
        codes, merged = self._merged_rows(frame)
        self._require_text(merged, "changed item(s)")
        merged, content = self._embed_new_items(merged, self._check_store(store))
        return self._apply_update(codes, merged, content)

    def _apply_update(
        self, codes: np.ndarray, merged: pd.DataFrame, content: np.ndarray
    ) -> np.ndarray:
        """Write embedded changed records in place (no encoder call: cannot fail midway)."""
        items = self.items_.reset_index(drop=True)  # row = internal id
        kept = items.drop(index=codes)
        self.items_ = pd.concat([kept, merged.set_axis(codes)]).sort_index()
        self.content_[codes] = content
        self.item_taste_[codes] = self.taste_.items(content)
        self.item_prior_[codes] = self.prior_.score(content)
        self._user_tastes = None  # users with these items in their history taste anew
        self._refresh_vectors(codes)
        log.info("updated %d item(s)", len(codes))
        return codes

    def _merged_rows(self, frame: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Internal ids of a validated frame of known items, and their records with
        the frame's columns replacing theirs."""
        codes = self.item_ids_.to_internal(frame[C.item].tolist(), kind="item")
        merged = self.items_.iloc[codes].reset_index(drop=True)
        typed = self._typed_like_items(frame)
        for col in frame.columns.drop(C.item):
            merged[col] = typed[col].set_axis(merged.index)  # keeps Int64 (.to_numpy: floats)
        return codes, merged

    def _typed_like_items(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each column the catalogue already has converted to its type.

        A catalogue fitted from a DataFrame holds numbers; the same columns read from
        a CSV later hold text (``"12.5"``). Mixed in one column they broke saving and
        the numeric filters; so text joins a numeric column as numbers (a cell that is
        not one is an error naming the column), and numbers join a text column as text.
        """
        out = frame.copy()
        for col in frame.columns.drop(C.item):
            if col not in self.items_.columns:
                continue
            ours, new = self.items_[col], frame[col]
            if pd.api.types.is_numeric_dtype(ours) and not pd.api.types.is_bool_dtype(ours):
                if pd.api.types.is_numeric_dtype(new):
                    out[col] = _cast_like(new, ours.dtype)
                    continue
                text = new.astype("string").str.strip()
                parsed = pd.to_numeric(text.where(text != ""), errors="coerce")
                bad = text.notna() & (text != "") & parsed.isna()
                if bad.any():
                    source = frame.attrs.get("source", "items")
                    raise _refused_cells(
                        new, bad, col, "is numeric", "a number", source, frame[C.item]
                    )
                out[col] = _cast_like(parsed, ours.dtype)
            elif pd.api.types.is_datetime64_any_dtype(ours):
                source = frame.attrs.get("source", "items")
                out[col] = _as_dates_like(new, ours.dtype, col, source, frame[C.item])
            elif pd.api.types.is_numeric_dtype(new) and not pd.api.types.is_bool_dtype(new):
                out[col] = pd.Series(
                    [None if t == "" else t for t in _comparable(new)],
                    index=new.index,
                    dtype=object,
                )
        return out

    def _require_text(self, frame: pd.DataFrame, what: str) -> None:
        """Refuse items whose record would render no text at all (nothing to place them by)."""
        if frame.empty:
            return
        empty = (item_texts(frame, self.config.content).str.strip() == "").to_numpy()
        if empty.any():
            ids = frame[C.item][empty].astype(str).tolist()
            raise DataValidationError(
                f"{what} {', '.join(map(repr, ids[:5]))}{' ...' if len(ids) > 5 else ''} would "
                "have no text at all, so there would be nothing to place them by. Nothing changed.",
                source=frame.attrs.get("source", "items"),
                column=C.item,
                fix="give each item a title, description or attributes.",
            )

    @_writes
    def sync_catalogue(
        self,
        catalogue: pd.DataFrame,
        *,
        store: EmbeddingStore | str | Path | None = None,
        remove_missing: bool = True,
        max_removed_share: float = 0.5,
    ) -> CatalogueSync:
        """Make the model's catalogue match today's full catalogue, with no refit.

        Ids new to the model are added (:meth:`add_items`), items whose record
        differs in any column the file has are updated (:meth:`update_items`)
        and, with ``remove_missing``, items the file no longer lists stop being
        served (as :meth:`remove_items` does; they stay in users' histories).
        Such an item listed again on a later day is served again; an item taken
        out with :meth:`remove_items` (sold out, say, while the file still
        lists it) stays out until :meth:`restore_items`.

        Everything is checked before anything changes: a sync that would remove
        more than ``max_removed_share`` of the items being served (and more than
        10) raises :class:`~hybrid_rec.errors.DataValidationError`, since a file
        holding only part of the catalogue would otherwise empty the model. Pass
        ``max_removed_share=1`` when that is meant.
        """
        self._check_fitted()
        frame = validate_items(catalogue, source=source_name(catalogue, "catalogue"))
        frame.index = pd.RangeIndex(len(frame))  # an error names the file's rows, not a subset's
        codes = self.item_ids_.lookup(frame[C.item])
        is_new = codes < 0
        known = frame[~is_new]
        old = self.items_.iloc[codes[~is_new]]
        differs = np.zeros(len(known), dtype=bool)
        for col in known.columns.drop(C.item):
            ours = old[col] if col in old.columns else pd.Series(None, index=old.index)
            differs |= _comparable(known[col]) != _comparable(ours)
        listed = np.zeros(len(self.item_ids_), dtype=bool)
        listed[codes[~is_new]] = True
        missing = np.flatnonzero(~listed & ~self.removed_) if remove_missing else np.zeros(0, int)
        back = np.flatnonzero(listed & self.unlisted_)  # never undoes a remove_items
        served = int((~self.removed_).sum())
        if len(missing) > max(10, max_removed_share * served):
            raise DataValidationError(
                f"the catalogue lists {int(listed.sum())} of the model's items: syncing would "
                f"stop serving {len(missing)} of the {served} served now. Nothing changed.",
                source=frame.attrs.get("source", "catalogue"),
                fix="pass the whole catalogue; or max_removed_share=1 (CLI: --allow-mass-removal) "
                "if so many items really left; or remove_missing=False (--keep-missing) to only "
                "add and update.",
            )
        self._check_columns_kept(known, old, max_removed_share, frame.attrs.get("source"))
        # everything is checked and embedded before anything changes
        opened = self._check_store(store)
        new = self._typed_like_items(frame[is_new])
        codes_changed, merged = self._merged_rows(known[differs])
        self._require_text(new, "new item(s)")
        self._require_text(merged, "changed item(s)")
        if len(merged):
            merged, changed_content = self._embed_new_items(merged, opened)
        if len(new):
            new, new_content = self._embed_new_items(new, opened)
        if len(merged):
            self._apply_update(codes_changed, merged, changed_content)
        if len(new):
            self._apply_add(new, new_content)
        self.removed_[missing] = self.unlisted_[missing] = True
        self.removed_[back] = self.unlisted_[back] = False
        result = CatalogueSync(
            added=len(new),
            updated=len(merged),
            unchanged=len(known) - len(merged),
            removed=len(missing),
            restored=len(back),
        )
        log.info("catalogue synced: %s", result)
        return result

    def _check_columns_kept(
        self, known: pd.DataFrame, old: pd.DataFrame, max_share: float, source: str | None
    ) -> None:
        """Refuse a catalogue that empties a column the model holds for more than
        ``max_share`` of the items it lists (and more than 10): an export that blanked
        every title would otherwise wipe them. A column named like one of the model's
        but for case is a new column: say so."""
        for col in known.columns.drop(C.item):
            if col not in old.columns:
                twins = [c for c in old.columns if str(c).casefold() == str(col).casefold()]
                if twins:
                    log.warning(
                        "catalogue column %r is new to the model, which has %r: the names "
                        "differ in case, so both are kept (rename it to update %r)",
                        col,
                        twins[0],
                        twins[0],
                    )
                continue
            emptied = int((_blank(known[col]) & ~_blank(old[col])).sum())
            if emptied > max(10, max_share * len(known)):
                raise DataValidationError(
                    f"column {col!r} is empty for {emptied} of the {len(known)} listed items "
                    "that have a value in the model: syncing would erase those values. "
                    "Nothing changed.",
                    source=source or "catalogue",
                    column=str(col),
                    fix="check the export; or max_removed_share=1 (CLI: --allow-mass-removal) "
                    "if the values really went.",
                )

    @_writes
    def remove_items(self, item_ids: Sequence[str] | str) -> int:
        """Stop serving items (sold out, withdrawn, retired), with no refit.

        A removed item is left out of every result — :meth:`recommend`,
        :meth:`recommend_batch`, :meth:`recommend_for_new_user`, :meth:`similar_items`,
        the popular fallback — even when ``candidates`` names it. It stays in the
        model: users' histories keep it (what they liked still shapes their taste),
        :meth:`score` and :meth:`explain` still answer for it, and
        :meth:`restore_items` serves it again, and :meth:`sync_catalogue` leaves it
        out even while the catalogue file still lists it. Saved with the model; a
        refit (:meth:`fit`) starts from the catalogue it is given, so leave removed
        items out of that (or remove them again).

        Returns how many of the items were not removed already (removing one twice
        changes nothing, so a retried job is harmless). Unknown ids raise
        :class:`~hybrid_rec.errors.UnknownIdError` and remove nothing.
        """
        return self._set_removed(item_ids, True)

    @_writes
    def restore_items(self, item_ids: Sequence[str] | str) -> int:
        """Serve items removed by :meth:`remove_items` again (back in stock).

        Returns how many of them were removed. Unknown ids raise
        :class:`~hybrid_rec.errors.UnknownIdError` and restore nothing.
        """
        return self._set_removed(item_ids, False)

    def _set_removed(self, item_ids: Sequence[str] | str, removed: bool) -> int:
        self._check_fitted()
        codes = np.unique(self.item_ids_.to_internal(id_list(item_ids), kind="item"))
        changed = int((self.removed_[codes] != removed).sum())
        self.removed_[codes] = removed
        self.unlisted_[codes] = False  # taken out (or back) by hand, not by a sync
        log.info(
            "%s %d item(s); %d removed in all",
            "removed" if removed else "restored",
            changed,
            int(self.removed_.sum()),
        )
        return changed

    @property
    @_reads
    def removed_items(self) -> list[str]:
        """External ids of the items :meth:`remove_items` took out of service."""
        self._check_fitted()
        return [str(i) for i in self.item_ids_.to_external(np.flatnonzero(self.removed_))]

    @_reads
    def text_match(self, text: str) -> float:
        """How closely a taste in words matches the catalogue: the highest cosine
        similarity between ``text``, embedded as :meth:`recommend_for_new_user` embeds
        a taste, and the content vector of a served item (the encoder's part of it,
        attribute features aside; removed items left out).

        A low value says the words match no item closely (gibberish, or a taste the
        catalogue does not cover), so recommendations from them are broad picks. The
        scale is the encoder's: compare values from one encoder only. -1 when no
        item is served.
        """
        self._check_fitted()
        if not isinstance(text, str) or not text.strip():
            raise DataValidationError(
                f"text_match needs some text, got {text!r:.40}.",
                source="text_match",
                fix="pass the taste description as a non-empty string.",
            )
        query = encode_queries(self.encoder, [text.strip()[: self.config.content.max_chars]])
        served = ~self.removed_
        if not served.any():
            return -1.0
        # a view of the text columns: no copy of the catalogue's vectors per call
        vectors = self.content_[:, : self.content_.shape[1] - self.attributes_.dim]
        norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors)) * float(np.linalg.norm(query[0]))
        cosines = (vectors @ query[0]) / np.maximum(norms, 1e-12)
        return float(cosines[served].max())

    @overload
    def score_cold_items(
        self,
        new_items: pd.DataFrame | str | Path,
        k: int = ...,
        *,
        chunk_size: int = ...,
        output: None = ...,
        overwrite: bool = ...,
        resume: bool = ...,
        on_existing: Literal["score", "skip", "error"] = ...,
        store: EmbeddingStore | str | Path | None = ...,
        show_progress: bool | None = ...,
    ) -> pd.DataFrame: ...

    @overload
    def score_cold_items(
        self,
        new_items: pd.DataFrame | str | Path,
        k: int = ...,
        *,
        chunk_size: int = ...,
        output: str | Path,
        overwrite: bool = ...,
        resume: bool = ...,
        on_existing: Literal["score", "skip", "error"] = ...,
        store: EmbeddingStore | str | Path | None = ...,
        show_progress: bool | None = ...,
    ) -> BatchReport: ...

    @_reads  # type: ignore[misc]  # mypy reads the overloads against the wrapper
    def score_cold_items(
        self,
        new_items: pd.DataFrame | str | Path,
        k: int = 100,
        *,
        chunk_size: int = 1024,
        output: str | Path | None = None,
        overwrite: bool = False,
        resume: bool = True,
        on_existing: Literal["score", "skip", "error"] = "score",
        store: EmbeddingStore | str | Path | None = None,
        show_progress: bool | None = None,
    ) -> pd.DataFrame | BatchReport:
        """For each new item, the ``k`` users most likely to want it.

        The items are embedded and fused (without being added to the catalogue)
        and scored against every known user ``chunk_size`` items at a time: an
        exact top-``k`` by inner product (:class:`~hybrid_rec.batch.TopK`, a blocked
        multiply feeding per-item heaps). Memory holds one chunk of items and
        their results, whatever the number of items.

        Parameters
        ----------
        new_items
            A frame, or a CSV / TSV / Parquet / JSON Lines file, then read a chunk at a time.
        output
            A ``.parquet`` path: results are written as they come, a crashed run
            resumes where it stopped (see :mod:`hybrid_rec.batch`), and a
            :class:`~hybrid_rec.batch.BatchReport` is returned instead of the frame.
        overwrite
            Replace an existing ``output``, and discard an unfinished run into it
            that had another input or other parameters (otherwise both are errors).
        resume
            Continue an unfinished run into ``output`` (default), or start it again.
        on_existing
            Items whose id is already in the model: ``"score"`` them from their
            content like new ones (default; the app does this right after
            :meth:`add_items`), ``"skip"`` them (counted in the log and the
            report), or ``"error"``.
        store
            An embedding store (or its directory) filled by ``hybrid-rec embed`` /
            ``scripts/reembed_catalog.py`` with this model's encoder: items whose
            text it holds a vector for are read from it instead of being encoded
            again (a nightly re-embed then makes scoring skip the encoder). Items
            it lacks, or whose text changed, are encoded as usual.

        Returns
        -------
        pandas.DataFrame or BatchReport
            ``item_id, user_id, score, rank`` (best first for each item), or, with
            ``output``, what was written.
        """
        self._check_fitted()
        table = InputTable(new_items)
        skip = self._items_to_skip(table, on_existing)
        opened = self._check_store(store)
        users = self.user_queries()
        scorer = TopK(users, self._check_k(k, len(users), of_users=True))
        user_ids = pa.array(self.user_ids_.external_ids, pa.string())

        def process(chunk: pd.DataFrame, first_row: int) -> pa.Table:
            frame = validate_items(chunk, source=table.name)
            keep = ~ids_in(frame[C.item], skip)
            frame = frame[keep].reset_index(drop=True)
            if frame.empty:
                scores, top = np.zeros((0, scorer.k), np.float32), np.zeros((0, scorer.k), int)
            else:
                with input_rows(first_row + np.flatnonzero(keep)):
                    frame, content = self._embed_new_items(frame, opened)
                scores, top = scorer(self.item_index_vectors(content))
            ids = frame[C.item].to_numpy()
            return topk_table(ids, scores, top, user_ids, C.item, C.user)

        if output is None:
            return collect(table, process, chunk_size=chunk_size, show_progress=show_progress)
        params = {
            "job": "score_cold_items",
            "k": scorer.k,
            "on_existing": on_existing,
            "encoder": self.encoder.name,
            "model": self._fingerprint(),
        }
        return write_parquet(
            table,
            process,
            output,
            schema=result_schema(C.item, C.user),
            chunk_size=chunk_size,
            params=params,
            overwrite=overwrite,
            resume=resume,
            skipped=len(skip),
            desc="scoring new items",
            show_progress=show_progress,
        )

    def _items_to_skip(self, table: InputTable, on_existing: str) -> pd.Index:
        """Check the new items' ids (present, unique) before any work; the ids to leave out."""
        _check_choice(on_existing, "on_existing", ("score", "skip", "error"))
        ids = validate_items(pd.DataFrame({C.item: table.column(C.item)}), source=table.name)
        known = (self.item_ids_.lookup(ids[C.item]) >= 0) if on_existing != "score" else None
        if known is None or not known.any():
            return pd.Index([], dtype=object)
        if on_existing == "error":
            raise DataValidationError(
                f"{int(known.sum())} item(s) are already in the model, e.g. "
                f"{ids[C.item][known].tolist()[:3]}.",
                source=table.name,
                column=C.item,
                rows=np.flatnonzero(known),
                fix="score only new items, or pass on_existing='skip' (--on-existing skip) to "
                "leave them out, or 'score' to score them from their content as if new.",
            )
        log.warning("skipping %d item(s) already in the model", int(known.sum()))
        return pd.Index(ids[C.item][known])

    @overload
    def recommend_batch(
        self,
        users: Sequence[str] | None = ...,
        k: int = ...,
        *,
        output: None = ...,
        chunk_size: int = ...,
        candidates: Sequence[str] | None = ...,
        exclude_seen: bool = ...,
        filters: Filters | None = ...,
        unknown_users: Literal["error", "popular", "skip"] = ...,
        new_items: int = ...,
        overwrite: bool = ...,
        resume: bool = ...,
        show_progress: bool | None = ...,
    ) -> pd.DataFrame: ...

    @overload
    def recommend_batch(
        self,
        users: Sequence[str] | None = ...,
        k: int = ...,
        *,
        output: str | Path,
        chunk_size: int = ...,
        candidates: Sequence[str] | None = ...,
        exclude_seen: bool = ...,
        filters: Filters | None = ...,
        unknown_users: Literal["error", "popular", "skip"] = ...,
        new_items: int = ...,
        overwrite: bool = ...,
        resume: bool = ...,
        show_progress: bool | None = ...,
    ) -> BatchReport: ...

    @_reads  # type: ignore[misc]  # mypy reads the overloads against the wrapper
    def recommend_batch(
        self,
        users: Sequence[str] | None = None,
        k: int = 10,
        *,
        output: str | Path | None = None,
        chunk_size: int = 1024,
        candidates: Sequence[str] | None = None,
        exclude_seen: bool = True,
        filters: Filters | None = None,
        unknown_users: Literal["error", "popular", "skip"] = "error",
        new_items: int = 0,
        overwrite: bool = False,
        resume: bool = True,
        show_progress: bool | None = None,
    ) -> pd.DataFrame | BatchReport:
        """Top-``k`` items for many users (every known user by default), in chunks.

        Each chunk of ``chunk_size`` users goes through :meth:`recommend` (same
        index, filters and exclusions, same results); ``output``, ``overwrite``
        and ``resume`` work as in :meth:`score_cold_items`. Unknown users are
        checked before any work.

        Returns
        -------
        pandas.DataFrame or BatchReport
            ``user_id, item_id, score, rank`` in the users' order, or, with
            ``output``, what was written.
        """
        self._check_fitted()
        _check_choice(unknown_users, "unknown_users", UNKNOWN_USERS)
        if users is None:
            ids = self.user_ids_.external_ids.astype(str)
        else:
            ids = np.asarray(id_list(users), dtype=str)
        unknown = ids[self.user_ids_.lookup(list(ids)) < 0]
        if len(unknown) and unknown_users == "error":
            raise UnknownIdError(
                f"{len(unknown)} unknown user(s), e.g. "
                f"{', '.join(map(repr, unknown[:5].tolist()))}. Pass "
                "unknown_users='skip' to leave them out or 'popular' to give them popular items."
            )
        if not len(ids) and output is None:
            return self.recommend([], k)
        allowed = self._allowed(candidates, filters)
        new_items = self._check_new_items(new_items, k)
        self._check_k(k, int(allowed.sum()) if allowed is not None else len(self.item_ids_))
        table = InputTable(pd.DataFrame({C.user: ids}))

        def process(chunk: pd.DataFrame, first_row: int) -> pd.DataFrame:
            token = _K_WARNED.set(True)  # warned once above, not once per chunk
            try:
                user_list = id_list(list(chunk[C.user]))
                codes = self.user_ids_.lookup(user_list)
                return self._recommend_codes(
                    user_list, codes, k, allowed, exclude_seen, unknown_users, 0, new_items
                )
            finally:
                _K_WARNED.reset(token)

        if output is None:
            return collect(table, process, chunk_size=chunk_size, show_progress=show_progress)
        params = {
            "job": "recommend_batch",
            "k": k,
            "candidates": _digest(sorted(map(str, candidates))) if candidates else None,
            "exclude_seen": exclude_seen,
            "filters": json.loads(json.dumps(filters, sort_keys=True, default=str)),
            "unknown_users": unknown_users,
            "index": self.index_.kind,
            "model": self._fingerprint(),
        }
        if new_items:  # only when set: a run started before the option existed still resumes
            params["new_items"] = new_items
        return write_parquet(
            table,
            process,
            output,
            schema=result_schema(C.user, C.item),
            chunk_size=chunk_size,
            params=params,
            overwrite=overwrite,
            resume=resume,
            skipped=len(unknown) if unknown_users == "skip" else 0,
            desc="recommending",
            show_progress=show_progress,
        )

    def _fingerprint(self) -> str:
        """sha256 of what batch results depend on — weights, fused item vectors, the
        interaction log (user vectors follow from it), cold offset, content prior and
        neighbour base, the catalogue's columns (filters read them) and attribute
        features, the ids, config — so that a resumed batch job is refused if the
        model changed in between (an update of prices alone used to pass)."""
        digest = hashlib.sha256()
        for name, tensor in sorted(self.model_.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().numpy().tobytes())
        # the content vectors and the taste model, not the item tastes they give: a load
        # computes those for all items at once, add_items for the new rows, and the last
        # bits of a matrix product depend on how many rows it has
        arrays = [self.item_vectors_, self.content_, self.taste_.mean, self.taste_.basis]
        arrays += [self.counts_, self.removed_, self.unlisted_]
        arrays += [self.prior_.mean, self.prior_.coef]
        arrays += [self.neighbours_.ids, self.neighbours_.vectors]
        arrays += [self._log[col].to_numpy() for col in self._log.columns]
        catalogue = self.items_.map(_cell_text)  # as saved: the same before and after a load
        arrays.append(pd.util.hash_pandas_object(catalogue, index=False).to_numpy())
        for arr in arrays:
            digest.update(np.ascontiguousarray(arr).tobytes())
        for ids in (self.user_ids_.external_ids, self.item_ids_.external_ids, catalogue.columns):
            digest.update("\x1f".join(map(str, ids)).encode())
        digest.update(json.dumps(self.attributes_.to_dict(), sort_keys=True).encode())
        sizes = [self.cold_bias_, self.taste_weight_, self.prior_weight_, self.neighbour_weight_]
        sizes.append(self.cold_taste_weight_)
        sizes += [len(self.user_ids_), len(self.item_ids_)]
        digest.update(json.dumps([sizes, self.config.model_dump(mode="json")]).encode())
        return digest.hexdigest()

    @_reads
    def similar_items(
        self, item_ids: Sequence[str] | str, k: int = 10, *, filters: Filters | None = None
    ) -> pd.DataFrame:
        """Nearest items to each given item in the fused space (itself excluded).

        Returns ``item_id, similar_item_id, score, rank``.
        """
        self._check_fitted()
        ids = id_list(item_ids)
        codes = self.item_ids_.to_internal(ids, kind="item")
        allowed = self._allowed(None, filters)
        n_cand = int(allowed.sum()) if allowed is not None else len(self.item_ids_) - 1
        k = self._check_k(k, n_cand)
        if not k:
            return self._empty_frame(C.item, "similar_item_id")
        scores, found = self.index_.search(
            self._as_query(self.item_vectors_[codes]),
            k,
            allowed=allowed,
            exclude=[np.array([c]) for c in codes],
        )
        return self._frame(
            np.asarray(ids, dtype=object), scores, found, C.item, "similar_item_id", self.item_ids_
        )

    # ================================================================ feedback

    @_writes
    def partial_fit(
        self,
        new_interactions: pd.DataFrame,
        *,
        fold_in: bool = True,
        unknown_items: Literal["error", "drop"] | None = None,
    ) -> HybridRecommender:
        """Fold new feedback in without a full retrain.

        New interactions join the users' histories (new users are created), so
        their vectors move at once. With timestamps, a row already in the model
        (same user, item, event and timestamp) is skipped, so feeding the same
        file twice changes nothing. Items that were cold or lightly seen (fewer
        than 10 interactions) get their CF vector fitted on the new feedback
        with everything else frozen, and their evidence count — which steers
        the fusion attention from content toward behaviour — is updated.

        ``unknown_items`` overrides ``[data] unknown_items`` for this call: ``"drop"``
        leaves out, with a warning, the rows of items the model does not hold (a nightly
        file with events on items not added yet) instead of refusing the whole file.
        What validation left out is in :attr:`feedback_report_`.
        """
        self._check_fitted()
        if isinstance(new_interactions, pd.DataFrame) and new_interactions.empty:
            missing = [c for c in (C.user, C.item) if c not in new_interactions.columns]
            if missing:
                raise DataValidationError(
                    f"new interactions lack column(s) {missing} (columns present: "
                    f"{list(map(str, new_interactions.columns))}).",
                    source="partial_fit",
                    fix="name the columns user_id and item_id.",
                )
            self.feedback_report_ = ValidationReport()  # a quiet minute: nothing to fold in
            return self
        data_cfg = self.config.data
        if unknown_items is not None:
            _check_choice(unknown_items, "unknown_items", ("error", "drop"))
            data_cfg = data_cfg.model_copy(update={"unknown_items": unknown_items})
        report = ValidationReport()
        inter = validate_interactions(new_interactions, self.items_, config=data_cfg, report=report)
        self.feedback_report_ = report
        self._warn_of_padded_ids(inter[C.user])
        return self._absorb(inter, fold_in=fold_in)

    def _warn_of_padded_ids(self, users: pd.Series) -> None:
        """Ids are text, so ``00042`` is not user ``42``: right (codes keep their zeros),
        but another export's formatting is the likelier cause. Say so."""
        new = pd.Index(users.unique()).astype(str)
        new = new[self.user_ids_.lookup(list(new)) < 0]
        new = new[new.str.fullmatch(r"\d+")]
        if not len(new):
            return
        known = pd.Index(self.user_ids_.external_ids).astype(str)
        stripped = set(known[known.str.fullmatch(r"\d+")].str.lstrip("0"))
        same = [u for u in new if u.lstrip("0") in stripped]
        if same:
            log.warning(
                "%d new user id(s) equal known ones but for leading zeros, e.g. %r: they "
                "are new users (ids are text). If they are the same people, write their "
                "ids as the model has them.",
                len(same),
                same[0],
            )

    def _absorb(
        self, inter: pd.DataFrame, *, fold_in: bool, refresh: bool = True
    ) -> HybridRecommender:
        """Add validated interactions to the log, fold in lightly-seen items, refresh
        the touched items' vectors (unless the caller refreshes everything after)."""
        self._check_log_columns(inter)  # before anything changes: a refused file changes nothing
        before = self.counts_.copy()
        self.user_ids_ = self.user_ids_.add_ids(inter[C.user])
        n_events = len(self.event_vocab_)
        new_events = [
            e
            for e in (inter[C.event].unique() if C.event in inter.columns else [])
            if e not in self.event_vocab_
        ]
        if new_events:
            log.warning("unseen event type(s) %s are treated as '%s'", new_events, PICKED_EVENT)
        old_log = self._log
        self._set_log_append(inter)
        if self.config.model.user_embedding:  # new users start with no learned residual
            self.model_.user_emb.grow(len(self.user_ids_) - self.model_.user_emb.n_items)
        touched = np.unique(self._log["i"].to_numpy()[len(old_log) :])
        light = touched[before[touched] < LIGHTLY_SEEN]
        if fold_in and len(light):
            self._fold_in(light, self._log.iloc[len(old_log) :])
        assert len(self.event_vocab_) == n_events
        if refresh:
            self._refresh_vectors(touched)
        return self

    def _check_log_columns(self, inter: pd.DataFrame) -> None:
        if (C.timestamp in inter.columns) != self._has_time:
            raise DataValidationError(
                "new interactions must have a timestamp column exactly when the training "
                "data had one.",
                source="partial_fit",
                column=C.timestamp,
            )

    def _set_log_append(self, inter: pd.DataFrame) -> None:
        has_time = C.timestamp in inter.columns
        part = self._log_rows(inter)
        last = int(self._log["t"].max()) if len(self._log) else 0
        part["t"] = (
            inter[C.timestamp].to_numpy(np.int64)
            if has_time
            else np.arange(last + 1, last + 1 + len(inter), dtype=np.int64)
        )
        if has_time:  # a re-sent file (a retried nightly job) must not count twice
            key = ["u", "i", "e", "t"]
            fresh = ~part.duplicated(key).to_numpy()
            # only the rows of the same users can match (not a pass over the whole log)
            theirs = self._log.iloc[self._seen.log_rows_of(part["u"].to_numpy())]
            fresh &= ~pd.MultiIndex.from_frame(part[key]).isin(
                pd.MultiIndex.from_frame(theirs[key])
            )
            if not fresh.all():
                log.warning(
                    "%d interaction(s) already in the model were skipped (same user, item, "
                    "event and timestamp)",
                    int((~fresh).sum()),
                )
                part = part[fresh]
        tastes = self._user_tastes
        before = len(self._log)
        self._log = pd.concat([self._log, part], ignore_index=True)
        self._derive(appended_from=before)
        if tastes is not None:  # a taste is a sum: only the users with new rows change
            self._user_tastes = self._tastes_updated(tastes, part["u"].to_numpy())

    def _tastes_updated(self, tastes: np.ndarray, users: np.ndarray) -> np.ndarray:
        """``tastes`` (of the users known before) with ``users`` computed again from
        their whole log, and new users added (0.3 s for every user at 580,000 rows)."""
        out = np.zeros((len(self.user_ids_), tastes.shape[1]), dtype=tastes.dtype)
        out[: len(tastes)] = tastes
        rows = self._log.iloc[self._seen.log_rows_of(users)]
        # in the touched users' and items' own numbering: a sum over every user and a
        # copy of every item's coordinates took 0.1 s at 40,000 users and 80,000 items
        touched, local = np.unique(rows["u"].to_numpy(), return_inverse=True)
        items, item_local = np.unique(rows["i"].to_numpy(), return_inverse=True)
        out[touched] = self.taste_.users(self.item_taste_[items], local, item_local, len(touched))
        return out

    def _fold_in(self, items: np.ndarray, feedback: pd.DataFrame) -> None:
        """Re-fit the CF rows of ``items`` on ``feedback``, every other weight frozen.

        Only those rows are parameters (:meth:`CollaborativeEmbeddings.learning_rows`):
        the optimiser updates ``len(items)`` rows a step, not the whole table (at 80,000
        items that was a third of a one-event fold-in)."""
        frozen = list(self.model_.parameters())
        try:
            for p in frozen:
                p.requires_grad_(False)
            part = feedback[feedback["i"].isin(items)]
            # no weight decay: it would pull the rows toward zero, feedback or not
            changes = {"cf_dropout": 0.0, "weight_decay": 0.0}
            cfg = ModelConfig(**{**self.config.model.model_dump(), **changes})
            data = self._train_data(part)
            # every other item keeps the vector it is served with: a step runs the item
            # tower on the learning rows, not on 8,192 negatives (2.4 s for one event at
            # 200,000 items)
            data.frozen = np.ascontiguousarray(self.item_vectors_, dtype=np.float32)
            data.learning = np.zeros(len(self.item_vectors_), dtype=bool)
            data.learning[items] = True
            # the same feedback folds in the same way: the content dropout's masks come
            # from torch's global generator, seeded here and given back as it was after
            with (
                self.model_.cf.learning_rows(torch.as_tensor(items)) as rows,
                torch.random.fork_rng(),
            ):
                torch.manual_seed(cfg.seed)
                train_model(
                    self.model_,
                    data,
                    cfg,
                    trainable=[rows],
                    epochs=max(5, min(50, 2000 // max(1, len(part)))),
                    show_progress=False,
                    # only a few CF rows learn: sampled negatives place them as well,
                    # and a step costs 8,192 items, not the catalogue
                    full_softmax_items=FOLD_IN_FULL_SOFTMAX_ITEMS,
                )
        finally:
            for p in frozen:
                p.requires_grad_(True)

    # ================================================================ persistence

    def save(self, directory: str | Path, *, force: bool = False) -> Path:
        """Save to a directory (atomically): JSON, safetensors, .npy, FAISS, Parquet, manifest.

        An index chosen by catalogue size (no ``[index] factory``) that the catalogue
        has outgrown through :meth:`add_items` (an exact one past
        ``exact_max_items``) is rebuilt with the kind its size calls for first.

        A directory this object was loaded from or saved to, that another writer has
        saved to since (a ``hybrid-rec add-items`` run beside a service), raises
        :class:`~hybrid_rec.errors.ModelChangedError` instead of discarding that
        writer's changes; ``force=True`` replaces it all the same. A directory this
        object never read or wrote is replaced, as a refit's save does.

        Updates from other threads wait while the files are written (see Threads)."""
        self._check_fitted()
        if self._index_outgrown():
            with self._lock.write():
                self._regrow_index()
        with self._lock.read(), self._save_lock:
            return self._save(Path(directory), force=force)

    def _save(self, target: Path, *, force: bool = False) -> Path:
        key = str(target.resolve())
        expect = None if force else self._on_disk.get(key)
        with atomic_directory(target, expect=expect) as tmp:
            (tmp / "config.json").write_text(self.config.model_dump_json(indent=2))
            save_file(
                {k: v.contiguous() for k, v in self.model_.state_dict().items()},
                str(tmp / "model.safetensors"),
            )
            for name in ("content_", "item_vectors_", "fusion_weights_"):
                np.save(tmp / f"{name.rstrip('_')}.npy", getattr(self, name), allow_pickle=False)
            np.save(tmp / "taste_mean.npy", self.taste_.mean, allow_pickle=False)
            np.save(tmp / "taste_basis.npy", self.taste_.basis, allow_pickle=False)
            np.save(tmp / "prior_mean.npy", self.prior_.mean, allow_pickle=False)
            np.save(tmp / "prior_coef.npy", self.prior_.coef, allow_pickle=False)
            np.save(tmp / "neighbour_ids.npy", self.neighbours_.ids, allow_pickle=False)
            np.save(tmp / "neighbour_vectors.npy", self.neighbours_.vectors, allow_pickle=False)
            if self.item_item_ is not None:
                np.save(tmp / "item_item_cols.npy", self.item_item_.cols, allow_pickle=False)
                np.save(tmp / "item_item_weights.npy", self.item_item_.weights, allow_pickle=False)
            state = self.removed_.astype(np.uint8) + self.unlisted_.astype(np.uint8)
            np.save(tmp / "removed.npy", state, allow_pickle=False)  # 0 / 1 / 2: see load
            self.index_.save(tmp / "items.faiss")
            self._write_index_recall(tmp / "index_recall.json")
            _to_parquet(self.items_, tmp / "items.parquet")
            self._log.to_parquet(tmp / "interactions.parquet", index=False)
            self.item_ids_.save(tmp / "item_ids.json")
            (tmp / "attributes.json").write_text(json.dumps(self.attributes_.to_dict(), indent=2))
            self.user_ids_.save(tmp / "user_ids.json")
            (tmp / "meta.json").write_text(
                json.dumps(
                    {
                        "event_vocab": self.event_vocab_,
                        "has_time": self._has_time,
                        "content_dim": int(self.content_.shape[1]),
                        "cold_bias": self.cold_bias_,
                        "index_factory": self.index_.factory,
                        "taste_weight": self.taste_weight_,
                        "cold_taste_weight": self.cold_taste_weight_,
                        "prior_weight": self.prior_weight_,
                        "neighbour_weight": self.neighbour_weight_,
                        "item_item_weight": self.item_item_weight_,
                        "item_item_scale": self.item_item_scale_,
                        "fitted_at": self.fitted_at_,
                        "train": {
                            "epochs_run": self.train_result_.epochs_run,
                            "best_epoch": self.train_result_.best_epoch,
                            "best_score": self.train_result_.best_score,
                        },
                    },
                    indent=2,
                )
            )
            digest = write_manifest(  # the target's manifest, once renamed in whole
                tmp,
                {  # write_manifest adds "library": "hybrid_rec"
                    "library_version": __version__,
                    # a loaded model knows its encoder's name: no 11 s MiniLM load to save
                    "encoder": self._encoder_name(),
                    "encoder_dim": int(self.content_.shape[1] - self.attributes_.dim),
                },
            )
        self._on_disk[key] = digest
        log.info("saved model to %s", target)
        return target

    def _index_outgrown(self) -> bool:
        """Whether the index is an exact one chosen by size that add_items grew past
        ``exact_max_items`` (a kind asked for, or chosen for a larger catalogue, stays)."""
        cfg = self.config.index
        exact_by_size = cfg.factory is None and self.index_.factory == "Flat"
        return exact_by_size and self.index_.ntotal > cfg.exact_max_items

    def _regrow_index(self) -> None:
        if not self._index_outgrown():
            return
        cfg = self.config.index
        wanted = choose_factory(self.index_.ntotal, cfg, self.index_.dim)
        log.info(
            "the catalogue grew to %d items: rebuilding the %s index as %s",
            self.index_.ntotal,
            self.index_.factory,
            wanted,
        )
        self._build_index()

    def _build_index(self) -> None:
        """A new index over every item, of the kind ``[index]`` and the size ask for."""
        rows = self._index_vectors(np.arange(len(self.item_ids_)))
        self.index_ = VectorIndex(rows.shape[1], self.config.index).build(rows)

    def _write_index_recall(self, path: Path) -> None:
        """For an approximate index, write its recall@k against exact search, measured on
        ``config.index.recall_queries`` users drawn with the model seed (raw index
        search: no seen-item exclusions or filters)."""
        n = min(self.config.index.recall_queries, len(self.user_ids_))
        if self.index_.is_exact or n == 0:
            return
        rng = np.random.default_rng(self.config.model.seed)
        users = np.sort(rng.choice(len(self.user_ids_), n, replace=False))
        queries = self._as_query(self._user_vectors_for(users)[0], self._user_taste()[users])
        report = self.index_.measure_recall(queries, self.config.eval.k)
        report["queries_from"] = "user vectors of a seeded sample of known users"
        atomic_write_json(path, report)
        log.info(
            "%s index recall@%d against exact search: %.4f",
            report["index"],
            report["k"],
            report["recall_at_k"],
        )

    @classmethod
    def load(cls, directory: str | Path, *, encoder: Encoder | None = None) -> HybridRecommender:
        """Load a directory written by :meth:`save`, verifying every file's sha256.

        A save (``hybrid-rec add-items`` in place, say) replaces the whole directory
        with one rename; a load that overlapped it, and so may have checked one
        version and read another, is started again.
        """
        d = Path(directory)
        if not d.exists() and d.parent.is_dir():
            # a save killed between its two renames left no model: put the old one back,
            # under the lock a running save holds there (it is not crashed, only between)
            try:
                with model_lock(d, wait=SAVE_LOCK_WAIT_S):
                    recover_interrupted_save(d)
            except PermissionError:  # a read-only folder: no lock file, and nothing to repair
                pass
        for _ in range(3):
            before = _identity(d)
            try:
                rec = cls._load_once(d, encoder)
            except ModelFileError:
                if _identity(d) == before:
                    raise
                continue
            if _identity(d) == before:
                return rec
        raise ModelFileError(f"{d}: the model kept being replaced while it loaded; try again.")

    @classmethod
    def _load_once(cls, d: Path, encoder: Encoder | None) -> HybridRecommender:
        try:
            return cls._read(d, encoder)
        except ModelFileError:
            raise
        except (  # files that pass their sha256 yet do not fit together: written by hand or a bug
            KeyError,
            ValueError,  # also JSON and pydantic errors
            IndexError,
            TypeError,
            AttributeError,
            pa.ArrowException,
            SafetensorError,
        ) as exc:
            raise ModelFileError(
                f"{d}: not a model this version of hybrid_rec can read ({type(exc).__name__}: "
                f"{str(exc)[:300]}).",
            ) from exc

    @classmethod
    def _read(cls, d: Path, encoder: Encoder | None) -> HybridRecommender:
        digest = manifest_digest(d)
        manifest = read_manifest(d, library_version=__version__)
        config = RecommenderConfig.model_validate_json((d / "config.json").read_text())
        rec = cls(config, encoder=encoder)
        rec._saved_encoder = manifest.get("encoder")
        if digest is not None:  # a later save there checks that nobody saved in between
            rec._on_disk[str(d.resolve())] = digest
        meta = json.loads((d / "meta.json").read_text())
        rec.items_ = pd.read_parquet(d / "items.parquet")
        rec.item_ids_ = IdMap.load(d / "item_ids.json")
        rec.user_ids_ = IdMap.load(d / "user_ids.json")
        rec.content_ = load_npy(d / "content.npy")
        rec.attributes_ = _load_attributes(d / "attributes.json", manifest)
        if rec.attributes_.dim >= rec.content_.shape[1]:
            raise ModelFileError(
                f"{d}: attributes.json describes {rec.attributes_.dim} attribute features, but "
                f"content.npy has only {rec.content_.shape[1]} columns."
            )
        rec.item_vectors_ = load_npy(d / "item_vectors.npy")
        rec.fusion_weights_ = load_npy(d / "fusion_weights.npy")
        rec.taste_ = ContentTaste(load_npy(d / "taste_mean.npy"), load_npy(d / "taste_basis.npy"))
        rec.prior_ = ContentPrior(load_npy(d / "prior_mean.npy"), load_npy(d / "prior_coef.npy"))
        _check_content_models(rec, d)  # before they read the content vectors
        rec.item_taste_ = rec.taste_.items(rec.content_)
        rec.taste_weight_ = _meta_number(meta, "taste_weight", 0.0, d)
        # models saved before it weighed every item's taste alike
        rec.cold_taste_weight_ = _meta_number(meta, "cold_taste_weight", rec.taste_weight_, d)
        rec.item_prior_ = rec.prior_.score(rec.content_)
        rec.prior_weight_ = _meta_number(meta, "prior_weight", 0.0, d)
        rec.neighbour_weight_ = _meta_number(meta, "neighbour_weight", 0.0, d)
        rec.fitted_at_ = meta.get("fitted_at")
        rec.neighbours_ = NeighbourTransfer.empty(
            config.model.dim, rec._coords_of(rec.content_[:0]).shape[1]
        )
        if (d / "neighbour_ids.npy").exists():  # models saved before it have no transfer
            ids, base = load_npy(d / "neighbour_ids.npy"), load_npy(d / "neighbour_vectors.npy")
            if base.shape != (len(ids), config.model.dim) or (
                len(ids) and (ids.min() < 0 or ids.max() >= len(rec.content_))
            ):
                raise ModelFileError(
                    f"{d}: neighbour_ids.npy / neighbour_vectors.npy do not match the catalogue "
                    f"({len(ids)} ids, vectors {base.shape}, {len(rec.content_)} items)."
                )
            rec.neighbours_ = NeighbourTransfer(
                ids,
                base,
                rec._neighbour_coords(ids),
                config.model.neighbours,
                config.model.neighbour_temperature,
                config.index,
            )
        rec.item_item_weight_ = _meta_number(meta, "item_item_weight", 0.0, d)
        rec.item_item_scale_ = _meta_number(meta, "item_item_scale", 0.0, d)
        rec.item_item_ = None
        if (d / "item_item_cols.npy").exists():  # models saved before the stage have none
            cols = load_npy(d / "item_item_cols.npy")
            weights = load_npy(d / "item_item_weights.npy")
            n = len(rec.content_)
            if (
                cols.ndim != 1
                or (len(cols) > 1 and not (np.diff(cols) > 0).all())
                or weights.shape != (len(cols), len(cols))
                or (len(cols) and (cols.min() < 0 or cols.max() >= n))
                or not np.isfinite(weights).all()
            ):
                raise ModelFileError(
                    f"{d}: item_item_cols.npy / item_item_weights.npy do not match the catalogue "
                    f"({len(cols)} items, weights {weights.shape}, {n} items in the catalogue)."
                )
            rec.item_item_ = ItemItem(cols.astype(np.int64), weights.astype(np.float32))
        # removed.npy: 0 served, 1 removed (remove_items), 2 no longer listed (a sync)
        state = np.zeros(len(rec.content_), dtype=np.uint8)
        if (d / "removed.npy").exists():  # models saved before it had nothing removed
            state = load_npy(d / "removed.npy")
            if (
                state.dtype != np.uint8
                or state.shape != (len(rec.content_),)
                or state.max(initial=0) > 2
            ):
                raise ModelFileError(
                    f"{d}: removed.npy holds {state.dtype} {state.shape}, expected one value "
                    f"0, 1 or 2 per item ({len(rec.content_)})."
                )
        rec.removed_, rec.unlisted_ = state > 0, state == 2
        rec.event_vocab_ = list(meta["event_vocab"])
        rec._has_time = bool(meta["has_time"])
        rec._log = pd.read_parquet(d / "interactions.parquet")
        if "r" not in rec._log.columns:  # saved before ratings were kept
            rec._log["r"] = np.float32(np.nan)
        if meta.get("content_dim") != rec.content_.shape[1]:  # before it sizes the model
            raise ModelFileError(
                f"{d}: meta.json gives content_dim {meta.get('content_dim')!r}, but content.npy "
                f"has {rec.content_.shape[1]} columns."
            )
        rec.model_ = HybridModel(
            int(meta["content_dim"]),
            len(rec.item_ids_),
            len(rec.event_vocab_),
            config.model,
            n_users=len(rec.user_ids_),
        )
        try:
            rec.model_.load_state_dict(load_file(str(d / "model.safetensors")))
        except (RuntimeError, OSError, SafetensorError) as exc:
            raise ModelFileError(
                f"{d / 'model.safetensors'}: incompatible weights ({exc})."
            ) from None
        rec.model_.eval()
        rec.train_result_ = TrainResult(**meta["train"], seconds=0.0)
        _check_loaded(rec, d)
        rec._derive()
        rec.cold_bias_ = _meta_number(meta, "cold_bias", 0.0, d)
        rec.index_ = VectorIndex.load(
            d / "items.faiss",
            rec._index_vectors(np.arange(len(rec.item_vectors_))),
            config.index,
            factory=meta.get("index_factory"),
        )
        if encoder is not None and encoder.name != manifest.get("encoder"):
            raise ModelFileError(
                f"{d}: saved with encoder {manifest.get('encoder')!r} but given {encoder.name!r}; "
                "vectors from different encoders cannot be mixed."
            )
        rec._fitted = True
        return rec

    # ================================================================ introspection

    def explain(self, user_id: str, item_id: str) -> Explanation:
        """Why ``item_id`` suits ``user_id``: an ``Explanation(text, facts, grounded, backend)``.

        The text comes from the backend in ``config.explain`` (a local LLM by
        default) and is checked against the facts; a failed check or a
        timeout falls back to a template sentence, and ``backend`` says which.
        """
        from hybrid_rec.explain import explain

        self._check_fitted()
        return explain(self, id_text(user_id), id_text(item_id))

    def explain_for_new_user(
        self, item_id: str, liked_items: Sequence[str] = (), text: str | None = None
    ) -> Explanation:
        """Explain a :meth:`recommend_for_new_user` result from the picked items / taste."""
        from hybrid_rec.explain import explain_for_new_user

        self._check_fitted()
        # ids read as recommend_for_new_user reads them: " 50" and 50 are item "50"
        return explain_for_new_user(self, id_text(item_id), id_list(liked_items), text)

    @_reads
    def user_history(self, user_id: str) -> pd.DataFrame:
        """The user's latest history items (most recent first) with the user tower's
        attention weight on each: which past items drive this user's vector.

        Returns ``item_id, event, timestamp, rating, attention``: timestamp is None
        without times; rating is the user's latest rating of the item, NaN where the
        log has none (implicit feedback).
        """
        self._check_fitted()
        code = self.user_ids_.to_internal([user_id], kind="user")
        _, weights = self._user_vectors_for(code)
        items = self.histories_.items[code[0]]
        valid = items >= 0
        rows = self._log.iloc[self._seen.rows_of(int(code[0]))]  # not a scan of the log
        rated = rows.dropna(subset=["r"]).sort_values("t", kind="stable")
        latest = rated.drop_duplicates("i", keep="last").set_index("i")["r"]
        return pd.DataFrame(
            {
                C.item: self.item_ids_.to_external(items[valid]).astype(str),
                C.event: [self.event_vocab_[e] for e in self.histories_.events[code[0]][valid]],
                C.timestamp: self.histories_.times[code[0]][valid] if self._has_time else None,
                C.rating: latest.reindex(items[valid]).to_numpy(np.float32),
                "attention": weights[0][valid].astype(np.float32),
            }
        )

    @_reads
    def event_weight(self, event: str) -> float:
        """The training weight of an event type (``[data.event_weights]``); a log without
        event types has one, ``interaction``, weighing the default."""
        cfg = self.config.data
        return float(cfg.event_weights.get(str(event), cfg.default_event_weight))

    @property
    def rating_range(self) -> tuple[float, float] | None:
        """Lowest and highest rating in the interaction log; None without ratings."""
        self._check_fitted()
        return self._rating_range

    @_reads
    def contributions(self, user_id: str, item_id: str) -> pd.DataFrame:
        """How much each history item supports recommending ``item_id`` to ``user_id``:
        attention weight x cosine(history item, item). Sorted, largest first.

        Returns ``item_id, event, rating, attention, similarity, contribution`` (rating
        as in :meth:`user_history`; event: the user's weightiest event on the item, as
        weighed by ``[data.event_weights]``).
        """
        hist = self.user_history(user_id)
        target = self.item_vectors_[self.item_ids_.to_internal([item_id], kind="item")[0]]
        sims = self.item_vectors_[self.item_ids_.to_internal(hist[C.item], kind="item")] @ target
        out = hist[[C.item, C.event, C.rating, "attention"]].assign(
            similarity=sims.astype(np.float32), _weight=hist[C.event].map(self.event_weight)
        )
        strongest = out.sort_values("_weight", ascending=False, kind="stable")
        strongest = strongest.drop_duplicates(C.item).set_index(C.item)[C.event]
        out = out.groupby(C.item, sort=False, as_index=False).agg(
            rating=(C.rating, "first"),
            attention=("attention", "sum"),
            similarity=("similarity", "first"),
        )  # an item seen twice counts once, with its summed attention
        out.insert(1, C.event, strongest.reindex(out[C.item]).to_numpy())
        out["contribution"] = out["attention"] * out["similarity"]
        return out.sort_values("contribution", ascending=False, kind="stable").reset_index(
            drop=True
        )

    @_reads
    def item_info(self, item_id: str) -> dict[str, Any]:
        """Evidence and fusion weights of one item (how cold it is, content vs CF share).

        ``content_prior`` is the popularity its content predicts, in standard
        deviations of the warm items' log interaction counts; ``score_offset`` is
        what the item adds to every user's score (non-zero only without interactions);
        ``neighbour_share`` is how much of its vector comes from its content neighbours
        with interactions (:mod:`hybrid_rec.models.neighbours`).
        """
        self._check_fitted()
        code = int(self.item_ids_.to_internal([item_id], kind="item")[0])
        w = self.fusion_weights_[code]
        share = neighbour_share(self.counts_[code : code + 1], self.neighbour_weight_)[0]
        return {
            "item_id": str(item_id),
            "removed": bool(self.removed_[code]),
            "interactions": int(self.counts_[code]),
            "content_share": float(w[0]),
            "collaborative_share": float(w[1]),
            "neighbour_share": float(share) if self.neighbours_.size else 0.0,
            "content_prior": float(self.item_prior_[code]),
            "score_offset": float(self._index_vectors(np.array([code]))[0, -1]),
        }

    @_reads
    def describe(self) -> dict[str, Any]:
        """What this model holds, for an operator: catalogue and log sizes, removed and
        cold items, encoder, index, training and the settings chosen on validation."""
        self._check_fitted()
        return {
            "users": len(self.user_ids_),
            "items": len(self.item_ids_),
            "items_served": int((~self.removed_).sum()),
            "items_removed": int((self.removed_ & ~self.unlisted_).sum()),
            "items_unlisted": int(self.unlisted_.sum()),
            "items_without_interactions": int((self.counts_ == 0).sum()),
            "interactions": len(self._log),
            "fitted_at": self.fitted_at_,
            # the newest interaction the model has seen (partial_fit included): how fresh it is
            "latest_interaction": (
                _dt.datetime.fromtimestamp(int(self._log["t"].max()), _dt.UTC).isoformat()
                if self._has_time and len(self._log)
                else None
            ),
            "encoder": self._saved_encoder or getattr(self._encoder, "name", None),
            "content_dim": int(self.content_.shape[1]),
            "attribute_dims": int(self.attributes_.dim),
            "dim": int(self.config.model.dim),
            "index": self.index_.factory,
            "epochs_run": self.train_result_.epochs_run,
            "best_epoch": self.train_result_.best_epoch,
            "best_validation_score": self.train_result_.best_score,
            "cold_offset": self.cold_bias_,
            "taste_weight": self.taste_weight_,
            "cold_taste_weight": self.cold_taste_weight_,
            "prior_weight": self.prior_weight_,
            "neighbour_weight": self.neighbour_weight_,
            "item_item_weight": self.item_item_weight_,
            "item_item_items": 0 if self.item_item_ is None else len(self.item_item_.cols),
        }

    def __repr__(self) -> str:
        if not self._fitted:
            return "HybridRecommender(not fitted)"
        return (
            f"HybridRecommender(users={len(self.user_ids_)}, items={len(self.item_ids_)}, "
            f"dim={self.config.model.dim}, index={self.index_.factory})"
        )


_ITEM_ITEM_CHUNK = 256  # users scored at once by the item-item stage (256 × n_items floats)


def _recall_at(total: np.ndarray, relevant: np.ndarray, n_rel: np.ndarray, k: int) -> float:
    """Mean over users (rows) of the share of their relevant items in their top ``k``
    by ``total``."""
    top = np.argpartition(-total, k - 1, axis=1)[:, :k]
    return float(np.mean(np.take_along_axis(relevant, top, 1).sum(1) / n_rel))


_T = TypeVar("_T")


def _simplest_best(grid: Sequence[_T], recalls: Sequence[float]) -> tuple[_T, float]:
    """The first setting of ``grid`` (ordered simplest first) whose recall is within
    0.5% of the best, and the best recall."""
    best = max(recalls)
    return next(g for g, r in zip(grid, recalls, strict=True) if r >= 0.995 * best), best


def _comparable(values: pd.Series) -> np.ndarray:
    """Cell values as text for change detection: missing is "", and a number is
    written one way whatever its type (``6.0`` from Parquet, ``"6"`` or ``"6.0"`` from
    a CSV are all ``"6"``)."""

    def text(v: Any) -> str:
        cell = _cell_text(v)  # missing is None, a list a|b: as the catalogue is saved
        if cell is None or isinstance(v, list | tuple | np.ndarray):
            return cell or ""
        out = cell.strip()
        try:
            number = float(out)
        except ValueError:
            return out
        if not np.isfinite(number):
            return out
        return str(int(number)) if number.is_integer() else repr(number)

    return np.array([text(v) for v in values], dtype=object)


def _identity(directory: Path) -> tuple[int, int] | None:
    """Which directory ``directory`` names now (device, inode): a save swaps in a new one."""
    try:
        st = os.stat(directory)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _blank(column: pd.Series) -> np.ndarray:
    """Cells with no value: missing, or text of nothing but spaces."""
    text = column.astype("string").str.strip()
    return (column.isna() | text.eq("").fillna(False)).to_numpy(dtype=bool)


def _meta_number(meta: dict[str, Any], key: str, default: float, d: Path) -> float:
    """A finite number of meta.json (Python's json reads ``NaN`` and ``Infinity``)."""
    value = meta.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not np.isfinite(value):
        raise ModelFileError(f"{d}: meta.json gives {key} {value!r}, not a finite number.")
    return float(value)


def _check_content_models(rec: HybridRecommender, d: Path) -> None:
    """The taste and prior models are of content.npy's width."""
    width, taste, prior = rec.content_.shape[1], rec.taste_, rec.prior_
    if taste.mean.shape != (width,) or taste.basis.ndim != 2 or taste.basis.shape[0] != width:
        raise ModelFileError(
            f"{d}: taste_mean.npy / taste_basis.npy are {taste.mean.shape} / "
            f"{taste.basis.shape}, not of content.npy's width {width}."
        )
    if prior.mean.shape != (width,) or prior.coef.shape != (width,):
        raise ModelFileError(
            f"{d}: prior_mean.npy / prior_coef.npy are {prior.mean.shape} / "
            f"{prior.coef.shape}, not of content.npy's width {width}."
        )


def _check_loaded(rec: HybridRecommender, d: Path) -> None:
    """The loaded parts agree on the number of items and users, and the vectors are finite."""
    n_items, n_users, dim = len(rec.item_ids_), len(rec.user_ids_), rec.config.model.dim
    shapes = {
        "items.parquet rows": (len(rec.items_), n_items),
        "content.npy rows": (rec.content_.shape[0], n_items),
        "item_vectors.npy": (rec.item_vectors_.shape, (n_items, dim)),
        "fusion_weights.npy": (rec.fusion_weights_.shape, (n_items, 2)),
    }
    for what, (got, want) in shapes.items():
        if got != want:
            raise ModelFileError(f"{d}: {what} is {got}, expected {want}.")
    if C.item not in rec.items_.columns or not np.array_equal(
        rec.items_[C.item].astype(str).to_numpy(), rec.item_ids_.external_ids.astype(str)
    ):
        raise ModelFileError(f"{d}: items.parquet does not list the ids of item_ids.json.")
    arrays = {
        "content.npy": rec.content_,
        "item_vectors.npy": rec.item_vectors_,
        "fusion_weights.npy": rec.fusion_weights_,
        "taste_mean.npy": rec.taste_.mean,
        "taste_basis.npy": rec.taste_.basis,
        "prior_mean.npy": rec.prior_.mean,
        "prior_coef.npy": rec.prior_.coef,
        "neighbour_vectors.npy": rec.neighbours_.vectors,
    }
    for name, arr in arrays.items():
        if arr.dtype != np.float32:
            raise ModelFileError(f"{d}: {name} holds {arr.dtype}, not float32.")
        if not np.isfinite(arr).all():
            raise ModelFileError(f"{d}: {name} holds NaN or infinity.")
    if not ((rec.fusion_weights_ >= 0) & (rec.fusion_weights_ <= 1)).all():
        raise ModelFileError(f"{d}: fusion_weights.npy holds attention weights outside 0..1.")
    log_ = rec._log
    for col, n in (("u", n_users), ("i", n_items)):
        values = log_[col].to_numpy()
        if len(values) and (values.min() < 0 or values.max() >= n):
            raise ModelFileError(
                f"{d}: interactions.parquet column {col!r} runs from {int(values.min())} to "
                f"{int(values.max())}, outside 0..{n - 1}."
            )


UNKNOWN_USERS = ("error", "popular", "skip")
"""What ``recommend`` / ``recommend_batch`` may do with users the model does not know."""


_LANGUAGE_COLUMNS = ("language", "lang", "language_code", "locale")
_ENGLISH = {"en", "eng", "english", "en-us", "en-gb", "en_us", "en_gb"}
ENGLISH_ONLY_ENCODERS = ("minilm", "mpnet")
"""Encoder names (config choices or model names, any case) that read English only."""


def _warn_of_languages(catalogue: pd.DataFrame, encoder: str) -> None:
    """An English-only encoder given a catalogue whose language column says a share of
    it is not English: those items, and a reader's words in their language, are placed
    poorly ("spannende Krimis" found no crime book). Say which encoder reads them."""
    name = encoder.lower()
    if "multilingual" in name or not any(e in name for e in ENGLISH_ONLY_ENCODERS):
        return
    column = next((c for c in catalogue.columns if str(c).lower() in _LANGUAGE_COLUMNS), None)
    if column is None:
        return
    values = catalogue[column].dropna().astype(str).str.strip().str.lower()
    values = values[values != ""]
    other = values[~values.isin(_ENGLISH) & ~values.str.startswith("en-")]
    if len(values) and len(other) >= 0.1 * len(values):
        log.warning(
            "%.0f%% of the catalogue is not in English (column %r: %s), but the encoder "
            '%r reads English only: set [content] encoder = "e5-multilingual" (fit '
            "--encoder e5-multilingual) to place those items and their readers' words.",
            100 * len(other) / len(values),
            column,
            ", ".join(other.value_counts().index[:3]),
            encoder,
        )


def _check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in choices:
        raise DataValidationError(
            f"must be one of {', '.join(map(repr, choices))}, got {value!r}.",
            source=name,
        )


def _explain_ranks(explain: object) -> int:
    """``recommend``'s ``explain``: False / 0 none, True the top 3, a number that many ranks."""
    if isinstance(explain, bool):
        return 3 if explain else 0
    if isinstance(explain, int | np.integer) and explain >= 0:
        return int(explain)
    raise DataValidationError(
        f"must be True, False or a number of ranks (0 or more), got {explain!r}.",
        source="explain",
    )


def _internal_holdout(
    inter: pd.DataFrame, seed: int, share: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Hold out, for early stopping and the cold-item offset, every interaction of a
    random ``share`` of the items (pseudo-cold items) and a random ``share`` of
    the (user, item) pairs of users with 5+ interactions, every row of a pair
    together: with a view left in training, the purchase held out could never be
    recommended again (seen items are excluded), and a multi-event log's validation
    measured little but one-off views. A log with one row per pair draws as the rows
    did. ``fit`` folds them back in after."""
    rng = np.random.default_rng(seed)
    size = inter.groupby(C.user)[C.item].transform("size").to_numpy()
    items = np.unique(inter[C.item].to_numpy())
    pseudo_cold = rng.choice(items, int(share * len(items)), replace=False)
    pair = inter.groupby([C.user, C.item], sort=False).ngroup().to_numpy()
    pick = (rng.random(int(pair.max(initial=-1)) + 1) < share)[pair] & (size >= 5)
    pick |= ids_in(inter[C.item], pseudo_cold)
    # only users who keep some training interactions can be validated on
    pick &= ids_in(inter[C.user], inter[C.user][~pick].unique())
    if pick.sum() < 10:
        return inter, None
    return inter[~pick].reset_index(drop=True), inter[pick].reset_index(drop=True)


def _to_parquet(frame: pd.DataFrame, path: Path) -> None:
    """Write the catalogue; a column Arrow cannot type (values of mixed kinds) is
    written as text, a list as ``a|b`` and a missing cell as missing (not "nan")."""
    try:
        frame.to_parquet(path, index=False)
    except (ValueError, TypeError, ImportError, pa.ArrowException):
        safe = frame.copy()
        for col in safe.columns:
            try:
                pa.array(safe[col])
            except (ValueError, TypeError, pa.ArrowException):
                safe[col] = safe[col].map(_cell_text)
        safe.to_parquet(path, index=False)


def _cell_text(v: Any) -> str | None:
    if isinstance(v, list | tuple | np.ndarray):
        return "|".join(map(str, v))
    if v is None or pd.isna(v):
        return None
    return str(v)


def _load_attributes(path: Path, manifest: dict[str, Any]) -> AttributeFeatures:
    """The attribute features of a saved model; none for models saved before them."""
    if path.name not in manifest.get("files", {}):
        return AttributeFeatures.none()
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read ({exc}).") from None
    return AttributeFeatures.from_dict(data, source=str(path))


def _drop_repeated_events(inter: pd.DataFrame) -> pd.DataFrame:
    """Rows equal in user, item, event and timestamp are one event sent twice (an export
    that repeats rows): counted once, as :meth:`HybridRecommender.partial_fit` counts
    them. Without timestamps repeats are kept: they may be real repeated views."""
    if C.timestamp not in inter.columns:
        return inter
    key = [c for c in (C.user, C.item, C.event, C.timestamp) if c in inter.columns]
    repeated = inter.duplicated(key).to_numpy()
    if not repeated.any():
        return inter
    log.warning(
        "%d interaction(s) repeat an earlier row's user, item, event and timestamp; "
        "each event is counted once",
        int(repeated.sum()),
    )
    return inter[~repeated].reset_index(drop=True)


def _cast_like(values: pd.Series, dtype: Any) -> pd.Series:
    """Numbers joining a numeric catalogue column, in the column's own type where every
    value fits it exactly (a year stays Int64, 2020.0 becomes 2020), else as float64:
    3.7 joining an integer column is not cut to 3."""
    if values.dtype == dtype:
        return values
    try:
        cast = values.astype(dtype)
    except (TypeError, ValueError, OverflowError):  # NaN into int64, 3.7 into Int64
        return values.astype("float64")
    wanted, got = values.astype("float64"), cast.astype("float64")
    same = (wanted == got) | (wanted.isna() & got.isna())
    return cast if bool(same.all()) else values.astype("float64")


def _refused_cells(
    values: pd.Series,
    bad: pd.Series,
    column: str,
    holds: str,
    give: str,
    source: str,
    ids: pd.Series | None = None,
) -> DataValidationError:
    """The error for cells a typed catalogue column cannot take, naming a few (with
    their items' ids) and their rows: the frame's own row numbers where its index
    holds them (a subset of a file keeps the file's), positions otherwise."""
    mask = bad.to_numpy()
    cells = [repr(v) for v in values[mask].tolist()[:3]]
    if ids is not None:
        cells = [f"{c} (item {i!r})" for c, i in zip(cells, ids[mask].tolist(), strict=False)]
    index = values.index
    rows = index[mask] if pd.api.types.is_integer_dtype(index) else np.flatnonzero(mask)
    return DataValidationError(
        f"{column} {holds} in this catalogue, but got {', '.join(cells)}.",
        source=source,
        column=column,
        rows=rows,
        fix=f"give {column} as {give}, or leave the cell empty.",
    )


def _as_dates_like(
    values: pd.Series, dtype: Any, column: str, source: str, ids: pd.Series | None = None
) -> pd.Series:
    """Dates joining a date column of the catalogue (a CSV gives them as text): as
    that column's type, so that date filters keep comparing times, not strings."""
    zone = getattr(dtype, "tz", None)
    if pd.api.types.is_datetime64_any_dtype(values):
        parsed = pd.to_datetime(values, utc=zone is not None)
    else:
        text = values.astype("string").str.strip()
        text = text.where(text != "")
        parsed = pd.to_datetime(text, errors="coerce", utc=zone is not None, format="mixed")
        bad = text.notna() & parsed.isna()
        if bad.any():
            give = "a date such as 2024-05-01"
            raise _refused_cells(values, bad, column, "holds dates", give, source, ids)
    if zone is not None:
        parsed = parsed.dt.tz_convert(zone)
    elif getattr(parsed.dtype, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(None)
    return parsed.astype(dtype)


def _ratings(inter: pd.DataFrame) -> np.ndarray:
    """The rating column as float32, NaN where absent (kept for explanations, not training)."""
    if C.rating not in inter.columns:
        return np.full(len(inter), np.nan, dtype=np.float32)
    return pd.to_numeric(inter[C.rating], errors="coerce").to_numpy(np.float32)


def _digest(values: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(values).encode()).hexdigest()
