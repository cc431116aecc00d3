"""Model directories: atomic writes and a sha256 manifest (no pickle anywhere)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_rec.content.encoders import sha256_file
from hybrid_rec.data.io import atomic_write_json, fsync_dir
from hybrid_rec.errors import ModelFileError

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "atomic_directory",
    "load_npy",
    "read_manifest",
    "sha256_file",
    "write_manifest",
]

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@contextlib.contextmanager
def atomic_directory(target: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the body succeeds.

    An existing ``target`` is moved aside, the new one renamed in, then the old
    one deleted, so a crash at any point leaves either the old or the new
    directory complete.
    """
    dest = Path(target).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        for f in tmp.iterdir():
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_manifest(directory: Path, meta: dict[str, Any]) -> None:
    """Write ``manifest.json`` with ``meta`` and the sha256 of every other file."""
    files = {f.name: sha256_file(f) for f in sorted(directory.iterdir()) if f.name != MANIFEST}
    atomic_write_json(
        directory / MANIFEST, {**meta, "format_version": FORMAT_VERSION, "files": files}
    )


def read_manifest(directory: str | Path, *, library_version: str) -> dict[str, Any]:
    """Read and verify a manifest: format version, library version and every file's sha256."""
    d = Path(directory)
    path = d / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{d}: not a hybrid_rec model directory (no {MANIFEST}).")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: unreadable manifest ({exc}).") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"{d}: saved with model format {manifest.get('format_version')!r}, this hybrid_rec "
            f"reads format {FORMAT_VERSION}. Fit and save the model again with this version."
        )
    saved = str(manifest.get("library_version", "?"))
    if saved.split(".")[:2] != library_version.split(".")[:2]:
        raise ModelFileError(
            f"{d}: saved by hybrid_rec {saved}, this is {library_version}; fit and save again."
        )
    for name, digest in manifest.get("files", {}).items():
        f = d / name
        if not f.is_file():
            raise ModelFileError(f"{f}: listed in the manifest but missing.")
        if sha256_file(f) != digest:
            raise ModelFileError(
                f"{f}: sha256 mismatch — the file was changed or corrupted after saving. "
                "Restore it or save the model again."
            )
    return manifest


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` without pickle, with a readable error."""
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read array ({exc}).") from None
