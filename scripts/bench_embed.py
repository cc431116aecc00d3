"""Benchmark the content pipeline; writes benchmarks/embed.json and benchmarks/embed.md.

Three figures, each against its target:

(a) throughput of :func:`reembed_catalog` (item texts, hashing, shards,
    manifest, fsyncs) as a ratio to a bare ``SentenceTransformer.encode`` of
    the same texts with the same loaded model, in the same run, runs
    interleaved and medians taken (target >= 0.9);
(b) a re-embed after 1% of the items changed, as a share of the full run's
    time (target <= 5%);
(c) peak RSS of re-embedding 100k synthetic items with the hashing encoder
    (dim 384, as MiniLM) in a fresh subprocess, and an estimate for MiniLM:
    its measured peak on a smaller catalogue plus what the hashing run grows
    by between that size and 100k (target < 2 GB). The peak is the child's
    ``VmHWM`` (/proc/self/status); ``resource.getrusage`` is reported beside
    it, but on Linux its ``ru_maxrss`` keeps the *parent's* peak across
    fork+exec, so in a child of this (model-holding) process it reads high.

The catalogue is MovieLens-1M when ``$HYBRID_REC_ML1M_DIR`` points at it,
else MovieLens-100k (from the recbole package, descriptions joined).

    python scripts/bench_embed.py [--repeats 3] [--rss-items 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pandas as pd

from hybrid_rec.config import ContentConfig
from hybrid_rec.content import (
    HashingEncoder,
    SentenceTransformerEncoder,
    item_texts,
    reembed_catalog,
)
from hybrid_rec.data.datasets import load_movielens, synthetic

log = logging.getLogger("bench_embed")

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"throughput_ratio": 0.9, "incremental_share": 0.05, "peak_rss_mb": 2048}


# ----------------------------------------------------------------------------- data


def load_catalogue() -> tuple[str, pd.DataFrame]:
    """MovieLens-1M if its directory is configured, else MovieLens-100k."""
    if os.environ.get("HYBRID_REC_ML1M_DIR"):
        return "ml-1m", load_movielens("1m").items
    return "ml-100k", load_movielens("100k").items


def synthetic_items(n: int) -> pd.DataFrame:
    return synthetic(n_users=20, n_items=n, interactions_per_user=2, seed=0).items


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- (a) and (b)


def throughput(
    items: pd.DataFrame,
    encoder: SentenceTransformerEncoder,
    repeats: int,
    config: ContentConfig,
    work: Path,
) -> dict[str, Any]:
    """Bare model.encode vs reembed_catalog on the same texts, interleaved."""
    texts = item_texts(items, config).tolist()
    model = encoder._model  # the very model the encoder wraps: same weights, same threads

    def bare() -> None:
        model.encode(
            texts,
            batch_size=config.batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )

    bare_s: list[float] = []
    full_s: list[float] = []
    for r in range(repeats):
        store = work / f"full-{r}"

        def run(store: Path = store) -> None:
            reembed_catalog(items, store, config=config, encoder=encoder, show_progress=False)

        if r % 2 == 0:
            bare_s.append(timed(bare))
            full_s.append(timed(run))
        else:
            full_s.append(timed(run))
            bare_s.append(timed(bare))
        log.info("repeat %d: bare %.2f s, reembed %.2f s", r, bare_s[-1], full_s[-1])
    bare_med, full_med = statistics.median(bare_s), statistics.median(full_s)
    return {
        "items": len(texts),
        "mean_text_chars": float(np.mean([len(t) for t in texts])),
        "bare_encode_s": bare_s,
        "reembed_s": full_s,
        "bare_items_per_s": len(texts) / bare_med,
        "reembed_items_per_s": len(texts) / full_med,
        "ratio": bare_med / full_med,
        "store": str(work / f"full-{repeats - 1}"),
        "full_median_s": full_med,
    }


def incremental(
    items: pd.DataFrame,
    encoder: SentenceTransformerEncoder,
    store: Path,
    full_s: float,
    repeats: int,
    config: ContentConfig,
) -> dict[str, Any]:
    """Re-embed after 1% of the items changed (a different 1% each time)."""
    changed = max(1, round(0.01 * len(items)))
    times, summaries = [], []
    current = items.copy()
    unchanged_s = timed(
        lambda: reembed_catalog(current, store, config=config, encoder=encoder, show_progress=False)
    )
    for r in range(repeats):
        rows = np.random.default_rng(r).choice(len(current), size=changed, replace=False)
        column = current.columns.get_loc("title")
        current.iloc[rows, column] = current.iloc[rows, column].astype(str) + f" (edit {r})"
        start = time.perf_counter()
        summary = reembed_catalog(
            current, store, config=config, encoder=encoder, show_progress=False
        )
        times.append(time.perf_counter() - start)
        summaries.append(str(summary))
        assert summary.changed == changed, summary
    median = statistics.median(times)
    return {
        "changed_items": changed,
        "seconds": times,
        "median_s": median,
        "share_of_full": median / full_s,
        "unchanged_run_s": unchanged_s,
        "summaries": summaries,
    }


# ----------------------------------------------------------------------------- (c)


def peak_rss_mb() -> float:
    """Peak RSS of this process's own address space (VmHWM), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_child(kind: str, n: int) -> dict[str, Any]:
    """Run in a fresh process: build n synthetic items, re-embed them, report peak RSS."""
    items = synthetic_items(n)
    encoder: Any = HashingEncoder(384) if kind == "hashing" else SentenceTransformerEncoder()
    before = peak_rss_mb()
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = reembed_catalog(
            items, tmp, config=ContentConfig(), encoder=encoder, show_progress=False
        )
        seconds = time.perf_counter() - start
    return {
        "kind": kind,
        "items": n,
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "getrusage_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds,
        "summary": str(summary),
    }


def measure_rss(kind: str, n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--rss-child", kind, str(n)],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=3600,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    log.info(
        "rss %s %d items: %.0f MB peak (%.1f s)", kind, n, result["peak_rss_mb"], result["seconds"]
    )
    return result


def memory(rss_items: int, minilm_items: int) -> dict[str, Any]:
    hashing_big = measure_rss("hashing", rss_items)
    hashing_small = measure_rss("hashing", minilm_items)
    minilm_small = measure_rss("minilm", minilm_items)
    growth = hashing_big["peak_rss_mb"] - hashing_small["peak_rss_mb"]
    return {
        "hashing_100k": hashing_big,
        "hashing_small": hashing_small,
        "minilm_small": minilm_small,
        "minilm_100k_estimate_mb": minilm_small["peak_rss_mb"] + growth,
        "estimate_method": f"MiniLM peak at {minilm_items} items + hashing peak growth from "
        f"{minilm_items} to {rss_items} items",
    }


# ----------------------------------------------------------------------------- report


def write_report(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "embed.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    a, b, c = result["throughput"], result["incremental"], result["memory"]
    ok = result["passed"]
    mark = {True: "✅", False: "❌"}
    lines = [
        "## Content embedding (`scripts/bench_embed.py`)",
        "",
        f"{result['dataset']}: {a['items']} items, mean text {a['mean_text_chars']:.0f} chars; "
        f"encoder {result['encoder']}; {result['machine']}. Medians of {result['repeats']} "
        "interleaved runs. Regenerate with `python scripts/bench_embed.py`.",
        "",
        "| figure | measured | target | |",
        "|---|---|---|---|",
        f"| (a) reembed throughput ÷ bare `SentenceTransformer.encode` | {a['ratio']:.3f} "
        f"({a['reembed_items_per_s']:.0f} vs {a['bare_items_per_s']:.0f} items/s) | ≥ 0.9 | "
        f"{mark[ok['throughput_ratio']]} |",
        f"| (b) re-embed after 1% changed ({b['changed_items']} items), share of full run | "
        f"{100 * b['share_of_full']:.1f}% ({b['median_s']:.2f} s of {a['full_median_s']:.1f} s) "
        f"| ≤ 5% | {mark[ok['incremental_share']]} |",
        f"| (c) peak RSS, 100k items, hashing encoder (dim 384) | "
        f"{c['hashing_100k']['peak_rss_mb']:.0f} MB | < 2048 MB | "
        f"{mark[ok['peak_rss_hashing']]} |",
        f"| (c) peak RSS, 100k items, MiniLM (estimate) | {c['minilm_100k_estimate_mb']:.0f} MB "
        f"| < 2048 MB | {mark[ok['peak_rss_minilm_estimate']]} |",
        "",
        "Peak RSS is the child process's VmHWM (/proc/self/status); getrusage's ru_maxrss "
        "inherits the benchmark parent's peak across fork+exec on Linux, so it is kept in the "
        f"JSON only. Before re-embedding (imports, encoder, catalogue) the 100k hashing child "
        f"held {c['hashing_100k']['rss_before_mb']:.0f} MB. "
        f"Unchanged catalogue (nothing to embed): {b['unchanged_run_s']:.2f} s. MiniLM measured "
        f"at {c['minilm_small']['items']} items: {c['minilm_small']['peak_rss_mb']:.0f} MB peak; "
        f"the estimate adds the hashing run's growth from {c['hashing_small']['items']} to "
        f"{c['hashing_100k']['items']} items (texts, hashes, manifest; vectors stream to disk "
        "one shard at a time).",
        "",
    ]
    (out / "embed.md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rss-items", type=int, default=100_000)
    parser.add_argument("--minilm-rss-items", type=int, default=5_000)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks")
    parser.add_argument("--rss-child", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        print(json.dumps(rss_child(args.rss_child[0], int(args.rss_child[1]))))
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("hybrid_rec").setLevel(logging.WARNING)

    import torch

    dataset, items = load_catalogue()
    config = ContentConfig()
    load_s = time.perf_counter()
    encoder = SentenceTransformerEncoder()
    load_s = time.perf_counter() - load_s
    with tempfile.TemporaryDirectory() as tmp:
        a = throughput(items, encoder, args.repeats, config, Path(tmp))
        b = incremental(
            items, encoder, Path(a.pop("store")), a["full_median_s"], args.repeats, config
        )
    c = memory(args.rss_items, args.minilm_rss_items)
    passed = {
        "throughput_ratio": a["ratio"] >= TARGETS["throughput_ratio"],
        "incremental_share": b["share_of_full"] <= TARGETS["incremental_share"],
        "peak_rss_hashing": c["hashing_100k"]["peak_rss_mb"] < TARGETS["peak_rss_mb"],
        "peak_rss_minilm_estimate": c["minilm_100k_estimate_mb"] < TARGETS["peak_rss_mb"],
    }
    result = {
        "dataset": dataset,
        "encoder": encoder.name,
        "model_load_s": load_s,
        "repeats": args.repeats,
        "machine": f"{os.cpu_count()} CPUs, torch {torch.__version__} with "
        f"{torch.get_num_threads()} threads, {platform.python_implementation()} "
        f"{platform.python_version()}",
        "batch_size": config.batch_size,
        "shard_size": config.shard_size,
        "targets": TARGETS,
        "throughput": a,
        "incremental": b,
        "memory": c,
        "passed": passed,
    }
    write_report(result, args.out)
    log.info("wrote %s and %s", args.out / "embed.json", args.out / "embed.md")
    log.info("passed: %s", passed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
