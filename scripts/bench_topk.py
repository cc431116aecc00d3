"""Benchmark the batch-scoring kernel (exact top-k by inner product); writes benchmarks/topk.json.

For ``--chunks`` chunks of 1,024 query rows against n target rows (129 dims, the
size of a user query), k = 100, one run times, in alternating order:

- ``matmul``: the bare float32 product into a preallocated ``1024 x n`` output
  (the reference of ``bench_scale.py``);
- ``argpartition``: that product followed by ``np.argpartition`` of each row and
  a sort of the k best (the textbook kernel);
- ``faiss``: :class:`hybrid_rec.batch.TopK`, i.e. ``faiss.knn`` (blocked BLAS
  feeding per-query heaps), what the library uses.

Each figure is reported as a ratio to ``matmul`` in the same run (absolute times
are noisy on a shared machine); 1.0 means selecting the top k costs nothing.

    python scripts/bench_topk.py                     # n = 1k, 5k, 20k, 100k (~1 min)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from hybrid_rec.batch import TopK
from hybrid_rec.data.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]
DIM, CHUNK = 129, 1024


def argpartition_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k best by ``np.argpartition`` over the whole row, then sorted."""
    cols = np.argpartition(scores, scores.shape[1] - k, axis=1)[:, -k:]
    top = np.take_along_axis(scores, cols, 1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(top, order, 1), np.take_along_axis(cols, order, 1)


def measure(n: int, k: int, chunks: int, rounds: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    targets = rng.standard_normal((n, DIM), dtype=np.float32)
    queries = rng.standard_normal((chunks * CHUNK, DIM), dtype=np.float32)
    out = np.empty((CHUNK, n), dtype=np.float32)
    kernel = TopK(targets, k)

    def run(name: str) -> float:
        start = time.perf_counter()
        for s in range(0, len(queries), CHUNK):
            q = queries[s : s + CHUNK]
            if name == "faiss":
                kernel(q)
                continue
            np.matmul(q, targets.T, out=out)
            if name == "argpartition":
                argpartition_top_k(out, k)
        return time.perf_counter() - start

    names = ["matmul", "argpartition", "faiss"]
    run("faiss")  # warm-up
    times = {name: 0.0 for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            times[name] += run(name)
    # the same answer: the faiss kernel's scores equal the textbook kernel's
    values, _ = kernel(queries[:CHUNK])
    np.matmul(queries[:CHUNK], targets.T, out=out)
    ref, _ = argpartition_top_k(out, k)
    return {
        "n": n,
        "seconds": {name: round(t, 3) for name, t in times.items()},
        "argpartition_over_matmul": round(times["matmul"] / times["argpartition"], 3),
        "faiss_over_matmul": round(times["matmul"] / times["faiss"], 3),
        "max_score_difference": float(np.abs(values - ref).max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[1_000, 5_000, 20_000, 100_000])
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "topk.json"))
    args = parser.parse_args()
    rows = [measure(n, args.k, args.chunks, args.rounds, seed=i) for i, n in enumerate(args.n)]
    result = {
        "k": args.k,
        "queries": args.chunks * CHUNK,
        "dim": DIM,
        "rounds": args.rounds,
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.processor() or platform.machine(),
        "rows": rows,
        "command": "python scripts/bench_topk.py",
    }
    atomic_write_json(Path(args.out), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
