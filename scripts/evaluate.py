"""Cold-start benchmark: every method on the same split, cold / warm / all on the test split.

Usage::

    python scripts/evaluate.py --dataset 100k --encoder minilm --seed 42 --out benchmarks/
    python scripts/evaluate.py --dataset 100k --repeats 3      # mean ± sd over 3 model seeds
    python scripts/evaluate.py --dataset synthetic --encoder hashing --methods popularity lightfm

The dataset is loaded, its item texts embedded once (the content vectors are
shared by every method), ``cold_start_split`` is run with the seed, and each
method is fitted on ``split.train`` and evaluated on the test stage (anything
tuned — LightFM's epochs, the hybrid's early stopping — is tuned on the
validation stage). The benchmark itself lives in
:mod:`hybrid_rec.evaluation.benchmark`, shared with ``hybrid-rec evaluate`` (the
same run on your own files). Results go to ``<out>/quality.json``,
``<out>/RESULTS.md`` (a regenerated section per dataset key) and
``<out>/recall_by_decile_<key>.png``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hybrid_rec.config import SplitConfig
from hybrid_rec.evaluation.benchmark import (
    build_methods,
    embed_items,
    format_table,
    run_benchmark,
    select_methods,
    write_results,
)

DEFAULT_ENCODER = "minilm"


def load_dataset(name: str, seed: int, ml1m_dir: str | None) -> Any:
    """Load ``100k``, ``1m`` or ``synthetic`` as a :class:`~hybrid_rec.data.datasets.Dataset`."""
    from hybrid_rec.data import datasets

    if name == "100k":
        return datasets.load_movielens("100k")
    if name == "1m":
        return datasets.load_movielens("1m", path=ml1m_dir)
    return datasets.synthetic(n_users=1000, n_items=1500, interactions_per_user=30, seed=seed)


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
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fits per trained method, with model seeds seed, seed+1, ... (mean ± sd reported)",
    )
    p.add_argument("--out", type=Path, default=Path("benchmarks"))
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--long-tail-max", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--ml1m-dir", default=None, help="unzipped ml-1m directory (for --dataset 1m)")
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    try:
        args.methods = select_methods(args.methods)
    except ValueError as exc:
        p.error(str(exc))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args = parse_args(argv, list(build_methods()))

    ds = load_dataset(args.dataset, args.seed, args.ml1m_dir)
    items = ds.items.reset_index(drop=True)
    content, encoder_name = embed_items(items, args.encoder)
    key = ds.name if args.encoder == DEFAULT_ENCODER else f"{ds.name}+{args.encoder}"
    run = run_benchmark(
        ds.interactions,
        items,
        content,
        key=key,
        dataset=ds.name,
        encoder=encoder_name,
        methods=args.methods,
        split_config=SplitConfig(seed=args.seed),
        repeats=args.repeats,
        k=args.k,
        long_tail_max=args.long_tail_max,
        threads=args.threads,
    )
    entry = write_results(args.out, run)
    print("\n" + format_table(key, entry["methods"], args.k))
    if run.skipped:
        print(f"\nskipped (missing optional dependency): {', '.join(run.skipped)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
