"""Cold-start benchmark: every method on the same split, cold / warm / all on the test split.

Usage::

    python scripts/evaluate.py --dataset 100k --encoder minilm --seed 42 --out benchmarks/
    python scripts/evaluate.py --dataset synthetic --encoder hashing --methods popularity lightfm

The dataset is loaded, its item texts embedded once (the content vectors are
shared by every method), ``cold_start_split`` is run with the seed, and each
method is fitted on ``split.train`` and evaluated on the test stage (anything
tuned — LightFM's epochs, the hybrid's early stopping — is tuned on the
validation stage). Results go to:

* ``<out>/quality.json`` — ``{dataset key: {"meta": ..., "methods": {name: ...}}}``,
  merged: only this dataset's key changes, and when the split and encoder are
  unchanged only the methods run now are replaced;
* ``<out>/RESULTS.md`` — a regenerated table section per dataset key;
* ``<out>/recall_by_decile_<key>.png`` — recall by item-popularity decile.

A method is a name plus a factory (see :func:`build_methods`, the one place
where methods are registered).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec.config import ContentConfig, SplitConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.io import atomic_write_bytes, atomic_write_json
from hybrid_rec.data.splits import ColdStartSplit, cold_start_split
from hybrid_rec.evaluation import (
    ColdStartEvaluator,
    ContentKNN,
    LightFMBaseline,
    Method,
    MissingDependencyError,
    Popularity,
    Random,
    Scorer,
    plot_recall_by_decile,
)

log = logging.getLogger("evaluate")

SETTINGS = ("cold", "warm", "all")
DEFAULT_ENCODER = "minilm"


# ----------------------------------------------------------------------------- methods


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
    k: int = 20
    long_tail_max: int = 5
    threads: int = 2
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


@dataclass(frozen=True)
class MethodSpec:
    """A benchmark method: a name and a factory building an unfitted :class:`Method`."""

    name: str
    factory: Callable[[BenchContext], Method]
    description: str = ""


class HybridMethod:
    """HybridRecommender as a benchmark method; early stopping on the split's validation."""

    def __init__(self, ctx: BenchContext, *, use_content: bool = True) -> None:
        from hybrid_rec.config import RecommenderConfig

        self.ctx = ctx
        self.config = RecommenderConfig()
        self.config.model.use_content = use_content
        if not use_content:  # pure CF: no content-taste term either
            self.config.model.taste_dim = 0
        self.config.model.seed = ctx.seed
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
        MethodSpec("random", lambda ctx: Random(seed=ctx.seed), "uniform random scores (floor)"),
        MethodSpec("popularity", lambda ctx: Popularity(), "training interaction counts"),
        MethodSpec(
            "content-knn",
            lambda ctx: ContentKNN(),
            "cosine to the mean content vector of the user's history",
        ),
        MethodSpec(
            "lightfm",
            lambda ctx: LightFMBaseline(
                validate=ctx.validation("all"), seed=ctx.seed, threads=ctx.threads
            ),
            "LightFM WARP, identity + content item features, epochs chosen on validation",
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
    ]
    return {spec.name: spec for spec in specs}


# ----------------------------------------------------------------------------- data


def load_dataset(name: str, seed: int, ml1m_dir: str | None) -> Any:
    """Load ``100k``, ``1m`` or ``synthetic`` as a :class:`~hybrid_rec.data.datasets.Dataset`."""
    from hybrid_rec.data import datasets

    if name == "100k":
        return datasets.load_movielens("100k")
    if name == "1m":
        return datasets.load_movielens("1m", path=ml1m_dir)
    return datasets.synthetic(n_users=1000, n_items=1500, interactions_per_user=30, seed=seed)


def embed_items(items: pd.DataFrame, encoder_name: str) -> tuple[np.ndarray, str]:
    """Content vectors of every item (rows follow ``items["item_id"]``) and the encoder name."""
    from hybrid_rec.content.encoders import make_encoder
    from hybrid_rec.content.text import item_texts

    cfg = ContentConfig(encoder=encoder_name)
    texts = item_texts(items, cfg).reindex(items[Columns.item].astype(str))
    encoder = make_encoder(cfg)
    start = time.perf_counter()
    vectors = np.asarray(encoder.encode(texts.fillna("").tolist()), dtype=np.float32)
    log.info(
        "embedded %d items with %s in %.1f s", len(items), encoder.name, time.perf_counter() - start
    )
    return vectors, encoder.name


# ----------------------------------------------------------------------------- running


def run_method(spec: MethodSpec, ctx: BenchContext, test: ColdStartEvaluator) -> dict[str, Any]:
    """Fit one method on ``ctx.split.train`` and evaluate it with the test-stage evaluator."""
    method = spec.factory(ctx)
    start = time.perf_counter()
    method.fit(ctx.split.train, ctx.items, ctx.content)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    result = test.evaluate(method)
    eval_s = time.perf_counter() - start
    out: dict[str, Any] = {**result, "fit_s": round(fit_s, 2), "eval_s": round(eval_s, 2)}
    if getattr(method, "best_epochs_", None) is not None:
        out["best_epochs"] = int(method.best_epochs_)  # type: ignore[attr-defined]
    log.info("%s: fit %.1f s, evaluate %.1f s", spec.name, fit_s, eval_s)
    return out


def merge_quality(
    path: Path, key: str, meta: dict[str, Any], results: dict[str, Any], order: Sequence[str]
) -> dict[str, Any]:
    """Update ``key`` in quality.json; keep other methods only if the split is the same.

    Returns this key's entry with its methods in ``order`` (registry order), then any others.
    """
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            log.warning("%s is not valid JSON; starting it afresh.", path)
    entry = data.get(key, {})
    methods = (
        entry.get("methods", {}) if entry.get("meta", {}).get("split") == meta["split"] else {}
    )
    methods.update(results)
    rank = {name: i for i, name in enumerate(order)}
    methods = dict(sorted(methods.items(), key=lambda kv: (rank.get(kv[0], len(rank)), kv[0])))
    data[key] = {"meta": meta, "methods": methods}
    atomic_write_json(path, data)
    return data[key]


def _fmt(value: Any, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


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
            row += [_fmt(res[s][f"recall@{k}"]), _fmt(res[s][f"ndcg@{k}"])]
        row += [
            _fmt(res["all"]["coverage"], 3),
            _fmt(res["all"]["long_tail_share"], 3),
            _fmt(res.get("fit_s"), 1),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def results_section(key: str, entry: dict[str, Any]) -> str:
    """The regenerated RESULTS.md section of one dataset key."""
    meta, k = entry["meta"], entry["meta"]["k"]
    split = meta["split"]
    users = {
        s: max((m[s]["n_users"] for m in entry["methods"].values()), default=0) for s in SETTINGS
    }
    lines = [
        f"<!-- quality:{key}:start -->",
        f"### Cold-start quality: {key}",
        "",
        f"Encoder `{meta['encoder']}`, split seed {split['seed']}: "
        f"{split['n_warm_items']} warm / {split['n_cold_items']} cold items "
        f"(half validation, half test); test users cold {users['cold']}, "
        f"warm {users['warm']}, all {users['all']}. Full ranking, k = {k}; warm and all "
        "exclude each user's training and validation positives; long tail = fewer than "
        f"{meta['long_tail_max']} training interactions. Generated by `scripts/evaluate.py` "
        f"on {meta['date']}.",
        "",
        *results_table(entry["methods"], k),
        "",
        f"![recall by popularity decile](recall_by_decile_{key}.png)",
        f"<!-- quality:{key}:end -->",
    ]
    return "\n".join(lines)


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


def print_table(key: str, methods: dict[str, Any], k: int) -> None:
    """A compact fixed-width table on stdout."""
    print(f"\n{key}  (recall@{k} / ndcg@{k}; fit seconds)")
    print(
        f"{'method':<14}" + "".join(f"{s:>16}" for s in SETTINGS) + f"{'cov':>7}{'tail':>7}"
        f"{'fit s':>8}"
    )
    for name, res in methods.items():
        cells = "".join(
            f"{_fmt(res[s][f'recall@{k}'], 3):>8}/{_fmt(res[s][f'ndcg@{k}'], 3):<7}"
            for s in SETTINGS
        )
        print(
            f"{name:<14}{cells}{_fmt(res['all']['coverage'], 2):>7}"
            f"{_fmt(res['all']['long_tail_share'], 2):>7}{_fmt(res.get('fit_s'), 1):>8}"
        )


def parse_args(argv: Sequence[str] | None, known: Sequence[str]) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=["100k", "1m", "synthetic"], default="100k")
    p.add_argument(
        "--encoder",
        default=DEFAULT_ENCODER,
        help="content encoder: minilm (default), hashing, mpnet, e5-multilingual",
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(known),
        metavar="NAME",
        help=f"methods to run (default: all of {', '.join(known)})",
    )
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, default=Path("benchmarks"))
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--long-tail-max", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ml1m-dir", default=None, help="unzipped ml-1m directory (for --dataset 1m)")
    args = p.parse_args(argv)
    args.methods = [m for chunk in args.methods for m in chunk.split(",") if m]
    unknown = [m for m in args.methods if m not in known]
    if unknown:
        p.error(f"unknown method(s) {unknown}; known: {', '.join(known)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    registry = build_methods()
    args = parse_args(argv, list(registry))

    ds = load_dataset(args.dataset, args.seed, args.ml1m_dir)
    items = ds.items.reset_index(drop=True)
    content, encoder_name = embed_items(items, args.encoder)
    split = cold_start_split(ds.interactions, SplitConfig(seed=args.seed))
    log.info("split: %s", split.info)
    key = ds.name if args.encoder == DEFAULT_ENCODER else f"{ds.name}+{args.encoder}"
    ctx = BenchContext(
        split,
        items,
        content,
        seed=args.seed,
        k=args.k,
        long_tail_max=args.long_tail_max,
        threads=args.threads,
    )

    # the test-stage evaluator stays out of the context that method factories see
    test = ColdStartEvaluator(
        split, k=args.k, long_tail_max=args.long_tail_max, stage="test", seed=args.seed
    )
    results: dict[str, Any] = {}
    skipped: list[str] = []
    for name in args.methods:
        try:
            results[name] = run_method(registry[name], ctx, test)
        except MissingDependencyError as exc:
            log.warning("skipping %s: %s", name, exc)
            skipped.append(name)

    meta = {
        "dataset": ds.name,
        "encoder": encoder_name,
        "k": args.k,
        "long_tail_max": args.long_tail_max,
        "split": {
            kk: (int(v) if isinstance(v, int | np.integer) else v) for kk, v in split.info.items()
        },
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    entry = merge_quality(args.out / "quality.json", key, meta, results, list(registry))
    plot_recall_by_decile(
        {m: r["all"]["recall_by_decile"] for m, r in entry["methods"].items()},
        args.out / f"recall_by_decile_{key}.png",
        title=f"{key}: recall@{args.k} by item popularity (all items)",
        ylabel=f"recall@{args.k}",
    )
    update_results_md(args.out / "RESULTS.md", key, results_section(key, entry))
    print_table(key, entry["methods"], args.k)
    if skipped:
        print(f"\nskipped (missing optional dependency): {', '.join(skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
