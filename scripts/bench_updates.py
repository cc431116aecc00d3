"""What one update or one filtered request costs on a large catalogue; writes
benchmarks/updates.json and updates.md.

A model fitted on a small synthetic catalogue (8 clusters, hashing encoder) grows
to ``--items`` items with ``add_items`` (as ``bench_scale.py`` does). Each operation
is then timed (best of ``--repeats``) and reported in milliseconds and as a multiple
of the machine's own reference, measured in the same run: one exact scoring pass of
one user over the whole catalogue (the index rows times the query, a float32
matrix-vector product). An operation whose cost does not grow with the catalogue
reads as a small, steady multiple; one that walks the catalogue in Python reads as
hundreds.

- ``recommend`` of one user: no filter; ``{"category": c}`` (an eighth of the items);
  every category but the user's favourite (seven eighths, the user's nearest items
  all left out) — with the share of users whose filtered list is full (k items);
- ``add_items`` of one new item;
- ``partial_fit`` of one event, and of 1,000 events; the first ``recommend`` after it;
- ``validate_interactions`` of one row against the catalogue.

    python scripts/bench_updates.py                 # 250,000 items (HNSW), about 7 min on 2 cores
    python scripts/bench_updates.py --items 20000   # about a minute
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.data.datasets import CLUSTER_VOCABULARY, synthetic, synthetic_new_items
from hybrid_rec.data.io import atomic_write_bytes, atomic_write_json
from hybrid_rec.data.schema import validate_interactions

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("bench_updates")
N_CLUSTERS = 8


def best_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * min(times)


def build(args: argparse.Namespace) -> tuple[HybridRecommender, pd.DataFrame, dict[str, str]]:
    """The grown model, its training log, and each user's favourite category."""
    ds = synthetic(
        n_users=args.users, n_items=2_000, n_clusters=N_CLUSTERS, interactions_per_user=20, seed=0
    )
    cfg = RecommenderConfig()
    cfg.content.encoder, cfg.content.hashing_dim = "hashing", 256
    cfg.model.epochs = 2
    rec = HybridRecommender(cfg).fit(ds.interactions, ds.items, show_progress=False)
    names = list(CLUSTER_VOCABULARY)[:N_CLUSTERS]
    per = (args.items - len(rec.item_ids_)) // N_CLUSTERS
    for c in range(N_CLUSTERS):
        rec.add_items(synthetic_new_items(per, c, seed=c, start_id=10_000_000 + c * per))
    with tempfile.TemporaryDirectory() as tmp:  # a save gives the grown catalogue the
        rec.save(Path(tmp) / "model")  # index its size calls for (HNSW past 200,000)
    log.info(
        "catalogue: %d items, %d users, %s index",
        len(rec.item_ids_),
        len(rec.user_ids_),
        rec.index_.kind,
    )
    favourite = {u: names[int(c)] for u, c in ds.info["user_cluster"].items()}
    return rec, ds.interactions, favourite


def run(args: argparse.Namespace) -> dict[str, Any]:
    rec, log_rows, favourite = build(args)
    categories = sorted(rec.items_["category"].astype(str).unique())
    users = sorted(favourite)[: args.users_timed]
    query = rec.user_queries()[rec.user_ids_.to_internal(users[:1])]
    rows = rec.index_.vectors
    reference = best_ms(lambda: rows @ query[0], args.repeats * 5)
    rec.recommend(users[:1], k=args.k)  # user vectors and tastes cached, as a server runs

    def others(u: str) -> dict[str, list[str]]:
        return {"category": [c for c in categories if c != favourite[u]]}

    out: dict[str, Any] = {"reference_ms": round(reference, 3)}
    timed = {
        "recommend": lambda: rec.recommend(users[:1], k=args.k),
        "recommend_category": lambda: rec.recommend(
            users[:1], k=args.k, filters={"category": categories[0]}
        ),
        "recommend_all_but_favourite": lambda: rec.recommend(
            users[:1], k=args.k, filters=others(users[0])
        ),
        "validate_one_row": lambda: validate_interactions(
            pd.DataFrame({"user_id": [users[0]], "item_id": [rec.items_["item_id"].iloc[7]]}),
            rec.items_,
        ),
    }
    for name, fn in timed.items():
        out[name] = best_ms(fn, args.repeats)
    full = [len(rec.recommend([u], k=args.k, filters=others(u))) == args.k for u in users]
    out["full_lists_all_but_favourite"] = round(float(np.mean(full)), 4)
    new = synthetic_new_items(args.repeats, 3, seed=99, start_id=90_000_000)
    out["add_one_item"] = min(
        best_ms(lambda i=i: rec.add_items(new.iloc[i : i + 1]), 1) for i in range(len(new))
    )
    t0 = int(log_rows["timestamp"].max()) + 1_000
    rng = np.random.default_rng(0)
    item_ids = rec.items_["item_id"].to_numpy()

    def feedback(n: int, at: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "user_id": rng.choice(users, n),
                "item_id": rng.choice(item_ids, n),
                "timestamp": at + np.arange(n),
            }
        )

    built = rec.index_.vectors.copy()
    rec.partial_fit(feedback(1, t0))  # the optimiser's one-time imports
    out["partial_fit_one_event"] = min(
        best_ms(lambda i=i: rec.partial_fit(feedback(1, t0 + 10 * (i + 1))), 1)
        for i in range(args.repeats)
    )
    out["recommend_after_partial_fit"] = best_ms(lambda: rec.recommend(users[1:2], k=args.k), 1)
    many = feedback(1_000, t0 + 10**6)
    out["partial_fit_1000_events"] = best_ms(lambda: rec.partial_fit(many), 1)
    rec.recommend(users[:50], k=args.k)  # user vectors cached again
    # items whose vectors the feedback changed (an HNSW graph searches them apart)
    out["items_updated"] = int((rec.index_.vectors[: len(built)] != built).any(axis=1).sum())
    out["recommend_after_updates"] = best_ms(
        lambda: rec.recommend(users[:1], k=args.k), args.repeats
    )
    with tempfile.TemporaryDirectory() as tmp:
        out["save_after_updates"] = best_ms(lambda: rec.save(Path(tmp) / "model"), 1)
    for key in list(out):
        if key not in ("reference_ms", "full_lists_all_but_favourite", "items_updated"):
            out[key] = {"ms": round(out[key], 2), "x_reference": round(out[key] / reference, 1)}
    out["items"] = len(rec.item_ids_)
    out["index"] = rec.index_.kind
    out["users"] = len(rec.user_ids_)
    return out


def markdown(result: dict[str, Any], command: str) -> str:
    rows = [
        ("`recommend`, one user", "recommend"),
        ("… filtered to one category (1/8 of the items)", "recommend_category"),
        ("… every category but the user's favourite (7/8)", "recommend_all_but_favourite"),
        ("`add_items`, one item", "add_one_item"),
        ("`partial_fit`, one event", "partial_fit_one_event"),
        ("first `recommend` after it", "recommend_after_partial_fit"),
        ("`partial_fit`, 1,000 events", "partial_fit_1000_events"),
        (
            f"`recommend`, one user, after the feedback changed {result['items_updated']:,} "
            f"items' vectors ({result['index']} index)",
            "recommend_after_updates",
        ),
        ("`save` after the updates", "save_after_updates"),
        ("`validate_interactions`, one row", "validate_one_row"),
    ]
    lines = [
        f"`{command}`: {result['items']:,} items, {result['users']:,} users, "
        f"{result['env']['cpus']} CPUs. Reference: one exact scoring pass of one user over "
        f"the catalogue, {result['reference_ms']} ms.",
        "",
        "| operation | ms | × reference |",
        "|---|---|---|",
    ]
    lines += [f"| {label} | {result[k]['ms']} | {result[k]['x_reference']} |" for label, k in rows]
    lines += [
        "",
        f"Filtered lists that are full (k items) with every category but the user's "
        f"favourite: {result['full_lists_all_but_favourite']:.1%} of the users timed.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=250_000)
    parser.add_argument("--users", type=int, default=4_000)
    parser.add_argument("--users-timed", type=int, default=200)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    command = ("python scripts/bench_updates.py " + " ".join(sys.argv[1:])).strip()
    result = run(args)
    result["env"] = {
        "cpus": len(os.sched_getaffinity(0)),
        "machine": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }
    result["command"] = command
    out = Path(args.out)
    atomic_write_json(out / "updates.json", result)
    atomic_write_bytes(out / "updates.md", markdown(result, command).encode())
    print(markdown(result, command))


if __name__ == "__main__":
    main()
