"""Time ``HybridRecommender.fit`` at MovieLens-1M's size; writes benchmarks/fit.json and fit.md.

    python scripts/bench_fit.py                      # synthetic log shaped like ml-1m
    python scripts/bench_fit.py --ml1m-dir DIR       # the real ml-1m (ratings.dat, movies.dat)

The issue's target is a fit on ml-1m in under 10 minutes on 2 CPU cores. ml-1m
cannot be installed here (its licence forbids redistribution and no registry
package ships it), so by default the fit runs on a synthetic log of the same
shape: 6,040 users, 3,706 items, 1,000,209 events with timestamps
(``hybrid_rec.data.datasets.synthetic``, 10 clusters, 30% of each user's events
outside their cluster). The protocol is ``scripts/evaluate.py``'s: the
cold-start split (seed 42), the default configuration, the content vectors
computed beforehand by the default encoder (timed apart), and early stopping
on the split's validation stage.

The fit is timed as a whole and in parts (epochs, the post-training tuning),
next to the machine's own float32 matrix-multiply speed measured in the same
run, since absolute times on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.config import ContentConfig, SplitConfig
from hybrid_rec.content.encoders import make_encoder
from hybrid_rec.content.text import item_texts
from hybrid_rec.data import datasets
from hybrid_rec.data.io import atomic_write_bytes, atomic_write_json
from hybrid_rec.data.splits import cold_start_split

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 600.0
ML1M_SHAPE = {"users": 6040, "items": 3706, "events": 1_000_209}

log = logging.getLogger("bench_fit")


def matmul_gflops(threads: int, seconds: float = 2.0) -> float:
    """float32 GFLOP/s of torch's matrix multiply at a training-like shape."""
    torch.set_num_threads(threads)
    a, b = torch.randn(4096, 384), torch.randn(384, 256)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * 4096 * 384 * 256 * n / (time.perf_counter() - start) / 1e9


def load(args: argparse.Namespace) -> tuple[str, pd.DataFrame, pd.DataFrame]:
    if args.ml1m_dir:
        ds = datasets.load_movielens("1m", path=args.ml1m_dir)
        return "ml-1m", ds.interactions, ds.items
    per_user = round(ML1M_SHAPE["events"] / ML1M_SHAPE["users"])
    ds = datasets.synthetic(
        n_users=ML1M_SHAPE["users"],
        n_items=ML1M_SHAPE["items"],
        n_clusters=10,
        interactions_per_user=per_user,
        seed=args.seed,
        noise=0.3,
    )
    return "synthetic, ml-1m shape", ds.interactions, ds.items


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ml1m-dir", default=None)
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    gflops_before = matmul_gflops(args.threads)
    name, interactions, items = load(args)
    split = cold_start_split(interactions, SplitConfig(seed=args.seed))
    log.info("split: %s", split.info)

    content_cfg = ContentConfig(encoder=args.encoder)
    encoder = make_encoder(content_cfg)
    start = time.perf_counter()
    texts = item_texts(items, content_cfg).reindex(items["item_id"].astype(str))
    content = np.asarray(encoder.encode(texts.fillna("").tolist()), dtype=np.float32)
    embed_s = time.perf_counter() - start

    cfg = RecommenderConfig()
    cfg.content.encoder = args.encoder
    cfg.model.seed = args.seed
    cfg.model.threads = args.threads
    validation = pd.concat([split.val_warm, split.val_cold])
    start = time.perf_counter()
    rec = HybridRecommender(cfg, encoder=encoder).fit(
        split.train, items, validation=validation, content=content, show_progress=False
    )
    fit_s = time.perf_counter() - start
    gflops_after = matmul_gflops(args.threads)
    tr = rec.train_result_
    result: dict[str, Any] = {
        "data": name,
        "encoder": encoder.name,
        "n_users": int(interactions["user_id"].nunique()),
        "n_items": len(items),
        "n_events": len(interactions),
        "n_train": len(split.train),
        "n_validation": len(validation),
        "threads": args.threads,
        "embed_s": round(embed_s, 1),
        "fit_s": round(fit_s, 1),
        "train_s": round(tr.seconds, 1),
        "epochs_run": tr.epochs_run,
        "best_epoch": tr.best_epoch,
        "s_per_epoch": round(tr.seconds / max(1, tr.epochs_run), 1),
        "train_events_per_s": round(len(split.train) * tr.epochs_run / tr.seconds),
        "after_training_s": round(fit_s - tr.seconds, 1),
        "validation_scores": [round(s, 4) for s in tr.scores],
        "target_s": TARGET_S,
        "met": fit_s < TARGET_S,
        "matmul_gflops_before_after": [round(gflops_before, 1), round(gflops_after, 1)],
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "fit.json", result)
    atomic_write_bytes(args.out / "fit.md", render(result).encode())
    print(render(result))


def render(r: dict[str, Any]) -> str:
    mark = "✅" if r["met"] else "❌"
    return (
        "## Fit time at ml-1m size (`scripts/bench_fit.py`)\n\n"
        f"{r['data']}: {r['n_users']:,} users, {r['n_items']:,} items, {r['n_events']:,} events; "
        f"cold-start split seed 42 → {r['n_train']:,} training and {r['n_validation']:,} "
        f"validation interactions. Default configuration, {r['threads']} threads, torch "
        f"{r['torch']}, {r['date']}.\n\n"
        "| figure | measured |\n|---|---|\n"
        f"| `fit` (training, early stopping, tuning, index) | **{r['fit_s']:.0f} s** "
        f"(target < {r['target_s']:.0f} s {mark}) |\n"
        f"| epochs run / best | {r['epochs_run']} / {r['best_epoch']} |\n"
        f"| training | {r['train_s']:.0f} s, {r['s_per_epoch']:.0f} s per epoch with its "
        f"validation, {r['train_events_per_s']:,} training events/s |\n"
        f"| after training (neighbour and offset tuning, index) | {r['after_training_s']:.0f} s |\n"
        f"| content vectors beforehand ({r['encoder']}) | {r['embed_s']:.0f} s |\n"
        f"| float32 matmul speed before / after, GFLOP/s | "
        f"{r['matmul_gflops_before_after'][0]} / {r['matmul_gflops_before_after'][1]} |\n"
        f"\nValidation recall@20 by epoch: {', '.join(map(str, r['validation_scores']))}.\n"
    )


if __name__ == "__main__":
    main()
