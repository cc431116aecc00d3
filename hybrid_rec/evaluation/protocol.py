"""The cold / warm / all evaluation protocol over a :class:`~hybrid_rec.data.ColdStartSplit`.

Three rankings are measured, each with full ranking over its candidates:

``cold``
    Users with at least one held-out interaction on a cold item rank the cold
    items of the stage (test or validation) only. Nothing is excluded: cold
    items have no training interaction.
``warm``
    Users with a held-out warm interaction rank the warm items (those seen in
    training); each user's training positives are excluded (score ``-inf``),
    and at the test stage their validation positives too.
``all``
    Candidates are the warm items plus the stage's cold items; relevant items
    are the stage's warm and cold held-out interactions; exclusions as for
    ``warm``.

Users without any training interaction ("new" users) are scored if the scorer
can; a scorer signals that it cannot by raising
:class:`~hybrid_rec.errors.UnknownIdError`, and such users are excluded and
counted (``n_users_unscored``), as Cornac does.

Ties in the scores are broken by a seeded random order of the candidates, the
same for every scorer; see :mod:`hybrid_rec.evaluation.metrics` for the metric
conventions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd
import scipy.sparse as sp
from tqdm.auto import tqdm

from hybrid_rec.content.encoders import progress_enabled
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.splits import ColdStartSplit
from hybrid_rec.errors import UnknownIdError
from hybrid_rec.evaluation.metrics import (
    EvaluationError,
    bucket_counts,
    bucket_names,
    hits_at_k,
    ndcg_from_hits,
    popularity_buckets,
    recall_from_hits,
    top_k_indices,
)

__all__ = [
    "TASKS",
    "ColdStartEvaluator",
    "Method",
    "Scorer",
    "evaluate_cold_start",
]

log = logging.getLogger(__name__)
C = Columns

Task = Literal["cold", "warm", "all"]
Stage = Literal["test", "val"]
TASKS: tuple[Task, ...] = ("cold", "warm", "all")
N_DECILES = 10


@runtime_checkable
class Scorer(Protocol):
    """Anything that scores items for users.

    ``score`` returns a dense float ``(len(user_ids), len(item_ids))`` matrix,
    higher is better, in the order of the arguments. It raises
    :class:`~hybrid_rec.errors.UnknownIdError` for a user it cannot score (no
    history and no new-user path).
    """

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        """Score ``item_ids`` for ``user_ids``."""
        ...


@runtime_checkable
class Method(Scorer, Protocol):
    """A recommender that the benchmark can fit and evaluate.

    ``fit`` receives the training interactions, the whole item catalogue
    (cold items included: their content is known, their interactions are
    not) and the content vectors whose rows follow ``items["item_id"]``
    (``None`` when the benchmark runs without content).
    """

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Self:
        """Fit on training interactions; return ``self``."""
        ...


@dataclass
class _Setting:
    """One ranking setting (cold, warm or all), precomputed once per evaluator."""

    name: Task
    users: np.ndarray
    is_new: np.ndarray
    candidates: list[str]
    relevance: sp.csr_matrix
    exclude: sp.csr_matrix | None
    is_long_tail: np.ndarray
    buckets: np.ndarray | None
    info: dict[str, int] = field(default_factory=dict)


@dataclass
class _Accumulator:
    """Per-batch results summed over user batches."""

    n_candidates: int
    recall: list[np.ndarray] = field(default_factory=list)
    ndcg: list[np.ndarray] = field(default_factory=list)
    n_new: int = 0
    recommended: np.ndarray = field(init=False)
    tail_slots: int = 0
    valid_slots: int = 0
    tie_slots: int = 0
    """Top-k places the tie-break filled: a list cut among equal scores, the places
    holding that score."""
    bucket_hits: np.ndarray = field(default_factory=lambda: np.zeros(N_DECILES + 1, np.int64))
    bucket_rel: np.ndarray = field(default_factory=lambda: np.zeros(N_DECILES + 1, np.int64))

    def __post_init__(self) -> None:
        self.recommended = np.zeros(self.n_candidates, dtype=bool)


class ColdStartEvaluator:
    """Precompute the cold / warm / all settings of a split once, evaluate any scorer.

    Build it once and call it every epoch for early stopping (``stage="val"``);
    the per-call cost is the scorer's plus a few vectorised passes per user
    batch.

    Parameters
    ----------
    split
        The output of :func:`~hybrid_rec.data.cold_start_split`.
    k
        Cut-off of every top-k metric.
    long_tail_max
        Items with fewer training interactions than this are long-tail (cold
        items included).
    user_batch
        Users scored per ``scorer.score`` call.
    which
        Settings to compute, a subset of ``("cold", "warm", "all")``.
    stage
        ``"test"`` (the held-out test interactions and test cold items) or
        ``"val"`` (validation interactions and validation cold items, for
        tuning and early stopping).
    seed
        Seed of the candidate order that breaks score ties.
    """

    def __init__(
        self,
        split: ColdStartSplit,
        *,
        k: int = 20,
        long_tail_max: int = 5,
        user_batch: int = 1024,
        which: Sequence[Task] = TASKS,
        stage: Stage = "test",
        seed: int = 0,
    ) -> None:
        if k < 1:
            raise EvaluationError(f"k must be at least 1, got {k}.")
        if user_batch < 1:
            raise EvaluationError(f"user_batch must be at least 1, got {user_batch}.")
        unknown = [w for w in which if w not in TASKS]
        if unknown or not which:
            raise EvaluationError(f"which must be a non-empty subset of {TASKS}, got {which!r}.")
        if stage not in ("test", "val"):
            raise EvaluationError(f"stage must be 'test' or 'val', got {stage!r}.")
        self.k = k
        self.long_tail_max = long_tail_max
        self.user_batch = user_batch
        self.stage: Stage = stage
        self.seed = seed
        self._train_counts = split.train[C.item].astype(str).value_counts()
        self._known_users = pd.Index(split.train[C.user].astype(str).unique())
        self.settings: dict[Task, _Setting] = {
            name: self._build(split, name) for name in TASKS if name in which
        }

    # ------------------------------------------------------------------ set-up

    def _frames(
        self, split: ColdStartSplit
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, list[pd.DataFrame]]:
        """Held-out warm frame, held-out cold frame, cold items, warm exclusions."""
        if self.stage == "test":
            return (
                split.test_warm,
                split.test_cold,
                split.test_cold_items,
                [split.train, split.val_warm],
            )
        return split.val_warm, split.val_cold, split.val_cold_items, [split.train]

    def _build(self, split: ColdStartSplit, name: Task) -> _Setting:
        warm_frame, cold_frame, cold_items, excl_frames = self._frames(split)
        warm_items = np.asarray(split.warm_items).astype(str)
        cold_items = np.asarray(cold_items).astype(str)
        if name == "cold":
            cands, held, excl = cold_items, cold_frame, []
        elif name == "warm":
            cands, held, excl = warm_items, warm_frame, excl_frames
        else:
            cands = np.concatenate([warm_items, cold_items])
            held, excl = pd.concat([warm_frame, cold_frame], ignore_index=True), excl_frames
        rng = np.random.default_rng([self.seed, TASKS.index(name)])
        cand_index = pd.Index(cands[rng.permutation(len(cands))])
        users = pd.Index(np.sort(held[C.user].astype(str).unique()))

        relevance, n_outside = _pair_matrix(held, users, cand_index)
        exclude = None
        n_rel_excluded = 0
        if excl:
            exclude, _ = _pair_matrix(pd.concat(excl, ignore_index=True), users, cand_index)
            before = relevance.nnz
            rel8 = relevance.astype(np.int8)
            relevance = (rel8 - rel8.multiply(exclude.astype(np.int8))).tocsr() > 0
            n_rel_excluded = before - relevance.nnz
        keep = np.asarray(relevance.getnnz(axis=1)) > 0
        relevance = relevance[keep]
        exclude = exclude[keep] if exclude is not None else None
        users = users[keep]

        counts = self._train_counts.reindex(cand_index, fill_value=0).to_numpy()
        is_cold = ~cand_index.isin(warm_items)
        info = {
            "n_relevant_outside_candidates": int(n_outside),
            "n_relevant_excluded": int(n_rel_excluded),
            "n_users_without_relevant": int((~keep).sum()),
        }
        if any(info.values()):
            log.debug("%s/%s setting: %s", self.stage, name, info)
        return _Setting(
            name=name,
            users=users.to_numpy(dtype=object),
            is_new=~users.isin(self._known_users),
            candidates=cand_index.tolist(),
            relevance=relevance.tocsr(),
            exclude=exclude.tocsr() if exclude is not None else None,
            is_long_tail=counts < self.long_tail_max,
            buckets=popularity_buckets(counts, is_cold, N_DECILES) if name == "all" else None,
            info=info,
        )

    # ------------------------------------------------------------------ evaluation

    def __call__(self, scorer: Scorer) -> dict[str, dict[str, Any]]:
        """Same as :meth:`evaluate`."""
        return self.evaluate(scorer)

    def evaluate(self, scorer: Scorer) -> dict[str, dict[str, Any]]:
        """Evaluate ``scorer`` on every prepared setting.

        Returns
        -------
        dict
            ``{setting: {"recall@k", "ndcg@k", "n_users", "n_users_new",
            "n_users_unscored", "n_candidates", "coverage", "long_tail_share",
            "n_relevant_excluded", "tie_cut_share", ...}}``
            (``n_relevant_excluded``: held-out pairs dropped because the same
            pair is a training / validation positive, which is excluded from the
            ranking; ``tie_cut_share``: the share of top-k places the seeded
            candidate order filled, among equal scores at the cut),
            plus ``"recall_by_decile"`` and ``"relevant_by_decile"`` (keys
            ``cold``, ``d1`` = least popular tenth ... ``d10``) for ``all``.
            Metrics are ``None`` when no user could be evaluated.
        """
        return {name: self._evaluate_setting(scorer, s) for name, s in self.settings.items()}

    def _evaluate_setting(self, scorer: Scorer, setting: _Setting) -> dict[str, Any]:
        acc = _Accumulator(len(setting.candidates))
        known_rows = np.flatnonzero(~setting.is_new)
        new_rows = np.flatnonzero(setting.is_new)
        batches = [
            known_rows[i : i + self.user_batch] for i in range(0, known_rows.size, self.user_batch)
        ]
        bar = tqdm(
            batches,
            desc=f"{self.stage}/{setting.name}",
            unit="batch",
            leave=False,
            disable=len(batches) < 2 or not progress_enabled(None, log),
        )
        for rows in bar:
            self._accumulate(acc, setting, rows, self._score(scorer, setting, rows))
        n_unscored = 0
        for start in range(0, new_rows.size, self.user_batch):
            rows = new_rows[start : start + self.user_batch]
            scored, scores = self._score_new(scorer, setting, rows)
            n_unscored += rows.size - scored.size
            if scored.size:
                acc.n_new += scored.size
                self._accumulate(acc, setting, scored, scores)
        if n_unscored:
            log.info(
                "%s/%s: %d new user(s) the scorer cannot score were excluded.",
                self.stage,
                setting.name,
                n_unscored,
            )
        return self._summarise(acc, setting, n_unscored)

    def _score(self, scorer: Scorer, setting: _Setting, rows: np.ndarray) -> np.ndarray:
        user_ids = setting.users[rows].tolist()
        raw = scorer.score(user_ids, setting.candidates)
        scores = np.array(raw, dtype=np.float32)  # a copy: exclusions are written into it
        expected = (rows.size, len(setting.candidates))
        if scores.shape != expected:
            raise EvaluationError(
                f"{type(scorer).__name__}.score returned shape {scores.shape}, expected "
                f"{expected} (users × candidate items)."
            )
        return scores

    def _score_new(
        self, scorer: Scorer, setting: _Setting, rows: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Score new users; fall back to one at a time when the batch is refused."""
        try:
            return rows, self._score(scorer, setting, rows)
        except UnknownIdError:
            pass
        scored: list[int] = []
        parts: list[np.ndarray] = []
        for row in rows:  # only users without history, and only when the batch failed
            try:
                parts.append(self._score(scorer, setting, np.array([row])))
                scored.append(int(row))
            except UnknownIdError:
                continue
        if not scored:
            return np.empty(0, dtype=np.int64), np.empty((0, len(setting.candidates)))
        return np.asarray(scored, dtype=np.int64), np.concatenate(parts)

    def _accumulate(
        self, acc: _Accumulator, setting: _Setting, rows: np.ndarray, scores: np.ndarray
    ) -> None:
        if setting.exclude is not None:
            excl = setting.exclude[rows].tocoo()
            scores[excl.row, excl.col] = -np.inf
        relevance = setting.relevance[rows].toarray()
        top = top_k_indices(scores, self.k)
        hits = hits_at_k(top, relevance, scores)
        n_rel = relevance.sum(axis=1)
        acc.recall.append(recall_from_hits(hits, n_rel))
        acc.ndcg.append(ndcg_from_hits(hits, n_rel))
        top_scores = np.take_along_axis(scores, top, axis=1)
        valid = top_scores > -np.inf
        # a list cut among equal scores: more candidates share the last place's score
        # than the list holds, and the candidates' order chose which (popularity on
        # cold items: every one scores 0, the whole list is the tie-break's)
        last = top_scores[:, -1:]
        in_list = (top_scores == last).sum(axis=1)
        cut = ((scores == last).sum(axis=1) > in_list) & valid[:, -1]
        acc.tie_slots += int(in_list[cut].sum())
        acc.recommended[top[valid]] = True
        acc.tail_slots += int(setting.is_long_tail[top[valid]].sum())
        acc.valid_slots += int(valid.sum())
        if setting.buckets is not None:
            h, r = bucket_counts(top, hits, relevance, setting.buckets, N_DECILES)
            acc.bucket_hits += h
            acc.bucket_rel += r

    def _summarise(self, acc: _Accumulator, setting: _Setting, n_unscored: int) -> dict[str, Any]:
        recall = np.concatenate(acc.recall) if acc.recall else np.empty(0)
        ndcg = np.concatenate(acc.ndcg) if acc.ndcg else np.empty(0)
        n_users = int(recall.size)
        if n_users == 0:
            log.warning("%s/%s: no user could be evaluated.", self.stage, setting.name)
        out: dict[str, Any] = {
            f"recall@{self.k}": float(recall.mean()) if n_users else None,
            f"ndcg@{self.k}": float(ndcg.mean()) if n_users else None,
            "n_users": n_users,
            "n_users_new": acc.n_new,
            "n_users_unscored": n_unscored,
            "n_candidates": len(setting.candidates),
            **setting.info,
            "coverage": float(acc.recommended.mean()) if n_users else None,
            "long_tail_share": acc.tail_slots / acc.valid_slots if acc.valid_slots else None,
            "tie_cut_share": acc.tie_slots / acc.valid_slots if acc.valid_slots else None,
        }
        if setting.buckets is not None:
            names = bucket_names(N_DECILES)
            out["recall_by_decile"] = {
                n: (float(h / r) if r else None)
                for n, h, r in zip(names, acc.bucket_hits, acc.bucket_rel, strict=True)
            }
            out["relevant_by_decile"] = {
                n: int(r) for n, r in zip(names, acc.bucket_rel, strict=True)
            }
        return out


def _pair_matrix(
    frame: pd.DataFrame, users: pd.Index, items: pd.Index
) -> tuple[sp.csr_matrix, int]:
    """Boolean (users × items) CSR of the (user, item) pairs in ``frame``.

    Pairs whose user is not in ``users`` are ignored; pairs whose item is not
    in ``items`` are ignored and counted (second return value).
    """
    r = users.get_indexer(frame[C.user].astype(str))
    c = items.get_indexer(frame[C.item].astype(str))
    user_ok = r >= 0
    keep = user_ok & (c >= 0)
    matrix = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (r[keep], c[keep])),
        shape=(len(users), len(items)),
    )
    matrix.sum_duplicates()
    return (matrix > 0).tocsr(), int((user_ok & (c < 0)).sum())


def evaluate_cold_start(
    scorer: Scorer,
    split: ColdStartSplit,
    *,
    k: int = 20,
    long_tail_max: int = 5,
    user_batch: int = 1024,
    which: Sequence[Task] = TASKS,
    stage: Stage = "test",
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Evaluate a scorer with the cold / warm / all protocol (see the module docstring).

    A one-shot wrapper over :class:`ColdStartEvaluator`; build the evaluator
    once instead when the same split is evaluated repeatedly (early stopping).

    Examples
    --------
    >>> res = evaluate_cold_start(model, split, stage="val", which=("all",))  # doctest: +SKIP
    >>> res["all"]["recall@20"]  # doctest: +SKIP
    0.117
    """
    evaluator = ColdStartEvaluator(
        split,
        k=k,
        long_tail_max=long_tail_max,
        user_batch=user_batch,
        which=which,
        stage=stage,
        seed=seed,
    )
    return evaluator.evaluate(scorer)
