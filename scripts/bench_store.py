"""Batch cold-start scoring with a real sentence-transformer, with and without an embedding store.

    python scripts/bench_store.py [--items 1000] [--k 50] [--out benchmarks]

A model is fitted on MovieLens-100k with the default encoder (MiniLM; two
epochs, the quality does not matter here), then ``--items`` catalogue rows,
renamed, are scored as brand-new items three ways, in one process:

1. ``score_cold_items(new)``: every text goes through the encoder;
2. ``EmbeddingStore.sync``: the nightly re-embed that fills a store;
3. ``score_cold_items(new, store=...)``: the vectors are read from the store.

Writes ``benchmarks/store.json`` and prints one line. The two results must be
identical (checked): the store holds exactly what the encoder gave.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.content import EmbeddingStore, item_texts
from hybrid_rec.data import datasets
from hybrid_rec.data.io import atomic_write_json

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--out", default=str(ROOT / "benchmarks"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    ds = datasets.load_movielens("100k")
    cfg = RecommenderConfig()
    cfg.model.epochs = 2
    rec = HybridRecommender(cfg).fit(ds.interactions, ds.items, show_progress=False)
    new = ds.items.iloc[: args.items].copy()
    new["item_id"] = "new-" + new["item_id"].astype(str)

    start = time.perf_counter()
    plain = rec.score_cold_items(new, k=args.k)
    plain_s = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore.for_encoder(Path(tmp) / "vectors", rec.encoder)
        start = time.perf_counter()
        store.sync(item_texts(new, rec.config.content), rec.encoder, show_progress=False)
        sync_s = time.perf_counter() - start
        start = time.perf_counter()
        stored = rec.score_cold_items(new, k=args.k, store=store)
        stored_s = time.perf_counter() - start
    identical = bool(
        (plain["user_id"].to_numpy() == stored["user_id"].to_numpy()).all()
        and np.array_equal(plain["score"].to_numpy(), stored["score"].to_numpy())
    )
    result = {
        "encoder": rec.encoder.name,
        "items": len(new),
        "users": len(rec.user_ids_),
        "k": args.k,
        "without_store_s": round(plain_s, 2),
        "store_sync_s": round(sync_s, 2),
        "with_store_s": round(stored_s, 3),
        "speedup": round(plain_s / stored_s, 1),
        "identical": identical,
    }
    atomic_write_json(Path(args.out) / "store.json", result)
    print(
        f"{result['encoder']}: {len(new):,} new items x {result['users']:,} users, k={args.k}: "
        f"{plain_s:.2f} s without a store, {stored_s:.2f} s reading one ({result['speedup']}x; "
        f"filling it took {sync_s:.2f} s); identical results: {identical}"
    )
    if not identical:
        raise SystemExit("the results with and without the store differ")


if __name__ == "__main__":
    main()
