"""The cold-start benchmark: methods side by side on one split, repeated fits, reports.

What ``scripts/evaluate.py`` (named datasets) and ``hybrid-rec evaluate`` (your own
files) share. Every method is fitted on ``split.train`` and evaluated on the test
stage; anything tuned — LightFM's epochs, the hybrid's early stopping and offsets — is
tuned on the validation stage, which is all a method factory can see
(:class:`BenchContext`). With ``repeats`` above 1 each trained method is fitted that
many times on the same split with model seeds ``seed, seed + 1, …``; results are the
mean with the standard deviation (:func:`combine_runs`): one fit of the hybrid moves
its warm Recall@20 by about ±0.01 on MovieLens-100k, as much as the gaps it is
compared on.

Outputs (:func:`write_results`):

* ``<out>/quality.json`` — ``{dataset key: {"meta": ..., "methods": {name: ...}}}``,
  merged: only this key changes, and when the split is unchanged only the methods run
  now are replaced;
* ``<out>/RESULTS.md`` — a regenerated table section per dataset key;
* ``<out>/recall_by_decile_<key>.png`` — recall by item-popularity decile.

A method is a name plus a factory (:func:`build_methods` is the one place where
methods are registered).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec.config import ContentConfig, SplitConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.io import atomic_write_bytes, atomic_write_json
from hybrid_rec.data.splits import ColdStartSplit, cold_start_split
from hybrid_rec.evaluation.baselines import (
    EASE,
    ContentKNN,
    LightFMBaseline,
    MissingDependencyError,
    Popularity,
    Random,
)
from hybrid_rec.evaluation.plots import plot_recall_by_decile
from hybrid_rec.evaluation.protocol import ColdStartEvaluator, Method, Scorer

__all__ = [
    "LIGHTFM_SETTINGS",
    "SETTINGS",
    "BenchContext",
    "BenchmarkRun",
    "HybridMethod",
    "MethodSpec",
    "build_methods",
    "combine_runs",
    "embed_items",
    "format_table",
    "merge_quality",
    "results_section",
    "results_table",
    "run_benchmark",
    "run_method",
    "run_repeated",
    "select_methods",
    "update_results_md",
    "with_attributes",
    "write_results",
]

log = logging.getLogger(__name__)

SETTINGS = ("cold", "warm", "all")


@dataclass
class BenchContext:
    """What a method factory may use: the split, the shared content, seed and settings.

    ``validation()`` gives a ``scorer -> float`` callback on the *validation*
    stage for tuning and early stopping; the test stage is never exposed here.
    """

    split: ColdStartSplit
    items: pd.DataFrame
    content: np.ndarray | None
    seed: int = 42
    model_seed: int | None = None
    """Seed of a method's own randomness (initialisation, sampling); ``seed`` if None."""
    k: int = 20
    long_tail_max: int = 5
    threads: int = 2
    config: Any = None
    """A :class:`~hybrid_rec.config.RecommenderConfig` the hybrid methods start from
    (the defaults if None); their seed and threads are set from this context."""
    baseline_content: np.ndarray | None = None
    """``content`` with the attribute part the hybrid appends itself
    (:mod:`hybrid_rec.content.attributes`): what the other content methods get, so
    that every method sees the same item features."""
    _val: dict[tuple[str, ...], ColdStartEvaluator] = field(default_factory=dict, repr=False)

    def val_evaluator(self, which: Sequence[str] = ("all",)) -> ColdStartEvaluator:
        """A cached :class:`ColdStartEvaluator` on the validation stage."""
        key = tuple(which)
        if key not in self._val:
            self._val[key] = ColdStartEvaluator(
                self.split,
                k=self.k,
                long_tail_max=self.long_tail_max,
                which=key,  # type: ignore[arg-type]
                stage="val",
                seed=self.seed,
            )
        return self._val[key]

    def validation(self, setting: str = "all") -> Callable[[Scorer], float]:
        """``scorer -> validation recall@k`` of one setting (``all`` by default)."""
        evaluator = self.val_evaluator((setting,))
        metric = f"recall@{self.k}"

        def validate(scorer: Scorer) -> float:
            value = evaluator(scorer)[setting][metric]
            return float("-inf") if value is None else float(value)

        return validate

    @property
    def method_seed(self) -> int:
        return self.seed if self.model_seed is None else self.model_seed


@dataclass(frozen=True)
class MethodSpec:
    """A benchmark method: a name and a factory building an unfitted :class:`Method`.

    ``deterministic`` methods give the same scores whatever the model seed, so
    ``--repeats`` fits them once.
    """

    name: str
    factory: Callable[[BenchContext], Method]
    description: str = ""
    deterministic: bool = False
    max_items: int | None = None
    """A catalogue above this many items skips the method (named in ``skipped``)."""


LIGHTFM_SETTINGS: dict[str, Any] = {
    "content_dim": 32,
    "no_components": 128,  # 64 before session 21's search: validation all 0.2236 -> 0.2281
    "learning_rate": 0.05,
    "item_alpha": 1e-6,  # user_alpha the same
    "loss": "warp",
}
"""The benchmark's LightFM settings (its epochs are chosen on validation at each fit),
chosen by ``scripts/tune_lightfm.py`` on the validation stage of ml-100k's seed-42
split (``benchmarks/lightfm_grid.json``), as the hybrid's defaults were."""


EASE_L2 = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0)
"""EASE's and CEASE's candidate L2 penalties (each fit picks one on validation)."""
CEASE_CONTENT_WEIGHT = (0.0, 2.0, 4.0, 8.0, 16.0, 32.0)
"""CEASE's candidate content weights α (the content Gram is scaled by α²; 0 is EASE)."""


class HybridMethod:
    """HybridRecommender as a benchmark method; early stopping on the split's validation."""

    def __init__(
        self, ctx: BenchContext, *, use_content: bool = True, item_item: bool = True
    ) -> None:
        from hybrid_rec.config import RecommenderConfig

        self.ctx = ctx
        base = ctx.config if ctx.config is not None else RecommenderConfig()
        self.config = base.model_copy(deep=True)
        self.config.model.use_content = use_content
        if not use_content:  # pure CF: no content-taste term either
            self.config.model.taste_dim = 0
        if not item_item:
            self.config.model.item_item_max_items = 0
        self.config.model.seed = ctx.method_seed
        self.config.model.threads = ctx.threads

    def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None) -> Any:
        from hybrid_rec.recommender import HybridRecommender

        validation = pd.concat([self.ctx.split.val_warm, self.ctx.split.val_cold])
        self.rec = HybridRecommender(self.config).fit(
            train, items, validation=validation, content=content
        )
        return self

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        return self.rec.score(user_ids, item_ids)


def build_methods() -> dict[str, MethodSpec]:
    """Every method the benchmark knows, in table order. Register new methods here.

    A factory receives the :class:`BenchContext` and returns an unfitted object
    with ``fit(train, items, content) -> self`` and ``score(user_ids, item_ids)``.
    """
    specs = [
        MethodSpec(
            "random", lambda ctx: Random(seed=ctx.method_seed), "uniform random scores (floor)"
        ),
        MethodSpec(
            "popularity",
            lambda ctx: Popularity(),
            "training interaction counts",
            deterministic=True,
        ),
        MethodSpec(
            "content-knn",
            lambda ctx: ContentKNN(),
            "cosine to the mean content vector of the user's history",
            deterministic=True,
        ),
        MethodSpec(
            "lightfm",
            lambda ctx: LightFMBaseline(
                **LIGHTFM_SETTINGS,
                user_alpha=LIGHTFM_SETTINGS["item_alpha"],
                validate=ctx.validation("all"),
                seed=ctx.method_seed,
                threads=ctx.threads,
            ),
            "LightFM WARP, identity + content item features, epochs chosen on validation",
        ),
        MethodSpec(
            "ease",
            lambda ctx: EASE(l2=EASE_L2, validate=ctx.validation("all")),
            "EASE item-item closed form (no content: cold items ranked last), "
            "L2 chosen on validation",
            deterministic=True,
            max_items=EASE.MAX_ITEMS,
        ),
        MethodSpec(
            "cease",
            lambda ctx: EASE(
                l2=EASE_L2, content_weight=CEASE_CONTENT_WEIGHT, validate=ctx.validation("all")
            ),
            "CEASE: EASE with the content vectors as pseudo-users, L2 and content weight "
            "chosen on validation",
            deterministic=True,
            max_items=EASE.MAX_ITEMS,
        ),
        MethodSpec(
            "cf-only",
            lambda ctx: HybridMethod(ctx, use_content=False),
            "this model without content (CF embeddings + user attention)",
        ),
        MethodSpec(
            "hybrid",
            lambda ctx: HybridMethod(ctx),
            "hybrid_rec: content + CF fused by attention, user attention, CF-dropout",
        ),
        MethodSpec(
            "hybrid-no-item-item",
            lambda ctx: HybridMethod(ctx, item_item=False),
            "the hybrid without its item-item stage (models.item_item): the stage's ablation",
        ),
    ]
    return {spec.name: spec for spec in specs}


def select_methods(names: Iterable[str] | None = None) -> list[str]:
    """Registered method names from ``names``: each entry may hold several, separated by
    commas; ``all`` alone (or None) means every method, in table order.

    Raises
    ------
    ValueError
        A name the registry does not know, or no name at all.
    """
    known = list(build_methods())
    if names is None:
        return known
    chosen = [m.strip() for chunk in names for m in chunk.split(",") if m.strip()]
    if chosen == ["all"]:
        return known
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        what = f"unknown method(s) {unknown}" if unknown else "no method given"
        raise ValueError(f"{what}; known: {', '.join(known)}")
    return chosen


def embed_items(
    items: pd.DataFrame, encoder: str | ContentConfig, store: str | Path | None = None
) -> tuple[np.ndarray, str]:
    """Content vectors of every item (rows follow ``items["item_id"]``) and the encoder's
    name, from an encoder name or a whole content configuration; with ``store`` (an
    embedding store of that encoder, ``hybrid-rec embed``) the items whose text it
    holds are read from it, not encoded again."""
    from hybrid_rec.content.encoders import make_encoder
    from hybrid_rec.content.store import EmbeddingStore
    from hybrid_rec.content.text import item_texts

    cfg = encoder if isinstance(encoder, ContentConfig) else ContentConfig(encoder=encoder)
    ids = items[Columns.item].astype(str)
    texts = item_texts(items, cfg).reindex(ids).fillna("").tolist()
    model = make_encoder(cfg)
    start = time.perf_counter()
    if store is None:
        vectors = np.asarray(model.encode(texts), dtype=np.float32)
    else:
        opened = EmbeddingStore.open(store)
        opened.check_encoder(model.name, "this evaluation")
        vectors = opened.vectors_for(ids.tolist(), texts, model.encode)
    log.info(
        "embedded %d items with %s in %.1f s", len(items), model.name, time.perf_counter() - start
    )
    return vectors, model.name


def with_attributes(
    content: np.ndarray | None, items: pd.DataFrame, config: Any
) -> np.ndarray | None:
    """``content`` with the attribute part a hybrid fitted with ``config`` appends."""
    from hybrid_rec.config import RecommenderConfig
    from hybrid_rec.content.attributes import AttributeFeatures

    if content is None:
        return None
    cfg = config if config is not None else RecommenderConfig()
    return AttributeFeatures.fit(items, cfg.content).append(content, items)


def run_method(spec: MethodSpec, ctx: BenchContext, test: ColdStartEvaluator) -> dict[str, Any]:
    """Fit one method on ``ctx.split.train`` and evaluate it with the test-stage evaluator."""
    method = spec.factory(ctx)
    content = ctx.content
    if not isinstance(method, HybridMethod) and ctx.baseline_content is not None:
        content = ctx.baseline_content
    start = time.perf_counter()
    method.fit(ctx.split.train, ctx.items, content)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    result = test.evaluate(method)
    eval_s = time.perf_counter() - start
    out: dict[str, Any] = {**result, "fit_s": round(fit_s, 2), "eval_s": round(eval_s, 2)}
    if getattr(method, "best_epochs_", None) is not None:
        out["best_epochs"] = int(method.best_epochs_)  # type: ignore[attr-defined]
    log.info("%s: fit %.1f s, evaluate %.1f s", spec.name, fit_s, eval_s)
    return out


def run_repeated(
    spec: MethodSpec, ctx: BenchContext, test: ColdStartEvaluator, repeats: int
) -> dict[str, Any]:
    """:func:`run_method` with model seeds ``ctx.seed + r`` for ``r < repeats`` (once for a
    deterministic method), combined by :func:`combine_runs`."""
    n = 1 if spec.deterministic else repeats
    runs = []
    for r in range(n):
        if n > 1:
            log.info("%s: fit %d of %d (model seed %d)", spec.name, r + 1, n, ctx.seed + r)
        runs.append(run_method(spec, replace(ctx, model_seed=ctx.seed + r), test))
    return combine_runs(runs, [ctx.seed + r for r in range(n)])


def _mean_tree(values: list[Any]) -> Any:
    """Element-wise mean of equally shaped JSON trees (dicts of numbers); ``None`` where any
    run has ``None``; non-numeric leaves from the first run."""
    first = values[0]
    if isinstance(first, dict):
        return {key: _mean_tree([v[key] for v in values]) for key in first}
    if isinstance(first, bool) or not isinstance(first, int | float):
        return first
    if any(v is None for v in values):
        return None
    if isinstance(first, int) and all(v == first for v in values):
        return first  # counts that do not depend on the seed stay integers
    mean = float(np.mean(values))
    return mean if isinstance(first, float) else round(mean, 2)


def combine_runs(runs: list[dict[str, Any]], seeds: list[int]) -> dict[str, Any]:
    """One result from the fits of one method: the mean of every number, and for more
    than one run the sample standard deviation of each setting's Recall and NDCG
    (``sd``) and the runs' own figures (``runs``)."""
    if len(runs) == 1:
        return runs[0]
    out: dict[str, Any] = _mean_tree(runs)
    metrics = [m for m in runs[0][SETTINGS[0]] if m.startswith(("recall@", "ndcg@"))]
    out["sd"] = {
        s: {
            m: None
            if any(r[s][m] is None for r in runs)
            else float(np.std([r[s][m] for r in runs], ddof=1))
            for m in metrics
        }
        for s in SETTINGS
    }
    out["runs"] = [
        {"model_seed": seed, **{s: {m: r[s][m] for m in metrics} for s in SETTINGS}}
        for seed, r in zip(seeds, runs, strict=True)
    ]
    out["repeats"] = len(runs)
    return out


COMPARABLE = ("split", "encoder", "k", "long_tail_max")
"""Meta fields two runs share when their rows may stand in one table."""


def merge_quality(
    path: Path, key: str, meta: dict[str, Any], results: dict[str, Any], order: Sequence[str]
) -> dict[str, Any]:
    """Update ``key`` in quality.json; keep other methods only if the split, encoder, k and
    long-tail bound are the same (:data:`COMPARABLE`).

    Returns this key's entry with its methods in ``order`` (registry order), then any others.
    """
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; starting it afresh.", path)
    entry = data.get(key, {})
    same = not _differing(entry.get("meta", {}), meta)
    if entry.get("methods") and not same:
        log.warning(
            "%s: the results kept for %r came from another split, encoder, k or long-tail "
            "bound; they are replaced, not mixed with these.",
            path,
            key,
        )
    methods = entry.get("methods", {}) if same else {}
    methods.update(results)
    rank = {name: i for i, name in enumerate(order)}
    methods = dict(sorted(methods.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    data[key] = {"meta": meta, "methods": methods}
    atomic_write_json(path, data)
    return data[key]


def kept_differs(path: Path, key: str, meta: dict[str, Any]) -> list[str]:
    """The :data:`COMPARABLE` fields given in ``meta`` in which the results kept for
    ``key`` in the quality.json at ``path`` differ (they would be replaced, not mixed);
    empty when nothing is kept or all agree."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8")).get(key, {})
    except (OSError, json.JSONDecodeError):
        return []
    if not entry.get("methods"):
        return []
    return _differing(entry.get("meta", {}), meta)


def _differing(before: dict[str, Any], meta: dict[str, Any]) -> list[str]:
    """The :data:`COMPARABLE` fields ``meta`` holds that ``before`` has otherwise (a
    run's whole meta holds them all)."""
    return [f for f in COMPARABLE if f in meta and before.get(f) != meta[f]]


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


TIE_MARK = "†"
TIE_SHARE = 0.5
"""A setting in which the tie-break filled at least this share of the top-k places
(equal scores at the cut) is marked: its figures are the tie-break's, not the method's."""


def _tied(res: dict[str, Any], setting: str) -> bool:
    share = res[setting].get("tie_cut_share")
    return share is not None and share >= TIE_SHARE


def tie_note(methods: dict[str, Any]) -> str:
    """The footnote of the marked cells, or ``""`` when none is marked."""
    marked = [f"{name} {s}" for name, res in methods.items() for s in SETTINGS if _tied(res, s)]
    if not marked:
        return ""
    return (
        f"{TIE_MARK} {', '.join(marked)}: most places of the lists went to items of equal "
        "score (popularity, ease and cf-only score every cold item alike), so the candidates' "
        "seeded order chose them: the figure is a random pick's, as `random` measures it, "
        "not the method's."
    )


def _fmt_sd(res: dict[str, Any], setting: str, metric: str) -> str:
    """``mean ± sd`` (3 decimals) for a repeated method, the 4-decimal value otherwise;
    marked when the setting's lists were cut among ties."""
    value = res[setting][metric]
    mark = TIE_MARK if _tied(res, setting) else ""
    sd = res.get("sd", {}).get(setting, {}).get(metric)
    if sd is None or value is None:
        return _fmt(value) + mark
    return f"{value:.3f} ± {sd:.3f}{mark}"


def results_table(methods: dict[str, Any], k: int) -> list[str]:
    """Markdown table: method × {cold, warm, all} × {Recall@k, NDCG@k}, coverage, tail, fit."""
    head = ["Method"]
    for s in SETTINGS:
        head += [f"{s} R@{k}", f"{s} N@{k}"]
    head += ["coverage (all)", "tail share (all)", "fit s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, res in methods.items():
        row = [name]
        for s in SETTINGS:
            row += [_fmt_sd(res, s, f"recall@{k}"), _fmt_sd(res, s, f"ndcg@{k}")]
        row += [
            _fmt(res["all"]["coverage"], 3),
            _fmt(res["all"]["long_tail_share"], 3),
            _fmt(res.get("fit_s"), 1),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def fewer_users(methods: dict[str, Any]) -> str:
    """A sentence naming the methods scored on fewer users than the others (a method
    that cannot score users without training history leaves them out), or ``""``.
    Their means are over other users, so such rows do not compare like for like."""
    gaps = []
    for s in SETTINGS:
        most = max((m[s]["n_users"] for m in methods.values()), default=0)
        gaps += [
            f"{name} {s} {res[s]['n_users']} of {most}"
            for name, res in methods.items()
            if res[s]["n_users"] < most
        ]
    if not gaps:
        return ""
    return f"Scored on fewer users (users without training history left out): {'; '.join(gaps)}."


def results_section(
    key: str, entry: dict[str, Any], *, generator: str = "scripts/evaluate.py"
) -> str:
    """The regenerated RESULTS.md section of one dataset key; ``generator`` names what
    wrote it (the script, or ``hybrid-rec evaluate``)."""
    meta, k = entry["meta"], entry["meta"]["k"]
    split = meta["split"]
    users = {
        s: max((m[s]["n_users"] for m in entry["methods"].values()), default=0) for s in SETTINGS
    }
    repeats = sorted({m.get("repeats", 1) for m in entry["methods"].values()} - {1})
    repeated = (
        f" Methods fitted {', '.join(map(str, repeats))} times (model seeds from {split['seed']}, "
        "same split) show the mean ± the standard deviation over the fits."
        if repeats
        else ""
    )
    lines = [
        f"<!-- quality:{key}:start -->",
        f"### Cold-start quality: {key}",
        "",
        f"Encoder `{meta['encoder']}`, split seed {split['seed']}: "
        f"{split['n_warm_items']} warm / {split['n_cold_items']} cold items "
        f"(half validation, half test){_unplaced(split)}; test users cold {users['cold']}, "
        f"warm {users['warm']}, all {users['all']}. Full ranking, k = {k}; warm and all "
        "exclude each user's training and validation positives; long tail = fewer than "
        f"{meta['long_tail_max']} training interactions. Generated by `{generator}` "
        f"on {meta['date']}.{repeated}",
        "",
        *results_table(entry["methods"], k),
        "",
        *([gap, ""] if (gap := fewer_users(entry["methods"])) else []),
        *([ties, ""] if (ties := tie_note(entry["methods"])) else []),
        f"![recall by popularity decile](recall_by_decile_{key}.png)",
        f"<!-- quality:{key}:end -->",
    ]
    return "\n".join(lines)


def _unplaced(split: dict[str, Any]) -> str:
    """The items neither warm nor cold, said: every interaction of theirs was held out
    with a warm user's pairs, so they are no candidate in any setting."""
    n = split.get("n_items", 0) - split["n_warm_items"] - split["n_cold_items"]
    if n <= 0:
        return ""
    return (
        f"; {n} more item(s) are in neither, every interaction of theirs held out with "
        "warm users' pairs, and are left out of every setting"
    )


def update_results_md(path: Path, key: str, section: str) -> None:
    """Replace this key's section in RESULTS.md (or append it), leaving the rest alone."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmark results\n"
    pattern = re.compile(
        rf"<!-- quality:{re.escape(key)}:start -->.*?<!-- quality:{re.escape(key)}:end -->",
        re.DOTALL,
    )
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def format_table(key: str, methods: dict[str, Any], k: int) -> str:
    """A compact fixed-width table (means only) for a terminal."""
    lines = [
        f"{key}  (recall@{k} / ndcg@{k}; fit seconds)",
        f"{'method':<14}"
        + "".join(f"{s:>16}" for s in SETTINGS)
        + f"{'cov':>7}{'tail':>7}{'fit s':>8}",
    ]
    for name, res in methods.items():
        cells = "".join(
            f"{_fmt(res[s][f'recall@{k}'], 3):>8}/"
            + f"{_fmt(res[s][f'ndcg@{k}'], 3) + (TIE_MARK if _tied(res, s) else ''):<7}"
            for s in SETTINGS
        )
        lines.append(
            f"{name:<14}{cells}{_fmt(res['all']['coverage'], 2):>7}"
            f"{_fmt(res['all']['long_tail_share'], 2):>7}{_fmt(res.get('fit_s'), 1):>8}"
        )
    if gap := fewer_users(methods):
        lines.append(gap)
    if ties := tie_note(methods):
        lines.append(ties)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- whole runs


@dataclass
class BenchmarkRun:
    """The results of :func:`run_benchmark`, before they are written anywhere."""

    key: str
    meta: dict[str, Any]
    results: dict[str, Any]
    skipped: list[str]
    order: list[str]


def run_benchmark(
    interactions: pd.DataFrame,
    items: pd.DataFrame,
    content: np.ndarray | None,
    *,
    key: str,
    dataset: str,
    encoder: str,
    methods: Sequence[str] | None = None,
    split_config: SplitConfig | None = None,
    repeats: int = 1,
    k: int = 20,
    long_tail_max: int = 5,
    threads: int = 2,
    config: Any = None,
    split: ColdStartSplit | None = None,
) -> BenchmarkRun:
    """Split ``interactions`` for item cold start and run ``methods`` (all by default).

    ``interactions`` must be validated without event weights
    (:func:`~hybrid_rec.data.schema.validate_interactions` with ``event_weights=False``:
    the hybrid applies them when it fits) and ``content`` aligned with ``items`` rows.
    A method whose optional dependency is missing (LightFM), or whose ``max_items``
    the catalogue exceeds (EASE), is skipped and named in ``skipped``. ``config`` is
    the :class:`~hybrid_rec.config.RecommenderConfig` the hybrid methods start from;
    its ``eval.k`` and long-tail bound are set to ``k`` and
    ``long_tail_max``, so that the hybrid tunes itself for the figure reported.
    ``split``, when the caller has made it (to check it before any work), is
    ``cold_start_split(interactions, split_config)``.
    """
    from hybrid_rec.config import RecommenderConfig

    config = (config or RecommenderConfig()).model_copy(deep=True)
    config.eval.k = k
    config.eval.long_tail_max_interactions = long_tail_max
    registry = build_methods()
    names = select_methods(methods)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    split_config = split_config or SplitConfig()
    seed = split_config.seed
    if split is None:  # the caller may have made it already (to check it first)
        split = cold_start_split(interactions, split_config)
    log.info("split: %s", split.info)
    items = items.reset_index(drop=True)
    ctx = BenchContext(
        split,
        items,
        content,
        seed=seed,
        k=k,
        long_tail_max=long_tail_max,
        threads=threads,
        config=config,
        baseline_content=with_attributes(content, items, config),
    )
    # the test-stage evaluator stays out of the context that method factories see
    test = ColdStartEvaluator(split, k=k, long_tail_max=long_tail_max, stage="test", seed=seed)
    results: dict[str, Any] = {}
    skipped: list[str] = []
    for name in names:
        limit = registry[name].max_items
        if limit is not None and len(items) > limit:
            log.warning("skipping %s: %d items, more than its limit of %d", name, len(items), limit)
            skipped.append(name)
            continue
        try:
            results[name] = run_repeated(registry[name], ctx, test, repeats)
        except MissingDependencyError as exc:
            log.warning("skipping %s: %s", name, exc)
            skipped.append(name)
    meta = {
        "dataset": dataset,
        "encoder": encoder,
        "k": k,
        "long_tail_max": long_tail_max,
        "split": {
            kk: (int(v) if isinstance(v, int | np.integer) else v) for kk, v in split.info.items()
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    return BenchmarkRun(key, meta, results, skipped, list(registry))


def write_results(
    out: str | Path, run: BenchmarkRun, *, generator: str = "scripts/evaluate.py"
) -> dict[str, Any]:
    """Merge ``run`` into ``<out>/quality.json``, redraw its decile plot and regenerate its
    RESULTS.md section (every write atomic), which says it was generated by ``generator``.
    Returns the key's merged entry."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    entry = merge_quality(out / "quality.json", run.key, run.meta, run.results, run.order)
    k = run.meta["k"]
    plot_recall_by_decile(
        {m: r["all"]["recall_by_decile"] for m, r in entry["methods"].items()},
        out / f"recall_by_decile_{run.key}.png",
        title=f"{run.key}: recall@{k} by item popularity (all items)",
        ylabel=f"recall@{k}",
    )
    section = results_section(run.key, entry, generator=generator)
    update_results_md(out / "RESULTS.md", run.key, section)
    return entry
