"""The ``hybrid-rec`` command line.

Each command is a thin wrapper over the library; a user's mistake prints one
readable line (``error: ...``) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import re
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError

from hybrid_rec.config import DataConfig, RecommenderConfig
from hybrid_rec.data.columns import TITLE_COLUMNS, Columns
from hybrid_rec.data.idmap import id_list
from hybrid_rec.data.io import read_table
from hybrid_rec.data.schema import (
    lookalikes,
    normalize_ids,
    validate_interactions,
    validate_items,
)
from hybrid_rec.data.summary import summarize_interactions, summarize_items
from hybrid_rec.errors import ConfigError, DataValidationError, HybridRecError, UnknownIdError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from hybrid_rec.batch import BatchReport
    from hybrid_rec.recommender import HybridRecommender

__all__ = ["app", "main"]

app = typer.Typer(
    name="hybrid-rec",
    help="Hybrid recommendations for the cold start and the long tail.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Plain help: no Rich markup, so "[content]" in a help text shows as written.
    rich_markup_mode=None,
)
data_app = typer.Typer(
    help="Inspect and validate data files.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(data_app, name="data")


class FileKind(StrEnum):
    auto = "auto"
    interactions = "interactions"
    items = "items"


class ExplainBackend(StrEnum):
    llama_cpp = "llama_cpp"
    transformers = "transformers"
    template = "template"


class Backend(StrEnum):
    local = "local"
    ray = "ray"


class UnknownUsers(StrEnum):
    error = "error"
    skip = "skip"
    popular = "popular"


class UnknownItems(StrEnum):
    error = "error"
    drop = "drop"


def _load_config(
    path: Path | None, overrides: dict[str, tuple[str, object]] | None = None
) -> RecommenderConfig:
    """The config at ``path`` (default settings without one) with the command line's
    ``overrides`` applied: ``{"--epochs": ("model.epochs", 3)}``, a value of None meaning
    the option was not given. A value the config refuses is a :class:`ConfigError` that
    names the option, before any work."""
    from hybrid_rec.config import load_config

    cfg = load_config(path) if path is not None else RecommenderConfig()
    for option, (field, value) in (overrides or {}).items():
        if value is None:
            continue
        section, name = field.split(".")
        stage = getattr(cfg, section)
        try:
            updated = type(stage).model_validate({**stage.model_dump(), name: value})
        except ValidationError as exc:
            raise ConfigError(f"{option} {value}: {_readable(exc, section)}") from None
        setattr(cfg, section, updated)
    return cfg


def _readable(exc: ValidationError, prefix: str) -> str:
    """A pydantic error as one line: ``model.epochs: Input should be ...``."""
    parts = []
    for err in exc.errors():
        loc = ".".join([prefix, *(str(x) for x in err["loc"])])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def _output_format(out: Path) -> str:
    """The format of an output file, from its extension, checked before any work."""
    from hybrid_rec.data.io import format_of

    return format_of(out, kind="output file")


def _unique(ids: list[str], what: str) -> list[str]:
    """``ids`` without repeats (first one kept): (id, rank) stays a key of the output."""
    unique = list(dict.fromkeys(ids))
    if len(unique) < len(ids):
        typer.echo(f"note: {len(ids) - len(unique)} repeated {what} id(s) left out", err=True)
    return unique


def _check_users(rec: HybridRecommender, users: list[str], policy: UnknownUsers) -> None:
    """Refuse unknown user ids (with ``--unknown-users error``) in the CLI's own words."""
    if policy is not UnknownUsers.error:
        return
    codes = rec.user_ids_.lookup(users)
    unknown = [u for u, c in zip(id_list(users), codes, strict=True) if c < 0]
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise UnknownIdError(
            f"{len(unknown)} unknown user(s): {shown}{more}. Pass --unknown-users popular "
            "to give them the most popular items, or --unknown-users skip to leave them out."
        )


def _parse_filters(texts: list[str]) -> dict[str, Any]:
    """``--filter`` texts as :func:`~hybrid_rec.filters.filter_mask` filters."""
    from hybrid_rec.filters import parse_filters

    try:
        return parse_filters(texts)
    except DataValidationError as exc:
        raise typer.BadParameter(exc.problem, param_hint="--filter") from None


StoreOption = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="Embedding store (from `hybrid-rec embed`, same encoder): items whose text "
        "it holds are read from it, not encoded again.",
    ),
]
Wait = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        metavar="SECONDS",
        help="Seconds to wait for another process updating the same model (or store) "
        "to finish (default: refuse at once).",
    ),
]
ModelDir = Annotated[Path, typer.Option("--model-dir", "-m", help="A saved model.")]
FilterOption = Annotated[
    list[str] | None,
    typer.Option(
        "--filter",
        help="Attribute filter, repeatable, one per column: 'category=Tea' (the value, "
        "any case, or one of a list cell's values), 'brand!=Acme', 'price<20', "
        "'released>=2024-01-01'.",
    ),
]
NewItems = Annotated[
    int,
    typer.Option(
        "--new-items",
        min=0,
        help="At least this many of each list's items are new arrivals (items without "
        "interactions), taking the places of the lowest-scored others. Default 0: by score alone.",
    ),
]


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
    long_tail: Annotated[
        int, typer.Option(min=1, help="Items with fewer interactions are tail.")
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    config: Annotated[
        Path | None,
        typer.Option(help="TOML config: its [data] table (event weights, unknown items)."),
    ] = None,
) -> None:
    """Validate an interactions or items file and print a summary."""
    data_cfg = _load_config(config).data if config is not None else DataConfig()
    frame = read_table(file)
    resolved = kind
    if kind is FileKind.auto:  # events without user_id: say that, not "duplicate item id"
        repeated = Columns.item in frame.columns and bool(frame[Columns.item].duplicated().any())
        events = {Columns.timestamp, Columns.event, Columns.rating} & set(frame.columns)
        user = Columns.user in frame.columns or bool(lookalikes(frame, Columns.user))
        # a catalogue to check item ids against is only asked for with interactions
        interactions = items is not None or user or (repeated and events)
        resolved = FileKind.interactions if interactions else FileKind.items
    if resolved is FileKind.items:
        summary = summarize_items(validate_items(frame))
    else:
        catalogue = validate_items(read_table(items)) if items is not None else None
        clean = validate_interactions(frame, catalogue, config=data_cfg)
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
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace files of these names in the folder.")
    ] = False,
) -> None:
    """Write a bundled dataset as interactions + items files (to try the other commands)."""
    from hybrid_rec.data.datasets import load_movielens, synthetic
    from hybrid_rec.data.io import check_output, write_table

    names = {
        "movielens-100k": lambda: load_movielens("100k"),
        "movielens-1m": lambda: load_movielens("1m"),
        "synthetic": synthetic,
    }
    if dataset not in names:
        raise typer.BadParameter(f"unknown dataset {dataset!r}; choose from {sorted(names)}.")
    if fmt not in ("csv", "parquet", "jsonl"):
        raise typer.BadParameter("--format must be csv, parquet or jsonl.")
    for name in ("interactions", "items"):  # both refused before either is written
        check_output(out_dir / f"{name}.{fmt}", overwrite=overwrite)
    ds = names[dataset]()
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(ds.interactions, out_dir / f"interactions.{fmt}", overwrite=overwrite)
    write_table(ds.items, out_dir / f"items.{fmt}", overwrite=overwrite)
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
    prune: Annotated[
        bool,
        typer.Option(
            help="Allow deleting more than half of the store (the file is the whole, "
            "smaller catalogue)."
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(help="Start again if the store was written by another encoder or version."),
    ] = False,
    repair: Annotated[bool, typer.Option(help="Re-embed the items of corrupt shards.")] = False,
    backend: Annotated[
        Backend,
        typer.Option(
            help="Embed here, or on Ray (the 'dist' extra): on the cluster at $RAY_ADDRESS, "
            "else on a local one started for the run."
        ),
    ] = Backend.local,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="Ray: encoder actors (default: one per node, with all its CPUs)."),
    ] = None,
    wait: Wait = 0.0,
) -> None:
    """Embed new and changed items into an embedding store (unchanged items are skipped)."""
    from hybrid_rec.content import reembed_catalog

    cfg = _load_config(config, {"--encoder": ("content.encoder", encoder)}).content
    common: dict[str, Any] = {
        "config": cfg,
        "keep_removed": keep_removed,
        "prune": prune,
        "rebuild": rebuild,
        "repair": repair,
        "lock_wait": wait,
    }
    if backend is Backend.ray:
        from hybrid_rec.distributed import BackendOptions, ray_reembed_catalog

        options = BackendOptions(num_workers=workers)
        summary = ray_reembed_catalog(items, store, options=options, **common)
    else:
        if workers is not None:
            raise typer.BadParameter("--workers applies to --backend ray only.")
        summary = reembed_catalog(items, store, **common)
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
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Torch threads for encoding and training (model.threads)."),
    ] = None,
    store: StoreOption = None,
    wait: Wait = 0.0,
) -> None:
    """Fit a model on interactions + items and save it to a directory.

    The directory is locked from the start of the fit to the save, as an update command
    locks it: an add-items run meanwhile would otherwise save over the new model. A refit
    with --store encodes only the items whose text the store does not hold."""
    from hybrid_rec.persistence import check_replaceable, model_lock
    from hybrid_rec.recommender import HybridRecommender

    cfg = _load_config(
        config,
        {
            "--encoder": ("content.encoder", encoder),
            "--epochs": ("model.epochs", epochs),
            "--threads": ("model.threads", threads),
        },
    )
    check_replaceable(model_dir.resolve())  # a folder of the user's files: refused before the fit
    model_dir.resolve().parent.mkdir(parents=True, exist_ok=True)  # where the lock file goes
    with model_lock(model_dir, wait=wait):
        rec = HybridRecommender(cfg).fit(
            read_table(interactions), read_table(items), store=store, show_progress=_progress(None)
        )
        rec.save(model_dir)
    run = rec.train_result_
    score = (
        ""
        if run.best_score is None
        else f", validation recall@{cfg.eval.k} {run.best_score:.4f}, warm and cold averaged"
    )
    share = rec.new_item_share_
    places = (
        ""
        if share is None
        else f" (they took {100 * share:.1f}% of validation lists' places"
        + ("; --new-items promises some" if share < 0.01 else "")
        + ")"
    )
    typer.echo(
        f"trained {run.epochs_run} epoch(s) in {run.seconds:.0f} s (best: epoch "
        f"{run.best_epoch}{score}); new items' score offset {rec.cold_bias_:+.2f}{places}"
    )
    typer.echo(f"saved {rec!r} to {model_dir}")


@app.command("evaluate")
def evaluate_cmd(
    interactions: Annotated[Path, typer.Argument(help="Interactions file.")],
    items: Annotated[Path, typer.Argument(help="Item catalogue file.")],
    methods: Annotated[
        str,
        typer.Option(
            help="Comma-separated: random, popularity, content-knn, lightfm (not a "
            "dependency: `make bench-deps` or scripts/install_lightfm.sh installs it), "
            "ease, cease (dense items × items: skipped above 20,000 items), cf-only, "
            "hybrid; 'all' for every one."
        ),
    ] = "random,popularity,content-knn,cf-only,hybrid",
    out: Annotated[
        Path | None,
        typer.Option(help="Also write quality.json, RESULTS.md and a decile plot here."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Dataset name in the outputs (default: the file's stem).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML config ([split], [content], [model], [eval]).")
    ] = None,
    encoder: Annotated[
        str | None, typer.Option(help="minilm, mpnet, e5-multilingual, hashing, or a model dir.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Split seed (overrides split.seed).")
    ] = None,
    repeats: Annotated[
        int, typer.Option(min=1, help="Fits per trained method, model seeds seed, seed+1, ...")
    ] = 1,
    threads: Annotated[
        int, typer.Option(min=1, help="Torch (encoding, training) / LightFM threads.")
    ] = 2,
    store: StoreOption = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Replace the results --out keeps under this name when they came from "
            "another split, encoder or k (without it they are refused, before any fit)."
        ),
    ] = False,
) -> None:
    """Cold-start evaluation on your own data: items split into warm and cold, every
    method fitted on the training part, Recall@k and NDCG@k for cold, warm and all.
    With --store (`hybrid-rec embed` once) a rerun encodes only the changed items.
    Runs with the same split add their methods to the table --out keeps."""
    import torch

    from hybrid_rec.data.splits import cold_start_split
    from hybrid_rec.evaluation.benchmark import (
        embed_items,
        format_table,
        kept_differs,
        run_benchmark,
        select_methods,
        write_results,
    )

    try:
        chosen = select_methods([methods])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--methods") from None
    cfg = _load_config(
        config, {"--encoder": ("content.encoder", encoder), "--seed": ("split.seed", seed)}
    )
    catalogue = validate_items(read_table(items))
    # checked here, before the encoder loads; the event weights are applied once, when the
    # hybrid fits (validating twice squared them)
    log_frame = validate_interactions(
        read_table(interactions), catalogue, config=cfg.data, event_weights=False
    )
    catalogue = catalogue.reset_index(drop=True)
    dataset = name or interactions.stem

    def refuse_replacing(meta: dict[str, Any]) -> None:
        """Results --out keeps (minutes of fits) are not replaced unasked."""
        if out is None or overwrite:
            return
        if differs := kept_differs(out / "quality.json", dataset, meta):
            raise typer.BadParameter(
                f"{out / 'quality.json'} keeps results for {dataset!r} from another "
                f"{', '.join(differs)}: this run would replace them. Pass --overwrite to "
                "replace them, or --name to keep both.",
                param_hint="--out",
            )

    split = cold_start_split(log_frame, cfg.split)  # a cheap pass, checked before any work
    limit = cfg.eval.long_tail_max_interactions
    refuse_replacing({"split": split.info, "k": cfg.eval.k, "long_tail_max": limit})
    torch.set_num_threads(threads)  # before the encoder loads: it runs on these too
    content, encoder_name = embed_items(catalogue, cfg.content, store)
    refuse_replacing({"encoder": encoder_name})
    run = run_benchmark(
        log_frame,
        catalogue,
        content,
        key=dataset,
        dataset=dataset,
        encoder=encoder_name,
        methods=chosen,
        split_config=cfg.split,
        repeats=repeats,
        k=cfg.eval.k,
        long_tail_max=cfg.eval.long_tail_max_interactions,
        threads=threads,
        config=cfg,
        split=split,
    )
    if not run.results:
        raise typer.BadParameter(
            "no method could run (skipped for a missing optional dependency or too many "
            f"items: {', '.join(run.skipped)})",
            param_hint="--methods",
        )
    methods_out = run.results
    if out is not None:
        methods_out = write_results(out, run, generator="hybrid-rec evaluate")["methods"]
    typer.echo(format_table(dataset, methods_out, cfg.eval.k))
    if run.skipped:
        typer.echo(
            "skipped (a missing optional dependency, or more items than the method "
            f"handles): {', '.join(run.skipped)}"
        )
    if out is not None:
        typer.echo(f"wrote {out / 'quality.json'} and {out / 'RESULTS.md'}")


Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output (or unfinished run).")
]
Out = Annotated[Path | None, typer.Option(help="Write CSV/Parquet/JSONL instead.")]


@app.command("recommend")
def recommend_cmd(
    users: Annotated[list[str], typer.Argument(help="User ids.")],
    model_dir: ModelDir,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items per user.")] = 10,
    out: Out = None,
    overwrite: Overwrite = False,
    unknown_users: Annotated[
        UnknownUsers,
        typer.Option(
            help="Users not in the model: error, skip them, or give them the most popular items."
        ),
    ] = UnknownUsers.error,
    filter_: FilterOption = None,
    new_items: NewItems = 0,
) -> None:
    """Top-k items for known users."""
    from hybrid_rec.recommender import HybridRecommender

    if out is not None:  # before the model loads
        _check_output(out, overwrite, always_new=True)
    filters = _parse_filters(filter_ or [])  # a malformed filter fails before the model loads
    rec = HybridRecommender.load(model_dir)
    users = _unique(users, "user")
    _check_users(rec, users, unknown_users)
    frame = rec.recommend(
        users, k=k, unknown_users=unknown_users.value, filters=filters, new_items=new_items
    )
    why = "no item passes the filters" if filters else "every user was unknown and skipped"
    _show_items(frame, rec, out, overwrite, empty_because=why)


@app.command("explain")
def explain_cmd(
    user: Annotated[str, typer.Argument(help="A known user id.")],
    items: Annotated[list[str], typer.Argument(help="Item ids to explain (e.g. from recommend).")],
    model_dir: ModelDir,
    backend: Annotated[
        ExplainBackend | None,
        typer.Option(
            help="llama_cpp (the local LLM), transformers or template (no model, instant); "
            "default: the model's [explain] backend."
        ),
    ] = None,
) -> None:
    """Why each item suits the user, in a sentence grounded in checked facts."""
    from hybrid_rec.recommender import HybridRecommender

    rec = HybridRecommender.load(model_dir)
    if rec.user_ids_.lookup([user])[0] < 0:
        raise UnknownIdError(
            f"unknown user {user!r}: explain needs a user the model knows (a new user's "
            "list comes from recommend-new)."
        )
    ids = _unique(items, "item")
    rec.item_ids_.to_internal(ids, kind="item")  # unknown items: one error before any work
    if backend is not None:
        rec.config.explain.backend = backend.value
    for item in ids:
        result = rec.explain(user, item)
        checked = "checked" if result.grounded else "UNCHECKED"  # the fallback failed it too
        typer.echo(f"{item}\t{result.backend}\t{printable(result.text)}\t{checked}")


_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""Control characters (a terminal runs ``ESC ] 0 ; ... BEL``) and bidirectional
overrides (they show text reversed)."""


def printable(value: object) -> str:
    """``value`` as text safe to print to a terminal: controls become spaces."""
    return _UNPRINTABLE.sub(" ", str(value))


def _show_items(
    frame: pd.DataFrame,
    rec: HybridRecommender,
    out: Path | None,
    overwrite: bool,
    *,
    empty_because: str,
    query_col: str = "user_id",
) -> None:
    """Recommendations joined to the item table: written to ``out``, or printed
    (rank, item, score, title; the user, or ``query_col``, too where there is one)."""
    import pandas as pd

    from hybrid_rec.data.io import write_table

    frame = frame.merge(rec.items_, on=Columns.item, how="left")
    if out is not None:
        write_table(frame, out, overwrite=overwrite)
        typer.echo(f"wrote {len(frame)} rows to {out}")
    elif frame.empty:
        typer.echo(f"no recommendations ({empty_because})", err=True)
    else:
        title = next((c for c in TITLE_COLUMNS if c in rec.items_.columns), "title")
        cols = (query_col, "rank", "item_id", "score", title)  # a shop's "name" too
        shown = frame[[c for c in cols if c in frame.columns]]
        for col in shown.columns:  # catalogue text is untrusted: no escape codes reach the tty
            if shown[col].dtype == object or pd.api.types.is_string_dtype(shown[col]):
                shown = shown.assign(**{col: shown[col].map(printable, na_action="ignore")})
        typer.echo(shown.to_string(index=False))


class AddExisting(StrEnum):
    error = "error"
    skip = "skip"


@app.command("recommend-new")
def recommend_new_cmd(
    model_dir: ModelDir,
    liked: Annotated[
        list[str] | None, typer.Option("--liked", help="An item the new user likes (repeatable).")
    ] = None,
    text: Annotated[
        str | None, typer.Option(help="Their taste in words, e.g. 'loose green tea'.")
    ] = None,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items.")] = 10,
    filter_: Annotated[
        list[str] | None,
        typer.Option("--filter", help="Attribute filter, as for `recommend` (repeatable)."),
    ] = None,
    out: Out = None,
    overwrite: Overwrite = False,
    new_items: NewItems = 0,
) -> None:
    """Top-k items for someone with no history: a few liked items and/or a taste in words."""
    from hybrid_rec.recommender import HybridRecommender

    if out is not None:  # before the model loads
        _check_output(out, overwrite, always_new=True)
    filters = _parse_filters(filter_ or [])
    if not liked and not (text or "").strip():
        raise typer.BadParameter("give --liked ITEM (repeatable) and/or --text.")
    rec = HybridRecommender.load(model_dir)
    frame = rec.recommend_for_new_user(
        liked_items=liked or [], text=text, k=k, filters=filters, new_items=new_items
    )
    _show_items(frame, rec, out, overwrite, empty_because="no item passes the filters")


@app.command("similar")
def similar_cmd(
    items: Annotated[list[str], typer.Argument(help="Item ids.")],
    model_dir: ModelDir,
    k: Annotated[int, typer.Option("-k", min=1, help="How many items per item.")] = 10,
    filter_: FilterOption = None,
    out: Out = None,
    overwrite: Overwrite = False,
) -> None:
    """Items like each given one ("customers who liked this"): nearest in the fused
    space, the item itself left out."""
    from hybrid_rec.recommender import HybridRecommender

    if out is not None:  # before the model loads
        _check_output(out, overwrite, always_new=True)
    filters = _parse_filters(filter_ or [])
    rec = HybridRecommender.load(model_dir)
    frame = rec.similar_items(_unique(items, "item"), k=k, filters=filters)
    frame = frame.rename(columns={Columns.item: "like_item_id", "similar_item_id": Columns.item})
    _show_items(
        frame,
        rec,
        out,
        overwrite,
        empty_because="no item passes the filters",
        query_col="like_item_id",
    )


class OnExisting(StrEnum):
    error = "error"
    skip = "skip"
    score = "score"


Resume = Annotated[
    bool,
    typer.Option(
        "--resume/--no-resume", help="Continue an unfinished run into the same Parquet file."
    ),
]
ChunkSize = Annotated[int, typer.Option("--chunk-size", min=1, help="Rows scored per chunk.")]
OutDir = Annotated[
    Path | None,
    typer.Option("--out-dir", "-o", help="Save the changed model here (default: in place)."),
]
OnUnknown = Annotated[
    AddExisting,
    typer.Option(help="Ids the model does not know: error (nothing changes), or skip them."),
]
Progress = Annotated[
    bool | None,
    typer.Option(
        "--progress/--no-progress",
        help="Progress bar (default: when stderr is a terminal).",
        show_default=False,
    ),
]


@app.command("add-items")
def add_items_cmd(
    items: Annotated[Path, typer.Argument(help="New items: item_id plus text/attribute columns.")],
    model_dir: ModelDir,
    out_dir: OutDir = None,
    on_existing: Annotated[
        AddExisting,
        typer.Option(help="Items already in the model: error, or skip them."),
    ] = AddExisting.error,
    store: StoreOption = None,
    wait: Wait = 0.0,
) -> None:
    """Make new items recommendable now: embed them, add them to a saved model, save it.

    No refit: the items are placed by their content alone, and `recommend`,
    `recommend-batch` and the app return them at once. The model directory is
    replaced atomically (a crash leaves the old or the new model whole).
    """
    import pandas as pd

    from hybrid_rec.recommender import HybridRecommender

    with _updating(model_dir, out_dir, wait) as target:
        rec = HybridRecommender.load(model_dir)
        raw = read_table(items, allow_empty=True)
        if raw.empty:  # a quiet day is not a failure: a pipeline goes on
            _save_unchanged(rec, model_dir, target, f"nothing to add: {items} has no rows")
            return
        frame = validate_items(raw, source=str(items))
        known = pd.Series(rec.item_ids_.lookup(frame[Columns.item]) >= 0, index=frame.index)
        _refuse_unless_skipped(
            frame[Columns.item],
            known.to_numpy(),
            on_existing,
            "already in the model",
            ".",
            "pass --on-existing skip to add only the new ones (their changed "
            "text or columns are then ignored: `update-items` or `sync-catalogue` apply "
            "those).",
            items,
        )
        frame = frame[~known.to_numpy()]
        if frame.empty:
            why = f"all {int(known.sum())} item(s) are already in the model"
            _save_unchanged(rec, model_dir, target, f"nothing to add: {why}")
            return
        rec.add_items(frame, store=store)
        rec.save(target)
    skipped = f", {int(known.sum())} already there skipped" if known.any() else ""
    typer.echo(
        f"added {len(frame)} item(s){skipped}; {len(rec.item_ids_)} in all; saved to {target}"
    )


@app.command("add-feedback")
def add_feedback_cmd(
    interactions: Annotated[
        Path,
        typer.Argument(
            help="New interactions: user_id, item_id and optional event, "
            "timestamp, weight, rating (the columns the model was fitted with)."
        ),
    ],
    model_dir: ModelDir,
    out_dir: OutDir = None,
    unknown_items: Annotated[
        UnknownItems | None,
        typer.Option(
            help="Rows of items the model does not hold: refuse the file (error), or "
            "leave them out with a count (drop). Default: the model's [data] unknown_items."
        ),
    ] = None,
    wait: Wait = 0.0,
) -> None:
    """Fold new feedback into a saved model without a refit (`partial_fit`), and save it.

    The users' histories grow (new users are created), so their recommendations move
    at once; new and lightly seen items get their behaviour vector fitted on the new
    feedback, and lean less on content as evidence builds up. Items must already be in
    the model (`add-items` first). Refit (`fit`) now and then to retrain everything.
    """
    from hybrid_rec.recommender import HybridRecommender

    with _updating(model_dir, out_dir, wait) as target:
        rec = HybridRecommender.load(model_dir)
        frame = read_table(interactions, allow_empty=True)
        if frame.empty:
            _save_unchanged(rec, model_dir, target, f"nothing to add: {interactions} has no rows")
            return
        users_before, events_before = len(rec.user_ids_), int(rec.counts_.sum())
        rec.partial_fit(frame, unknown_items=unknown_items.value if unknown_items else None)
        rec.save(target)
    added = int(rec.counts_.sum()) - events_before
    report = rec.feedback_report_
    assert report is not None  # partial_fit sets it
    left_out = {
        "on items the model does not hold": report.dropped_unknown_items,
        "below the rating threshold": report.dropped_low_rating,
        "of event types weighted 0": report.dropped_ignored_events,
    }
    repeated = len(frame) - added - sum(left_out.values())
    notes = [f"{n} {why} left out" for why, n in left_out.items() if n]
    notes += [f"{repeated} already there skipped"] if repeated > 0 else []
    typer.echo(
        f"added {added} interaction(s) ({len(rec.user_ids_) - users_before} new user(s)"
        f"{''.join(', ' + n for n in notes)}); saved to {target}"
    )


@app.command("sync-catalogue")
def sync_catalogue_cmd(
    items: Annotated[Path, typer.Argument(help="Today's whole catalogue: item_id plus columns.")],
    model_dir: ModelDir,
    out_dir: OutDir = None,
    keep_missing: Annotated[
        bool,
        typer.Option(
            "--keep-missing", help="Only add and update: keep serving items the file leaves out."
        ),
    ] = False,
    allow_mass_removal: Annotated[
        bool,
        typer.Option(
            "--allow-mass-removal",
            help="Stop serving the missing items even when they are most of the catalogue, "
            "and empty a column even for most items.",
        ),
    ] = False,
    store: StoreOption = None,
    wait: Wait = 0.0,
) -> None:
    """Make a saved model's catalogue match today's catalogue file, with no refit.

    New ids are added, changed records re-embedded, items the file no longer lists
    stop being served (they stay in users' histories) and items listed again come
    back. A file that would remove more than half of the served items, or empty a
    column for more than half of the listed items, is refused (a partial or broken
    export must not empty the model) unless --allow-mass-removal.
    """
    from hybrid_rec.recommender import HybridRecommender

    with _updating(model_dir, out_dir, wait) as target:
        rec = HybridRecommender.load(model_dir)
        frame = read_table(items)
        frame.attrs["source"] = str(items)
        summary = rec.sync_catalogue(
            frame,
            store=store,
            remove_missing=not keep_missing,
            max_removed_share=1.0 if allow_mass_removal else 0.5,
        )
        rec.save(target)
    typer.echo(f"{summary}; saved to {target}")


@app.command("update-items")
def update_items_cmd(
    items: Annotated[
        Path,
        typer.Argument(help="Changed items: item_id plus the columns that changed."),
    ],
    model_dir: ModelDir,
    out_dir: OutDir = None,
    on_unknown: OnUnknown = AddExisting.error,
    store: StoreOption = None,
    wait: Wait = 0.0,
) -> None:
    """Apply changed item records (price, description, tags …) to a saved model.

    No refit: the columns given replace the item's values (columns left out keep
    theirs), its text is embedded again and its vector recomputed with the
    behaviour evidence it has; recommendations and filters follow at once.
    New ids belong in `add-items`.
    """
    from hybrid_rec.recommender import HybridRecommender

    with _updating(model_dir, out_dir, wait) as target:
        rec = HybridRecommender.load(model_dir)
        raw = read_table(items, allow_empty=True)
        if raw.empty:
            _save_unchanged(rec, model_dir, target, f"nothing to update: {items} has no rows")
            return
        frame = validate_items(raw, source=str(items))
        unknown = rec.item_ids_.lookup(frame[Columns.item]) < 0
        _refuse_unless_skipped(
            frame[Columns.item],
            unknown,
            on_unknown,
            "not in the model",
            "; nothing changed.",
            "add new items with `hybrid-rec add-items`, or pass --on-unknown skip.",
            items,
        )
        frame = frame[~unknown]
        if frame.empty:
            _save_unchanged(rec, model_dir, target, "nothing to update: no item of the model")
            return
        rec.update_items(frame, store=store)
        rec.save(target)
    skipped = f", {int(unknown.sum())} unknown skipped" if unknown.any() else ""
    typer.echo(f"updated {len(frame)} item(s){skipped}; saved to {target}")


@app.command("remove-items")
def remove_items_cmd(
    items: Annotated[
        Path, typer.Argument(help="Items to stop serving: a file with an item_id column.")
    ],
    model_dir: ModelDir,
    out_dir: OutDir = None,
    restore: Annotated[
        bool, typer.Option("--restore", help="Serve the listed items again instead.")
    ] = False,
    on_unknown: OnUnknown = AddExisting.error,
    wait: Wait = 0.0,
) -> None:
    """Stop serving items (sold out, withdrawn) in a saved model, or serve them again.

    No refit: removed items leave every result (`recommend`, `recommend-batch`,
    `recommend-new`, similar items, the app) at once, and stay in users' histories;
    `--restore` brings them back. Listing an item already removed changes nothing.
    """
    from hybrid_rec.recommender import HybridRecommender

    verb = "restore" if restore else "remove"
    with _updating(model_dir, out_dir, wait) as target:
        rec = HybridRecommender.load(model_dir)
        frame = read_table(items, allow_empty=True)
        if Columns.item not in frame.columns:
            raise DataValidationError(
                f"no {Columns.item!r} column (columns: {', '.join(map(str, frame.columns))}).",
                source=str(items),
                fix=f"name the column of the ids to {verb} {Columns.item!r}.",
            )
        # as the model stores ids (a Parquet 5.0 is "5"); a missing id is an error
        ids = normalize_ids(frame[Columns.item], source=str(items), column=Columns.item)
        unknown = rec.item_ids_.lookup(ids) < 0
        _refuse_unless_skipped(
            ids,
            unknown,
            on_unknown,
            "not in the model",
            "; nothing changed.",
            "pass --on-unknown skip to leave them out.",
            items,
        )
        known = ids[~unknown].tolist()
        if not known:
            _save_unchanged(rec, model_dir, target, f"nothing to {verb}: no item of the model")
            return
        changed = rec.restore_items(known) if restore else rec.remove_items(known)
        rec.save(target)
    skipped = f", {int(unknown.sum())} unknown skipped" if unknown.any() else ""
    typer.echo(
        f"{verb}d {changed} item(s) ({len(set(known)) - changed} already so{skipped}); "
        f"{len(rec.removed_items)} removed in all; saved to {target}"
    )


def _progress(asked: bool | None) -> bool:
    """A batch command's bar: as asked, else whenever a person watches (a terminal or a
    notebook on stderr), at any log level; never redrawn into a job's log file."""
    from hybrid_rec.content.encoders import watched

    return watched() if asked is None else asked


def _refuse_unless_skipped(
    ids: pd.Series,
    bad: np.ndarray,
    policy: AddExisting,
    what: str,
    end: str,
    fix: str,
    source: Path,
) -> None:
    """Raise for the ``bad`` ids (already there, or unknown) unless ``policy`` skips them."""
    if bad.any() and policy is AddExisting.error:
        shown = ", ".join(map(repr, ids[bad].tolist()[:5]))
        raise DataValidationError(
            f"{int(bad.sum())} item(s) {what}, e.g. {shown}{end}",
            source=str(source),
            column=Columns.item,
            fix=fix,
        )


@contextlib.contextmanager
def _updating(model_dir: Path, out_dir: Path | None, wait: float = 0.0) -> Iterator[Path]:
    """The target of a load-change-save command, checked and locked for its duration."""
    from hybrid_rec.persistence import check_replaceable, model_lock

    target = out_dir if out_dir is not None else model_dir
    check_replaceable(target.resolve())
    with model_lock(target, wait=wait):
        yield target


def _save_unchanged(rec: HybridRecommender, model_dir: Path, target: Path, message: str) -> None:
    """Nothing changed: say so, and still write ``--out-dir`` (a pipeline reads it next)."""
    if target.resolve() != model_dir.resolve():
        rec.save(target)
        message += f"; saved unchanged to {target}"
    typer.echo(message)


@app.command("info")
def info_cmd(
    model_dir: ModelDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """What a saved model holds: users, items served / removed / cold, encoder, index,
    training. Every file's sha256 is checked on the way (a tampered model is an error)."""
    from hybrid_rec.recommender import HybridRecommender

    facts = HybridRecommender.load(model_dir).describe()
    if as_json:
        typer.echo(json.dumps(facts, indent=2))
        return
    width = max(map(len, facts))
    for key, value in facts.items():
        shown = f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else value
        if isinstance(value, float):
            shown = f"{value + 0.0:.4g}"  # + 0.0: no "-0"
        typer.echo(f"{key.replace('_', ' '):<{width}}  {shown}")


@app.command("score-cold")
def score_cold_cmd(
    items: Annotated[Path, typer.Argument(help="New items (not yet in the model).")],
    model_dir: ModelDir,
    out: Annotated[
        Path,
        typer.Option(
            help="Output file: .parquet is written chunk by chunk and resumable; "
            ".csv or .jsonl is written at the end."
        ),
    ],
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Users per item.")] = 100,
    chunk_size: ChunkSize = 1024,
    on_existing: Annotated[
        OnExisting,
        typer.Option(help="Items already in the model: error, skip them, or score them anyway."),
    ] = OnExisting.error,
    overwrite: Overwrite = False,
    resume: Resume = True,
    progress: Progress = None,
    backend: Annotated[
        Backend,
        typer.Option(
            help="Score here, or on Ray (the 'dist' extra; the whole result is written at "
            "the end, not resumable). The model directory must be readable on every node."
        ),
    ] = Backend.local,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray: scoring actors (default: one per node).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """For each new item, the k users most likely to want it (bounded memory, resumable)."""
    from hybrid_rec.recommender import HybridRecommender

    if backend is Backend.ray:
        if store is not None:
            raise typer.BadParameter("--store applies to --backend local only.")
    elif workers is not None:
        raise typer.BadParameter("--workers applies to --backend ray only.")
    parquet = _check_output(out, overwrite, always_new=backend is Backend.ray)
    rec = HybridRecommender.load(model_dir)
    if backend is Backend.ray:
        _score_cold_on_ray(rec, items, model_dir, out, k, chunk_size, on_existing, workers)
        return
    _run_batch(
        rec.score_cold_items,
        out,
        "(item, user)",
        parquet=parquet,
        overwrite=overwrite,
        resume=resume,
        new_items=items,
        k=k,
        chunk_size=chunk_size,
        on_existing=on_existing.value,
        store=store,
        show_progress=_progress(progress),
    )


def _score_cold_on_ray(
    rec: HybridRecommender,
    items: Path,
    model_dir: Path,
    out: Path,
    k: int,
    chunk_size: int,
    on_existing: OnExisting,
    workers: int | None,
) -> None:
    """``score-cold --backend ray``: existing ids are handled here, on the driver
    (the output was checked by :func:`_check_output`)."""
    import pandas as pd

    from hybrid_rec.distributed import BackendOptions, ray_score_cold_items

    frame = read_table(items)
    known = pd.Series(rec.item_ids_.lookup(frame[Columns.item]) >= 0, index=frame.index)
    if known.any() and on_existing is OnExisting.error:
        raise DataValidationError(
            f"{int(known.sum())} item(s) already in the model, e.g. "
            f"{frame[Columns.item][known].astype(str).tolist()[:5]}.",
            source=str(items),
            column=Columns.item,
            fix="pass --on-existing skip (or score).",
        )
    if known.any() and on_existing is OnExisting.skip:
        typer.echo(f"skipping {int(known.sum())} item(s) already in the model")
        frame = frame[~known].reset_index(drop=True)
    result = ray_score_cold_items(
        model_dir, frame, k, chunk_size=chunk_size, options=BackendOptions(num_workers=workers)
    )
    _write_frame(result, out, "(item, user)")


@app.command("recommend-batch")
def recommend_batch_cmd(
    model_dir: ModelDir,
    out: Annotated[Path, typer.Option(help="Output file (.parquet: chunked and resumable).")],
    users: Annotated[
        Path | None,
        typer.Option(help="File with a user_id column (default: every known user)."),
    ] = None,
    k: Annotated[int, typer.Option("-k", "--k", min=1, help="Items per user.")] = 10,
    chunk_size: ChunkSize = 1024,
    unknown_users: Annotated[
        UnknownUsers | None,
        typer.Option(
            help="Users not in the model: error (the default), skip them, or give them the "
            "most popular items."
        ),
    ] = None,
    skip_unknown: Annotated[
        bool, typer.Option(help="Leave out unknown users (same as --unknown-users skip).")
    ] = False,
    overwrite: Overwrite = False,
    resume: Resume = True,
    progress: Progress = None,
    filter_: FilterOption = None,
    new_items: NewItems = 0,
) -> None:
    """Top-k items for many users, written chunk by chunk."""
    from hybrid_rec.data.io import read_column
    from hybrid_rec.recommender import HybridRecommender

    filters = _parse_filters(filter_ or [])  # a malformed filter fails before the model loads

    if skip_unknown and unknown_users not in (None, UnknownUsers.skip):
        raise typer.BadParameter(
            f"--skip-unknown contradicts --unknown-users {unknown_users}; give one of them."
        )
    policy = UnknownUsers.error if unknown_users is None else unknown_users
    if skip_unknown:
        policy = UnknownUsers.skip
    parquet = _check_output(out, overwrite)
    rec = HybridRecommender.load(model_dir)
    ids = None if users is None else _unique(id_list(read_column(users, Columns.user)), "user")
    if ids is not None:
        _check_users(rec, ids, policy)
    _run_batch(
        rec.recommend_batch,
        out,
        "(user, item)",
        parquet=parquet,
        overwrite=overwrite,
        resume=resume,
        users=ids,
        k=k,
        chunk_size=chunk_size,
        unknown_users=policy.value,
        filters=filters or None,
        new_items=new_items,
        show_progress=_progress(progress),
    )


def _run_batch(
    job: Callable[..., Any],
    out: Path,
    what: str,
    *,
    parquet: bool,
    overwrite: bool,
    resume: bool,
    **kwargs: Any,
) -> None:
    """Run a batch job into ``out``: Parquet chunk by chunk (resumable), any other
    format from the finished frame."""
    if parquet:
        _echo_report(job(output=out, overwrite=overwrite, resume=resume, **kwargs), what)
    else:
        _write_frame(job(**kwargs), out, what)


def _check_output(out: Path, overwrite: bool, *, always_new: bool = False) -> bool:
    """Check an output before any work; True if it is Parquet, written chunk
    by chunk (the library checks an existing file: it may be a run to resume). Other
    formats (and every format with ``always_new``) are written at the end, and an
    existing file is refused here, as is a path inside a model's directory."""
    from hybrid_rec.data.io import check_output

    parquet = _output_format(out) == "parquet"
    if always_new or not parquet:
        check_output(out, overwrite=overwrite)
    return parquet


def _echo_report(report: BatchReport, what: str) -> None:
    resumed = f", {report.resumed} chunk(s) resumed" if report.resumed else ""
    skipped = f", {report.skipped} input row(s) skipped" if report.skipped else ""
    typer.echo(f"wrote {report.rows:,} {what} rows to {report.output}{resumed}{skipped}")


def _write_frame(frame: pd.DataFrame, out: Path, what: str) -> None:
    """Write a batch job's whole result; :func:`_check_output` refused an existing
    ``out`` before the job ran (unless --overwrite)."""
    from hybrid_rec.data.io import write_table

    write_table(frame, out, overwrite=True)
    typer.echo(f"wrote {len(frame):,} {what} rows to {out}")


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
    explain_backend: Annotated[
        ExplainBackend | None,
        typer.Option(help="Explanations: llama_cpp (local LLM), transformers or template."),
    ] = None,
    refit: Annotated[
        bool,
        typer.Option(help="Fit the MovieLens demo again (its directory: the default, or --demo)."),
    ] = False,
    demo: Annotated[
        bool,
        typer.Option(
            "--demo",
            help="--model-dir is a folder for the MovieLens demo: fit it there if it holds no "
            "model (without it, a --model-dir must hold a model).",
        ),
    ] = False,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Training epochs when fitting the demo model.")
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="Requests served at once (the rest queue).")
    ] = 2,
    reload_every: Annotated[
        float,
        typer.Option(
            min=0,
            help="Seconds between checks for a newer save of the model (sync-catalogue, "
            "update-items, a refit), which the app then loads and serves; 0 = never.",
        ),
    ] = 10.0,
) -> None:
    """Open the Gradio demo app (recommendations with explanations, new user, new item)."""
    import os

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from hybrid_rec.serve import serve

    extra: dict[str, object] = {
        "refit": refit,
        "is_demo": demo,
        "concurrency": concurrency,
        "reload_every": reload_every,
    }
    if epochs is not None:
        extra["epochs"] = epochs
    if explain_backend is not None:
        extra["explain_backend"] = explain_backend.value
    serve(model_dir=model_dir, host=host, port=port, **extra)


_OS_FIXES = {
    errno.ENOSPC: "free some disk space and run it again",
    errno.EDQUOT: "free some space within your quota and run it again",
    errno.EACCES: "check the permissions of the file or its folder",
    errno.EPERM: "check the permissions of the file or its folder",
    errno.EROFS: "write to another place",
}


def _os_error(exc: OSError) -> str:
    """``path: reason. Fix: ...`` (saves are atomic: what was there before is whole)."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc) or type(exc).__name__
    fix = _OS_FIXES.get(exc.errno or 0)
    return f"{where}{reason}." + (f" Fix: {fix}." if fix else "")


def main() -> None:
    """Console-script entry point: run the app, turning library errors into one line."""
    try:
        app(standalone_mode=False)
    except HybridRecError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:  # a setting no command check caught: still one line
        section = exc.title.removesuffix("Config").lower()
        typer.echo(f"error: invalid setting: {_readable(exc, section)}", err=True)
        sys.exit(2)
    except OSError as exc:  # a full disk, no permission ...: one line, and what was kept
        typer.echo(f"error: {_os_error(exc)}", err=True)
        sys.exit(2 if isinstance(exc, FileNotFoundError | IsADirectoryError) else 1)
    except typer.Abort:
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (typer vendors its own click: match by shape)
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if isinstance(exc, typer.TyperException) and callable(show) and isinstance(code, int):
            show()
            sys.exit(code)
        raise


if __name__ == "__main__":
    main()
