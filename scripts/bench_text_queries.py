"""How well a new user's words steer their list; writes benchmarks/text_queries.json.

A new user served from a taste in words alone (``recommend_for_new_user(text=...)``)
on MovieLens-100k with the default MiniLM encoder. For each of the 18 genres, the query
names it ("horror movies", "science fiction", "film noir" ...) and the top 10 is
read for:

* genre precision: the share of the top 10 that has the genre;
* own-history recall@20: for 300 users, the query naming the user's most frequent
  genre, and the share of their history in its top 20 (the model saw these users,
  but serves the query as a new one: it measures whether the words bring what
  people who like the genre watch, not only films that carry its name);
* mean log(1 + interactions) of the top 10, to show how much the list leans on
  popular items;

for each ``[model] text_weight`` given (0 is the user tower alone). The model is
fitted once (about 4 minutes on 2 cores) or loaded from ``--model-dir``.

    python scripts/bench_text_queries.py [--weights 0 0.5 1 2] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.data.datasets import load_movielens
from hybrid_rec.data.io import atomic_write_json

GENRES = {
    "Action": "action movies",
    "Adventure": "adventure movies",
    "Animation": "animation movies",
    "Children's": "children's family film",
    "Comedy": "comedy movies",
    "Crime": "crime movies",
    "Documentary": "documentary",
    "Drama": "drama movies",
    "Fantasy": "fantasy movies",
    "Film-Noir": "film noir",
    "Horror": "horror movies",
    "Musical": "musical movies",
    "Mystery": "mystery movies",
    "Romance": "romance movies",
    "Sci-Fi": "science fiction",
    "Thriller": "thriller movies",
    "War": "war movies",
    "Western": "western movies",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/text_queries.json"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    if args.model_dir is not None and args.model_dir.exists():
        rec = HybridRecommender.load(args.model_dir)
    else:
        data = load_movielens("100k")
        started = time.perf_counter()
        rec = HybridRecommender(RecommenderConfig()).fit(
            data.interactions, data.items, show_progress=False
        )
        print(f"fitted in {time.perf_counter() - started:.0f} s")
        if args.model_dir is not None:
            rec.save(args.model_dir)
    items = rec.items_.reset_index(drop=True)
    has = {g: items["genres"].astype(str).str.contains(g, regex=False).to_numpy() for g in GENRES}
    log = rec._log
    users = np.random.default_rng(0).choice(
        len(rec.user_ids_), min(args.users, len(rec.user_ids_)), replace=False
    )
    histories = {int(u): log["i"][log["u"] == u].to_numpy() for u in users}
    favourite = {u: max(GENRES, key=lambda g: has[g][h].sum()) for u, h in histories.items()}
    counts = rec.counts_

    rec.recommend_for_new_user(text="warm-up", k=20)  # first-call costs out of the timing
    rows = []
    for weight in args.weights:
        rec.config.model.text_weight = weight
        precision, popularity, tops = [], [], {}
        started = time.perf_counter()
        for genre, text in GENRES.items():
            out = rec.recommend_for_new_user(text=text, k=20)
            codes = rec.item_ids_.to_internal(out["item_id"].tolist(), kind="item")
            tops[genre] = codes
            precision.append(has[genre][codes[:10]].mean())
            popularity.append(np.log1p(counts[codes[:10]]).mean())
        per_query_ms = (time.perf_counter() - started) / len(GENRES) * 1e3
        recall = [
            np.isin(tops[favourite[u]], h).sum() / min(20, len(h)) for u, h in histories.items()
        ]
        rows.append(
            {
                "text_weight": weight,
                "genre_precision_at_10": round(float(np.mean(precision)), 4),
                "own_history_recall_at_20": round(float(np.mean(recall)), 4),
                "mean_log_count_top10": round(float(np.mean(popularity)), 3),
                "ms_per_query": round(per_query_ms, 1),
            }
        )
        print(rows[-1])
    atomic_write_json(
        args.out,
        {
            "dataset": "movielens-100k",
            "encoder": rec.encoder.name,
            "queries": GENRES,
            "users": len(histories),
            "generated": time.strftime("%Y-%m-%d"),
            "results": rows,
        },
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
