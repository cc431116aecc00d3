"""Configuration: one pydantic model per stage, loadable from TOML.

>>> cfg = RecommenderConfig.from_toml("hybrid_rec.toml")   # doctest: +SKIP
>>> cfg.model.dim
64

Every stage's settings live in their own model so that a script that only
embeds a catalogue needs only :class:`ContentConfig`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hybrid_rec.errors import ConfigError

__all__ = [
    "ContentConfig",
    "DataConfig",
    "EvalConfig",
    "ExplainConfig",
    "IndexConfig",
    "ModelConfig",
    "RecommenderConfig",
    "SplitConfig",
    "load_config",
]

DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 3.0,
    "rating": 3.0,
    "review": 4.0,
    "purchase": 5.0,
}


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Stage):
    """How raw interaction and item frames are read and cleaned."""

    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    """Training weight per event type. Weights given here are merged over the defaults
    (``view`` 1, ``click`` 2, ``add_to_cart`` 3, ``rating`` 3, ``review`` 4, ``purchase`` 5),
    so ``[data.event_weights] wishlist = 1.5`` adds one type and keeps the others.
    A weight of 0 ignores a type: its rows are dropped when the log is read."""
    unknown_event: Literal["error", "default"] = "error"
    default_event_weight: float = 1.0
    unknown_items: Literal["error", "drop"] = "error"
    """Interactions whose item is not in the catalogue: raise, or drop them with a warning."""
    min_rating: float | None = None
    """If set, explicit ratings below it are dropped (e.g. 4 to keep only 'liked').
    Rows without a rating (NaN) are kept. A rating does not scale the training weight
    by itself: put a ``weight`` column in the log for that."""
    timestamp_unit: Literal["s", "ms", "auto"] = "auto"

    @field_validator("event_weights", mode="before")
    @classmethod
    def _merge_defaults(cls, value: Any) -> Any:
        if isinstance(value, dict):
            given = {str(k).strip().lower(): v for k, v in value.items()}
            return {**DEFAULT_EVENT_WEIGHTS, **given}
        return value

    @field_validator("event_weights")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not (v >= 0 and v < float("inf"))}
        if bad:
            raise ValueError(f"event weights must be finite and >= 0, got {bad}")
        return {k.strip().lower(): float(v) for k, v in value.items()}


class SplitConfig(_Stage):
    """The cold-start evaluation protocol."""

    cold_item_share: float = Field(0.2, gt=0.0, lt=1.0)
    warm_test_share: float = Field(0.2, gt=0.0, lt=1.0)
    warm_val_share: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 42


class ContentConfig(_Stage):
    """Item text and the sentence encoder."""

    encoder: str = "minilm"
    """``minilm`` (default), ``mpnet``, ``e5-multilingual``, ``hashing`` or a local model dir."""
    text_template: str = "item_text_v1"
    """Name of a template file in ``prompts/`` (without ``.txt``) or a path to one."""
    text_columns: list[str] | None = None
    """Columns used for the item text; None means every non-id column, in frame order."""
    batch_size: int = Field(default=64, ge=1, le=4096)
    max_chars: int = Field(default=4000, ge=16)
    """Item text is cut to this many characters (at a word boundary) before tokenising."""
    normalize: bool = True
    hashing_dim: int = Field(default=256, ge=8)
    list_separator: str | None = "|"
    """A string value holding it reads as a list: ``"Drama|War"`` → ``"Drama, War"``."""
    max_seq_length: int | None = Field(default=None, ge=8)
    """Token limit of a sentence-transformer; None keeps the model's own (MiniLM: 256)."""
    shard_size: int = Field(default=2048, ge=1, le=1_000_000)
    """Vectors per ``.npy`` shard of the embedding store: the unit of resume after a crash."""
    strip_html: bool = True
    """Read text cells that hold HTML markup (a CMS export's article body) as the text a
    browser shows: tags, scripts and styles removed, ``&amp;`` and the like unescaped.
    Cells without markup are untouched."""
    attribute_weight: float = Field(default=0.5, ge=0.0, le=10.0)
    """Length of the attribute part appended to each item's sentence vector (one block
    per attribute column: multi-hot values, or quantile buckets of a number); 0 turns
    it off. See :mod:`hybrid_rec.content.attributes`."""
    attribute_columns: list[str] | None = None
    """Attribute columns; None means every numeric column and every text column whose
    cells are short (ids, titles and free text such as ``description`` are left out)."""
    attribute_bins: int = Field(default=8, ge=2, le=256)
    """Quantile buckets of a numeric attribute."""
    attribute_max_dim: int = Field(default=256, ge=2, le=16_384)
    """Width of the whole attribute part: categorical columns with more values than
    their share keep their most frequent ones (brands, sellers and tags can run to
    thousands, and the part is dense: 3,440 such values cost 12.8 GiB at 1M items)."""


class ModelConfig(_Stage):
    """The hybrid model: CF embeddings, attention fusion and the user tower."""

    dim: int = Field(64, ge=4, le=1024)
    epochs: int = Field(40, ge=1)
    batch_size: int = Field(512, ge=8)
    lr: float = Field(3e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    cf_dropout: float = Field(0.5, ge=0.0, le=1.0)
    """Share of warm items whose CF input is dropped per batch (DropoutNet-style)."""
    history_len: int = Field(50, ge=1, le=10_000)
    targets_per_history: int | None = Field(None, ge=1, le=64)
    """Training samples of one user that share a pass of the user tower (their
    history with all of their targets hidden); 1 = one pass per sample. ``None``
    (auto): 1 below 200,000 training interactions; above, 4, with batches of twice
    ``batch_size`` samples (3x the training throughput at MovieLens-1M's size,
    see ``scripts/bench_fit.py``)."""
    causal_history: bool = False
    """Train each interaction on the history before it only, its recency measured at
    its own time, as a sequence model does (news: what someone read last week predicts
    tomorrow better than what they read last year). Histories are the latest
    ``history_len`` interactions, so a target older than all of them is left out. Off
    by default: the cold-start protocol holds items out at random, not by time, and on
    its MovieLens-100k validation warm Recall@20 fell from 0.346 to 0.271 with it.
    Needs timestamps; without them it changes nothing."""
    temperature: float = Field(0.2, gt=0)
    """Softmax temperature of the training loss (on cosine scores). On MovieLens-100k
    validation 0.2 beat 0.05, 0.1, 0.15, 0.3 and 0.5: warm Recall@20 0.349 against 0.322
    at 0.1, with later early stopping (less overfitting)."""
    patience: int = Field(4, ge=1)
    """Early stopping: epochs without a better validation recall."""
    use_content: bool = True
    use_cf: bool = True
    content_hidden: int = Field(0, ge=0)
    """Hidden width of the content projection; 0 = linear (generalises best to cold items)."""
    content_dropout: float = Field(0.2, ge=0.0, lt=1.0)
    """Dropout on the content vector while training (stops the content path memorising items)."""
    user_embedding: bool = True
    """Add a learned per-user vector to the history attention (warm users; new users get 0)."""
    taste_dim: int = Field(64, ge=0)
    """Width of the content-taste term (principal components of the content
    vectors; 0 turns it off). Its weights, one for items with interactions and one for
    items without (how new items rank among themselves), are chosen on validation."""
    cold_offset: float | None = Field(None, ge=-1.0, le=1.0)
    """Score offset of items without interactions when they compete with known ones
    (on cosine scores). None (default): chosen on validation to maximise all-items
    Recall@k, together with a share of each new item's predicted popularity. A number
    fixes the offset and drops the popularity term: 0 ranks new items by how well their
    content matches the user, a negative value holds them back."""
    text_weight: float = Field(1.0, ge=0.0)
    """How much a new user's words (``recommend_for_new_user(text=...)``) count: every
    item, known or new, gains this times the cosine between the text and the item's
    content coordinates, on top of the model's score. 0 leaves the words to the user
    tower alone, which on ml-100k put a genre's films in 35% of the top 10 for a
    query naming the genre (1.0: 85%)."""
    popular_days: float | None = Field(None, gt=0)
    """The popular fallback (``unknown_users="popular"``) counts the interactions of the
    last this many days of the log (up to its latest time); None counts them all. A news
    site wants 1 or 2: all-time counts put last week's stories first."""
    neighbours: int = Field(200, ge=0)
    """Content neighbours an item with little evidence borrows vectors from
    (:mod:`hybrid_rec.models.neighbours`; 0 turns it off). The weight is chosen on validation."""
    neighbour_temperature: float = Field(0.2, gt=0)
    """Softmax temperature over the neighbours' cosine similarities."""
    item_item_max_items: int = Field(8000, ge=0)
    """EASE item-item scores are added to warm items' scores
    (:mod:`hybrid_rec.models.item_item`) when the catalogue has at most this many items
    with interactions (its weights are a dense matrix of that size squared: 8,000 items
    are 256 MB); 0 turns the stage off. Its weight is chosen on validation (0 when it
    does not help)."""
    item_item_l2: float = Field(400.0, gt=0)
    """EASE's L2 penalty λ (400 was the validation choice of the EASE baseline on
    MovieLens-100k's seed-42 split; 200 and 800 on other splits)."""
    align_weight: float = Field(0.0, ge=0.0)
    """Weight of a loss pulling an item's content projection toward its CF vector."""
    threads: int | None = None
    seed: int = 42


class IndexConfig(_Stage):
    """FAISS retrieval."""

    factory: str | None = None
    """A FAISS factory string (``"Flat"``, ``"HNSW32"``, ``"IVF1024,PQ32"``); None picks by size."""
    exact_max_items: int = Field(200_000, ge=1)
    """Up to this many items the default index is exact (``Flat``)."""
    memory_budget_gb: float | None = Field(None, gt=0)
    """Memory the default index may take, vectors included, before it falls back from
    HNSW to IVF-PQ; None means a quarter of this machine's RAM."""
    hnsw_m: int = Field(32, ge=4)
    hnsw_ef_search: int = Field(128, ge=1)
    hnsw_ef_construction: int = Field(200, ge=1)
    ivf_nprobe: int = Field(32, ge=1)
    """IVF lists searched per query."""
    refine_factor: int = Field(4, ge=1)
    """Compressed (PQ/SQ) indexes fetch this many times the candidates and re-rank them
    exactly with the full vectors."""
    recall_queries: int = Field(500, ge=0)
    """Queries (sampled users) for the recall@k of an approximate index measured on save."""


class ExplainConfig(_Stage):
    """Explanations."""

    backend: Literal["llama_cpp", "transformers", "template"] = "llama_cpp"
    model: str = "qwen2.5-0.5b"
    language: str = "en"
    max_tokens: int = Field(120, ge=8)
    timeout_s: float = Field(20.0, gt=0)
    threads: int = Field(2, ge=1)


class EvalConfig(_Stage):
    """Evaluation."""

    k: int = Field(20, ge=1)
    long_tail_max_interactions: int = Field(5, ge=1)


class RecommenderConfig(_Stage):
    """Everything :class:`~hybrid_rec.HybridRecommender` needs, one section per stage."""

    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    content: ContentConfig = Field(default_factory=ContentConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    index: IndexConfig = Field(default_factory=IndexConfig)
    explain: ExplainConfig = Field(default_factory=ExplainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @classmethod
    def from_toml(cls, path: str | Path) -> RecommenderConfig:
        """Read a config from a TOML file whose tables are the stage names."""
        return load_config(path)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> RecommenderConfig:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise ConfigError(f"{source}: {_readable(exc)}") from None


def load_config(path: str | Path) -> RecommenderConfig:
    """Load a :class:`RecommenderConfig` from TOML, with a readable error."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc}).") from None
    return RecommenderConfig.from_dict(raw, source=str(p))


def _readable(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"])
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
