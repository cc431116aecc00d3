"""LightFM's settings chosen on the validation stage, as the hybrid's defaults were.

Usage::

    python scripts/tune_lightfm.py --dataset 100k --out benchmarks/

The benchmark's LightFM baseline chooses only its epoch count on validation.
The hybrid's defaults were chosen over many runs on the validation stage of
the same split, so this script gives LightFM a search of its own: starting
from the benchmark's settings, it changes one setting at a time (content
components, embedding size, learning rate, regularisation, loss) and keeps a
change that raises validation Recall@k by more than ``--min-gain`` (LightFM's
parallel training moves a fit's recall by about 0.003 between runs), until a
pass over every setting keeps none (coordinate ascent). Each fit still picks
its epochs on validation. The criterion is validation Recall@k on ``all``
items, LightFM's own early-stopping criterion; cold and warm are recorded
beside it. The test stage is never evaluated here.

Writes ``<out>/lightfm_grid.json`` (every fit, the chosen settings) after each
fit, and prints a table; run again, it reuses the fits that file holds for the
same dataset, encoder, split seed and k. The chosen settings become the
benchmark's (:data:`hybrid_rec.evaluation.benchmark.LIGHTFM_SETTINGS`) by hand.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid_rec.config import RecommenderConfig, SplitConfig
from hybrid_rec.data.io import atomic_write_json
from hybrid_rec.data.splits import cold_start_split
from hybrid_rec.evaluation import ColdStartEvaluator
from hybrid_rec.evaluation.baselines import LightFMBaseline
from hybrid_rec.evaluation.benchmark import LIGHTFM_SETTINGS, embed_items, with_attributes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluate import load_dataset

log = logging.getLogger("tune_lightfm")

# the values tried for each setting, the benchmark's current one among them
GRID: dict[str, list[Any]] = {
    # all 384 + 26 dimensions (None) trained 8x slower for lower recall (0.165 against
    # 0.224 validation all on ml-100k, 581 s against 74 s): not searched
    "content_dim": [16, 32, 64],
    "no_components": [32, 64, 128],
    "learning_rate": [0.02, 0.05, 0.1],
    "item_alpha": [0.0, 1e-6, 1e-5],
    "loss": ["warp", "bpr"],
}


def fit_and_score(
    split: Any, items: Any, content: Any, settings: dict[str, Any], *, seed: int, k: int
) -> dict[str, Any]:
    """One LightFM fit (epochs on validation ``all``), its validation cold / warm / all."""
    stop = ColdStartEvaluator(split, k=k, which=("all",), stage="val", seed=seed)
    metric = f"recall@{k}"
    params = {**settings, "user_alpha": settings["item_alpha"]}
    model = LightFMBaseline(
        **params,
        validate=lambda s: float(stop(s)["all"][metric] or 0.0),
        seed=seed,
        threads=2,
    )
    start = time.perf_counter()
    model.fit(split.train, items, content)
    fit_s = time.perf_counter() - start
    val = ColdStartEvaluator(split, k=k, stage="val", seed=seed)(model)
    row = {
        "settings": settings,
        "epochs": model.best_epochs_,
        "fit_s": round(fit_s, 1),
        **{f"val_{s}": round(float(val[s][metric]), 4) for s in ("cold", "warm", "all")},
    }
    log.info("%s", row)
    return row


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", default="100k", choices=["100k", "1m", "synthetic"])
    p.add_argument("--encoder", default="minilm")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--out", default="benchmarks")
    p.add_argument("--min-gain", type=float, default=0.002)
    p.add_argument("--ml1m-dir", default=None)
    args = p.parse_args(argv)

    ds = load_dataset(args.dataset, args.seed, args.ml1m_dir)
    items = ds.items.reset_index(drop=True)
    content, encoder_name = embed_items(items, args.encoder)
    split = cold_start_split(ds.interactions, SplitConfig(seed=args.seed))
    content = with_attributes(content, items, RecommenderConfig())  # as the benchmark gives it

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lightfm_grid.json"
    head = {"dataset": ds.name, "encoder": encoder_name, "split_seed": args.seed, "k": args.k}
    earlier = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    same = all(earlier.get(key) == value for key, value in head.items())
    rows: list[dict[str, Any]] = list(earlier.get("fits", [])) if same else []
    seen = {json.dumps(r["settings"], sort_keys=True): r for r in rows}
    best = dict(LIGHTFM_SETTINGS)

    def write() -> None:
        atomic_write_json(
            path,
            {
                **head,
                "criterion": f"validation recall@{args.k}, all items; gain > {args.min_gain}",
                "start": LIGHTFM_SETTINGS,
                "chosen": best,
                "fits": rows,
                "date": time.strftime("%Y-%m-%d"),
            },
        )

    def run(settings: dict[str, Any]) -> dict[str, Any]:
        key = json.dumps(settings, sort_keys=True)
        if key not in seen:
            seen[key] = fit_and_score(split, items, content, settings, seed=args.seed, k=args.k)
            rows.append(seen[key])
            write()
        return seen[key]

    best_row = run(best)
    improved = True
    while improved:
        improved = False
        for name, values in GRID.items():
            for value in values:
                trial = {**best, name: value}
                row = run(trial)
                if row["val_all"] > best_row["val_all"] + args.min_gain:
                    best, best_row, improved = trial, row, True
    write()
    print("| settings | epochs | val cold | val warm | val all |\n|---|---|---|---|---|")
    for row in rows:
        mark = " **chosen**" if row is best_row else ""
        cells = ", ".join(f"{k}={v}" for k, v in row["settings"].items())
        print(
            f"| {cells}{mark} | {row['epochs']} | {row['val_cold']:.4f} | "
            f"{row['val_warm']:.4f} | {row['val_all']:.4f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
