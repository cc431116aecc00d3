"""Re-embed a catalogue into an embedding store: new and changed items only.

A thin wrapper over :func:`hybrid_rec.content.reembed_catalog`::

    python scripts/reembed_catalog.py items.parquet --store vectors/
    python scripts/reembed_catalog.py items.csv --store vectors/ --encoder e5-multilingual --rebuild
    python scripts/reembed_catalog.py items.parquet --store vectors/ --backend ray --workers 4

``--backend ray`` (extra ``dist``) embeds the new and changed items on Ray
Data: on the cluster at ``$RAY_ADDRESS`` if set, else on a local one started
for the run; the store ends up the same as with the local backend.

Reads CSV, TSV, Parquet or JSON Lines; shows a progress bar; ends with one
summary line (new / changed / unchanged / removed, items per second). Exit
status: 0 on success, 2 on a user error (bad file, store of another encoder,
disk full ...), with the reason on stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from hybrid_rec.config import ContentConfig, load_config
from hybrid_rec.content import reembed_catalog
from hybrid_rec.errors import HybridRecError

log = logging.getLogger("hybrid_rec.scripts.reembed_catalog")


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        description="Embed the new and changed items of a catalogue into an embedding store.",
    )
    parser.add_argument("items", help="catalogue file: .csv, .tsv, .parquet or .jsonl")
    parser.add_argument("--store", required=True, help="embedding store directory")
    parser.add_argument("--config", help="a hybrid_rec TOML config; its [content] table is used")
    parser.add_argument(
        "--encoder",
        help="minilm (default), mpnet, e5-multilingual, hashing, or a local model directory",
    )
    parser.add_argument("--template", help="item-text template name or file")
    parser.add_argument("--columns", nargs="+", help="columns used for the item text")
    parser.add_argument("--batch-size", type=int, help="texts per forward pass")
    parser.add_argument("--shard-size", type=int, help="vectors per shard file")
    parser.add_argument(
        "--keep-removed", action="store_true", help="keep vectors of items gone from the file"
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="allow deleting more than half of the store (the file is the whole, smaller "
        "catalogue)",
    )
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="if the store was written by another encoder or version, delete it and start again",
    )
    parser.add_argument(
        "--repair", action="store_true", help="re-embed the items of corrupt shard files"
    )
    parser.add_argument(
        "--backend",
        choices=("local", "ray"),
        default="local",
        help="where to embed: this process (default) or Ray (pip install 'hybrid_rec[dist]'; "
        "the cluster at $RAY_ADDRESS, else a local one)",
    )
    parser.add_argument(
        "--workers", type=int, help="Ray: encoder actors (default: one per node of the cluster)"
    )
    parser.add_argument(
        "--cpus-per-worker",
        type=float,
        help="Ray: CPUs (and torch threads) per encoder actor (default: all of a node's)",
    )
    parser.add_argument(
        "--num-cpus", type=int, help="Ray: CPUs of the local cluster (default: all of them)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for another run writing the same store (default: refuse at once)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="draw the progress bar even when stderr is not a terminal (a log file)",
    )
    return parser


def content_config(args: argparse.Namespace) -> ContentConfig:
    """The config file's [content] table (or the defaults), overridden by the flags."""
    base = load_config(args.config).content if args.config else ContentConfig()
    overrides = {
        "encoder": args.encoder,
        "text_template": args.template,
        "text_columns": args.columns,
        "batch_size": args.batch_size,
        "shard_size": args.shard_size,
    }
    return base.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the re-embed; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend == "local" and (args.workers or args.num_cpus or args.cpus_per_worker):
        parser.error("--workers, --cpus-per-worker and --num-cpus apply to --backend ray only")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    progress = False if args.quiet else (True if args.progress else None)
    try:
        config = content_config(args)
        if args.backend == "ray":
            from hybrid_rec.distributed import BackendOptions, ray_reembed_catalog

            summary = ray_reembed_catalog(
                args.items,
                args.store,
                config=config,
                keep_removed=args.keep_removed,
                prune=args.prune,
                rebuild=args.rebuild,
                repair=args.repair,
                lock_wait=args.wait,
                options=BackendOptions(
                    num_workers=args.workers,
                    cpus_per_worker=args.cpus_per_worker,
                    num_cpus=args.num_cpus,
                    show_progress=progress,
                ),
            )
        else:
            summary = reembed_catalog(
                args.items,
                args.store,
                config=config,
                keep_removed=args.keep_removed,
                prune=args.prune,
                rebuild=args.rebuild,
                repair=args.repair,
                lock_wait=args.wait,
                show_progress=progress,
            )
    except (HybridRecError, ValueError) as exc:  # ValueError: a flag the config rejects
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
