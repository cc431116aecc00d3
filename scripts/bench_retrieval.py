"""Retrieval benchmark: HNSW vs exact search at catalogue scale.

Builds ``--items`` synthetic fused-like item vectors (clustered, L2-normalised,
64-d by default), indexes them with the library's :class:`VectorIndex` twice
(``Flat`` = exact, and ``HNSW32,Flat``), and measures for single-user queries
(the ``recommend`` hot path): p50 / p99 latency, recall@20 of HNSW against
exact, and the speed ratio. Results go to ``benchmarks/retrieval.json`` and
``benchmarks/retrieval.md``.

    python scripts/bench_retrieval.py --items 1000000
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import faiss
import numpy as np

from hybrid_rec.config import IndexConfig
from hybrid_rec.data.io import atomic_write_bytes, atomic_write_json
from hybrid_rec.index import VectorIndex


def clustered_vectors(n: int, dim: int, n_clusters: int, seed: int) -> np.ndarray:
    """Unit vectors drawn around ``n_clusters`` random centres, generated in chunks."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 200_000):
        stop = min(n, start + 200_000)
        assign = rng.integers(0, n_clusters, stop - start)
        x = centres[assign] + 0.7 * rng.standard_normal((stop - start, dim)).astype(np.float32)
        out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def latencies(index: VectorIndex, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-query wall times (ms) and the ids found, one query at a time."""
    times, ids = [], []
    for q in queries:
        start = time.perf_counter()
        _, found = index.search(q[None, :], k)
        times.append((time.perf_counter() - start) * 1000)
        ids.append(found[0])
    return np.asarray(times), np.asarray(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--ef-search", type=int, default=128)
    parser.add_argument("--out", default="benchmarks")
    args = parser.parse_args()

    threads = faiss.omp_get_max_threads()
    x = clustered_vectors(args.items, args.dim, 1000, seed=0)
    queries = clustered_vectors(args.queries, args.dim, 1000, seed=1)
    cfg = IndexConfig(hnsw_ef_search=args.ef_search)

    start = time.perf_counter()
    exact = VectorIndex(args.dim, cfg, factory="Flat").build(x)
    exact_build = time.perf_counter() - start
    start = time.perf_counter()
    hnsw = VectorIndex(args.dim, cfg, factory="HNSW32,Flat").build(x)
    hnsw_build = time.perf_counter() - start

    latencies(hnsw, queries[:20], args.k)  # warm-up
    exact_ms, exact_ids = latencies(exact, queries, args.k)
    hnsw_ms, hnsw_ids = latencies(hnsw, queries, args.k)
    recall = float(
        np.mean([len(set(a) & set(b)) / args.k for a, b in zip(hnsw_ids, exact_ids, strict=True)])
    )
    result = {
        "items": args.items,
        "dim": args.dim,
        "queries": args.queries,
        "k": args.k,
        "faiss_threads": threads,
        "ef_search": args.ef_search,
        "build_seconds": {"exact": round(exact_build, 2), "hnsw": round(hnsw_build, 1)},
        "exact_ms": {
            "p50": round(float(np.percentile(exact_ms, 50)), 3),
            "p99": round(float(np.percentile(exact_ms, 99)), 3),
        },
        "hnsw_ms": {
            "p50": round(float(np.percentile(hnsw_ms, 50)), 3),
            "p99": round(float(np.percentile(hnsw_ms, 99)), 3),
        },
        "hnsw_recall_at_k_vs_exact": round(recall, 4),
        "speedup_p50": round(float(np.percentile(exact_ms, 50) / np.percentile(hnsw_ms, 50)), 1),
    }
    out = Path(args.out)
    atomic_write_json(out / "retrieval.json", result)
    md = (
        "# Retrieval: HNSW vs exact\n\n"
        f"`python scripts/bench_retrieval.py --items {args.items}` — {args.items:,} unit vectors "
        f"of dim {args.dim}, {args.queries} single-user queries, top-{args.k}, "
        f"{threads} FAISS threads.\n\n"
        "| index | build s | p50 ms | p99 ms | recall@k vs exact |\n|---|---|---|---|---|\n"
        f"| exact (Flat) | {result['build_seconds']['exact']} | {result['exact_ms']['p50']} | "
        f"{result['exact_ms']['p99']} | 1.0 |\n"
        f"| HNSW32 (efSearch {args.ef_search}) | {result['build_seconds']['hnsw']} | "
        f"{result['hnsw_ms']['p50']} | {result['hnsw_ms']['p99']} | "
        f"{result['hnsw_recall_at_k_vs_exact']} |\n\n"
        f"HNSW is {result['speedup_p50']}x faster than exact search at p50 in the same run.\n"
    )
    atomic_write_bytes(out / "retrieval.md", md.encode())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
