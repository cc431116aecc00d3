"""The ``hybrid-rec`` command line.

Each command is a thin wrapper over the library; a user's mistake prints one
readable line (``error: ...``) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hybrid_rec.config import DataConfig
from hybrid_rec.data.columns import Columns
from hybrid_rec.data.io import read_table
from hybrid_rec.data.schema import validate_interactions, validate_items
from hybrid_rec.data.summary import summarize_interactions, summarize_items
from hybrid_rec.errors import HybridRecError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-rec",
    help="Hybrid recommendations for the cold start and the long tail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and validate data files.", no_args_is_help=True)
app.add_typer(data_app, name="data")


class FileKind(StrEnum):
    auto = "auto"
    interactions = "interactions"
    items = "items"


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@data_app.command("check")
def data_check(
    file: Annotated[Path, typer.Argument(help="CSV, TSV, Parquet or JSON Lines file.")],
    kind: Annotated[FileKind, typer.Option(help="What the file holds.")] = FileKind.auto,
    items: Annotated[
        Path | None, typer.Option(help="Item catalogue to check interaction item ids against.")
    ] = None,
    long_tail: Annotated[int, typer.Option(help="Items with fewer interactions are tail.")] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Validate an interactions or items file and print a summary."""
    frame = read_table(file)
    resolved = kind
    if kind is FileKind.auto:
        resolved = FileKind.interactions if Columns.user in frame.columns else FileKind.items
    if resolved is FileKind.items:
        summary = summarize_items(validate_items(frame))
    else:
        catalogue = validate_items(read_table(items)) if items is not None else None
        clean = validate_interactions(frame, catalogue, config=DataConfig())
        summary = summarize_interactions(clean, long_tail)  # type: ignore[assignment]
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    typer.echo(f"{file}: valid {resolved.value} file")
    for line in summary.lines():
        typer.echo("  " + line)


@data_app.command("export")
def data_export(
    dataset: Annotated[str, typer.Argument(help="movielens-100k, movielens-1m or synthetic.")],
    out_dir: Annotated[Path, typer.Argument(help="Folder for interactions.csv and items.csv.")],
    fmt: Annotated[str, typer.Option("--format", help="csv, parquet or jsonl.")] = "csv",
) -> None:
    """Write a bundled dataset as interactions + items files (to try the other commands)."""
    from hybrid_rec.data.datasets import load_movielens, synthetic
    from hybrid_rec.data.io import write_table

    names = {
        "movielens-100k": lambda: load_movielens("100k"),
        "movielens-1m": lambda: load_movielens("1m"),
        "synthetic": synthetic,
    }
    if dataset not in names:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; choose from {sorted(names)}.")
    if fmt not in ("csv", "parquet", "jsonl"):
        raise typer.BadParameter("--format must be csv, parquet or jsonl.")
    ds = names[dataset]()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(ds.interactions, out_dir / f"interactions.{fmt}")
    write_table(ds.items, out_dir / f"items.{fmt}")
    typer.echo(
        f"wrote {len(ds.interactions):,} interactions and {len(ds.items):,} items to {out_dir}"
    )


@app.command("embed")
def embed_cmd(
    items: Annotated[Path, typer.Argument(help="Catalogue file (CSV, Parquet or JSON Lines).")],
    store: Annotated[Path, typer.Option("--store", help="Embedding store directory.")],
    encoder: Annotated[
        str | None,
        typer.Option(
            help="minilm (default), mpnet, e5-multilingual, hashing, or a local model directory."
        ),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="TOML config ([content] table).")] = None,
    keep_removed: Annotated[
        bool, typer.Option(help="Keep vectors of items gone from the file.")
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="Start again if the store was written by another encoder or version."),
    ] = False,
    repair: Annotated[bool, typer.Option(help="Re-embed the items of corrupt shards.")] = False,
) -> None:
    """Embed new and changed items into an embedding store (unchanged items are skipped)."""
    from hybrid_rec.config import RecommenderConfig, load_config
    from hybrid_rec.content import reembed_catalog

    cfg = (load_config(config) if config else RecommenderConfig()).content
    if encoder:
        cfg.encoder = encoder
    summary = reembed_catalog(
        items, store, config=cfg, keep_removed=keep_removed, rebuild=rebuild, repair=repair
    )
    typer.echo(str(summary))


@app.command("fit")
def fit_cmd(
    interactions: Annotated[Path, typer.Argument(help="Interactions file.")],
    items: Annotated[Path, typer.Argument(help="Item catalogue file.")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-o", help="Where to save.")],
    config: Annotated[Path | None, typer.Option(help="TOML config.")] = None,
    encoder: Annotated[
        str | None, typer.Option(help="minilm, hashing, e5-multilingual, or a local model dir.")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Override model.epochs.")] = None,
) -> None:
    """Fit a model on interactions + items and save it to a directory."""
    from hybrid_rec.config import RecommenderConfig, load_config
    from hybrid_rec.recommender import HybridRecommender

    cfg = load_config(config) if config else RecommenderConfig()
    if encoder:
        cfg.content.encoder = encoder
    if epochs:
        cfg.model.epochs = epochs
    rec = HybridRecommender(cfg).fit(read_table(interactions), read_table(items))
    rec.save(model_dir)
    typer.echo(f"saved {rec!r} to {model_dir}")


@app.command("recommend")
def recommend_cmd(
    users: Annotated[list[str], typer.Argument(help="User ids.")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-m", help="A saved model.")],
    k: Annotated[int, typer.Option("-k", help="How many items per user.")] = 10,
    out: Annotated[Path | None, typer.Option(help="Write CSV/Parquet/JSONL instead.")] = None,
) -> None:
    """Top-k items for known users."""
    from hybrid_rec.data.io import write_table
    from hybrid_rec.recommender import HybridRecommender

    rec = HybridRecommender.load(model_dir)
    frame = rec.recommend(users, k=k)
    frame = frame.merge(rec.items_, on=Columns.item, how="left")
    if out:
        write_table(frame, out)
        typer.echo(f"wrote {len(frame)} rows to {out}")
        return
    cols = [c for c in ("user_id", "rank", "item_id", "score", "title") if c in frame.columns]
    typer.echo(frame[cols].to_string(index=False))


@app.command("score-cold")
def score_cold_cmd(
    items: Annotated[Path, typer.Argument(help="New items (not yet in the model).")],
    model_dir: Annotated[Path, typer.Option("--model-dir", "-m", help="A saved model.")],
    out: Annotated[Path, typer.Option(help="Output file (.parquet, .csv or .jsonl).")],
    k: Annotated[int, typer.Option("-k", help="Users per item.")] = 100,
) -> None:
    """For each new item, the k users most likely to want it."""
    from hybrid_rec.data.io import write_table
    from hybrid_rec.recommender import HybridRecommender

    rec = HybridRecommender.load(model_dir)
    frame = rec.score_cold_items(read_table(items), k=k)
    write_table(frame, out)
    typer.echo(f"wrote {len(frame):,} (item, user) rows to {out}")


@app.command("serve")
def serve_cmd(
    model_dir: Annotated[
        Path | None,
        typer.Option(help="A saved model (default: fit MovieLens-100k once into models/ml100k)."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind (loopback unless you ask).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 7860,
) -> None:
    """Open the Gradio demo app (recommendations with explanations, new user, new item)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from hybrid_rec.serve import serve

    serve(model_dir=model_dir, host=host, port=port)


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one line."""
    try:
        app(standalone_mode=False)
    except HybridRecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Abort:
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
