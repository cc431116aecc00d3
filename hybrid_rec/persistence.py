"""Model directories: atomic writes and a sha256 manifest (no pickle anywhere)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hybrid_rec.content.encoders import sha256_file
from hybrid_rec.data.io import atomic_write_json, default_mode, exclusive_lock, fsync_dir
from hybrid_rec.errors import ModelChangedError, ModelFileError

__all__ = [
    "FORMAT_VERSION",
    "LIBRARY",
    "MANIFEST",
    "atomic_directory",
    "check_replaceable",
    "check_unchanged",
    "load_npy",
    "manifest_digest",
    "model_lock",
    "read_manifest",
    "recover_interrupted_save",
    "sha256_file",
    "sweep_interrupted_saves",
    "write_manifest",
]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
LIBRARY = "hybrid_rec"
_SHOWN = 5  # at most this many file names are quoted in a message
STALE_AFTER_S = 3600.0
"""A save's temporary folder untouched this long belongs to a save that was killed."""


@contextlib.contextmanager
def atomic_directory(target: str | Path, *, expect: str | None = None) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``target`` only if the body succeeds.

    ``target`` must be absent, an empty directory, or a model directory written
    by :func:`write_manifest` that holds nothing but its manifest and the files
    it lists; anything else (a file, a folder of the user's own files) raises
    :class:`ModelFileError` before the body runs, so nothing is ever deleted
    that this library did not write.

    An existing ``target`` is moved aside, the new one renamed in, then the old
    one deleted, so a crash at any point leaves either the old or the new
    directory complete.

    With ``expect`` (a :func:`manifest_digest`), a ``target`` whose manifest is no
    longer that one (another writer saved there since) raises
    :class:`ModelChangedError`, before the body and again just before the rename.
    """
    dest = Path(target).resolve()
    try:  # a parent it creates holds nothing, so the check below still runs before any work
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ModelFileError(f"{dest.parent}: cannot create the model's folder ({exc}).") from None
    # the model's lock around what touches the directory itself, so that another
    # process's load cannot take the moved-aside model for a crashed save's (the files
    # are written without it; a command holding it for its whole run reenters it)
    with model_lock(dest, wait=SAVE_LOCK_WAIT_S):
        recover_interrupted_save(dest)
        sweep_interrupted_saves(dest)
        check_replaceable(dest)
        check_unchanged(dest, expect)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, default_mode(directory=True))  # mkdtemp makes it 0700
    try:
        yield tmp
        for f in tmp.iterdir():
            os.chmod(f, default_mode())  # safetensors writes 0600: others could not load it
            with f.open("rb") as fh:
                os.fsync(fh.fileno())
        fsync_dir(tmp)
        with model_lock(dest, wait=SAVE_LOCK_WAIT_S):
            check_unchanged(dest, expect)  # again: another writer may have saved meanwhile
            _rename_in(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def manifest_digest(directory: str | Path) -> str | None:
    """The sha256 of ``directory``'s manifest, which names every file's sha256: one
    saved state of a model; ``None`` where there is no manifest."""
    path = Path(directory) / MANIFEST
    return sha256_file(path) if path.is_file() else None


def check_unchanged(dest: Path, expect: str | None) -> None:
    """Raise :class:`ModelChangedError` if ``dest`` holds a model whose manifest is not
    ``expect`` (nothing to check without ``expect``, or without a model there)."""
    if expect is None:
        return
    now = manifest_digest(dest)
    if now is not None and now != expect:
        raise ModelChangedError(
            f"{dest}: another writer saved a model here after this one was loaded from it "
            "or saved to it; saving would discard that writer's changes. Fix: load the "
            "directory again, apply this update to what it holds and save that; or pass "
            "force=True to save() to replace it with this model."
        )


def _rename_in(tmp: Path, dest: Path) -> None:
    """Move ``dest`` aside, rename ``tmp`` in, delete the old one."""
    check_replaceable(dest)  # again: something may have appeared while the body ran
    old = None
    if dest.exists():
        aside = tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent)
        old = Path(aside) / dest.name
        os.replace(dest, old)
    try:
        os.replace(tmp, dest)
    except OSError:
        if old is not None:  # put the old model back: never leave no model at all
            os.replace(old, dest)
            shutil.rmtree(old.parent, ignore_errors=True)
        raise
    fsync_dir(dest.parent)
    if old is not None:
        try:  # once more, on the moved folder: a file written into it since the check
            check_replaceable(old)
        except ModelFileError:
            log.warning("%s: kept, with files written during the save in it", old.parent)
        else:
            shutil.rmtree(old.parent, ignore_errors=True)


def recover_interrupted_save(target: str | Path) -> bool:
    """Put back a model a crash left aside: :func:`atomic_directory` moves the old
    directory to ``.NAME.XXXX.old/NAME`` and then renames the new one in; killed
    between the two, it leaves no ``NAME`` at all. Returns whether one was restored
    (the newest, when there are several); the unfinished new one is left to be
    cleaned up with the other temporary folders."""
    dest = Path(target)
    if dest.exists() or not dest.parent.is_dir():
        return False
    found = dest.parent.glob(f".{dest.name}.*.old/{dest.name}")
    aside = sorted((p for p in found if (p / MANIFEST).is_file()), key=lambda p: p.stat().st_mtime)
    if not aside:
        return False
    os.replace(aside[-1], dest)
    shutil.rmtree(aside[-1].parent, ignore_errors=True)
    log.warning("%s: restored the model an interrupted save had moved aside", dest)
    return True


def sweep_interrupted_saves(target: str | Path, *, older_than: float = STALE_AFTER_S) -> list[Path]:
    """Delete the temporary folders killed saves of ``target`` left beside it, once
    nothing in them changed for ``older_than`` seconds (a running save writes its
    files continuously, so it is never swept): ``.NAME.XXXXXXXX.tmp`` (a new model
    never renamed in) and ``.NAME.XXXXXXXX.old`` holding nothing or a replaced model.
    A folder with anything else in it (a subfolder, a file the manifest does not
    list) is kept. Run by :func:`atomic_directory` after
    :func:`recover_interrupted_save`; returns the folders deleted."""
    dest = Path(target)
    if not dest.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(dest.name)}\.[A-Za-z0-9_]{{8}}\.(tmp|old)$")
    removed = []
    for folder in dest.parent.iterdir():
        match = pattern.match(folder.name)
        if not match or folder.is_symlink() or not folder.is_dir():
            continue
        with contextlib.suppress(OSError):
            if time.time() - _newest_change(folder) < older_than:
                continue
            if not _only_written_by_a_save(folder, dest.name, old=match.group(1) == "old"):
                continue
            shutil.rmtree(folder)
            removed.append(folder)
            log.warning("%s: removed the temporary folder of a save that was killed", folder)
    return removed


def _newest_change(folder: Path) -> float:
    paths = [folder, *folder.iterdir()]
    paths += [
        p for sub in paths[1:] if sub.is_dir() and not sub.is_symlink() for p in sub.iterdir()
    ]
    return max(p.lstat().st_mtime for p in paths)


def _only_written_by_a_save(folder: Path, name: str, *, old: bool) -> bool:
    entries = list(folder.iterdir())
    if old:  # .old holds the replaced model directory NAME, or nothing
        if any(e.name != name for e in entries):
            return False
        if not entries:
            return True
        try:
            check_replaceable(entries[0])
        except ModelFileError:
            return False
        return True
    # .tmp holds the new model's plain files, its manifest maybe not yet written
    return all(e.is_file() and not e.is_symlink() for e in entries)


@contextlib.contextmanager
def model_lock(directory: str | Path, *, wait: float = 0.0) -> Iterator[None]:
    """Hold while reading, changing and saving the model in ``directory``, so that two
    updates of one model (two ``add-items`` runs) cannot lose each other's changes.

    The lock file ``.NAME.lock`` sits beside the directory (the directory itself is
    replaced whole on save) and is removed on exit. A lock another update holds is
    waited for up to ``wait`` seconds, then refused. A thread that holds it already
    (a command around its own save) takes it again at once.
    """
    target = Path(directory).resolve()
    lock = target.with_name(f".{target.name}.lock")
    held: set[Path] = _HELD.__dict__.setdefault("locks", set())
    if lock in held:
        yield
        return
    busy = ModelFileError(
        f"{target}: another process is updating this model (lock {lock})"
        + (f" and still was after {wait:g} s" if wait > 0 else "")
        + ". Fix: wait for it to finish (the lock goes when it exits), then run this again, "
        + ("or pass a longer --wait." if wait > 0 else "or pass --wait SECONDS to wait for it.")
    )
    with exclusive_lock(lock, busy, wait=wait):
        held.add(lock)
        try:
            yield
        finally:
            held.discard(lock)


_HELD = threading.local()
"""The model locks this thread holds."""
SAVE_LOCK_WAIT_S = 10.0
"""How long a save or a load's repair waits for the model's lock (another process
updating the model) before it is refused."""


def check_replaceable(dest: str | Path) -> None:
    """Raise unless ``dest`` may be replaced without losing anything but an old saved model
    (and the files a desktop drops everywhere: ``.DS_Store``, ``Thumbs.db`` ...)."""
    dest = Path(dest)
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise ModelFileError(
            f"{dest}: exists and is not a directory, so a model cannot be saved there. "
            "Choose another path for the model, or remove that file first."
        )
    entries = sorted(p.name for p in dest.iterdir() if not _desktop_junk(p))
    if not entries:
        return
    try:
        manifest = _parse_manifest(dest / MANIFEST)
        files = _manifest_files(manifest, dest / MANIFEST)
    except ModelFileError:
        manifest, files = None, {}
    if manifest is None or manifest.get("library") != LIBRARY:
        raise ModelFileError(
            f"{dest}: directory is not empty and is not a saved hybrid_rec model (no valid "
            f"{MANIFEST}); saving there would delete what it holds ({_quote(entries)}). "
            "Save the model to a new or empty directory, or move those files out first."
        )
    extra = _unlisted(dest, files)
    if extra:
        raise ModelFileError(
            f"{dest}: holds a saved model plus files that are not part of it "
            f"({_quote(extra)}); replacing the model would delete them. "
            "Move them out of the directory, or save the model to another directory."
        )


def write_manifest(directory: Path, meta: dict[str, Any]) -> str:
    """Write ``manifest.json`` with ``meta`` and the sha256 of every other file; return
    the manifest's own sha256 (its :func:`manifest_digest`)."""
    files = {f.name: sha256_file(f) for f in sorted(directory.iterdir()) if f.name != MANIFEST}
    atomic_write_json(
        directory / MANIFEST,
        {"library": LIBRARY, **meta, "format_version": FORMAT_VERSION, "files": files},
    )
    return sha256_file(directory / MANIFEST)


def read_manifest(directory: str | Path, *, library_version: str) -> dict[str, Any]:
    """Read and verify a manifest: format version, library version and every file's sha256.

    Every entry of the directory (but the manifest and the files a desktop drops
    into folders, such as ``.DS_Store``) must be listed in the manifest's ``files`` and match its
    sha256, so whatever a loader opens afterwards has been verified; listed
    names must be plain file names.
    """
    d = Path(directory)
    path = d / MANIFEST
    if not path.is_file():
        raise ModelFileError(f"{d}: not a hybrid_rec model directory (no {MANIFEST}).")
    manifest = _parse_manifest(path)
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
    files = _manifest_files(manifest, path)
    for name, digest in files.items():
        f = d / name
        if not f.is_file():
            raise ModelFileError(f"{f}: listed in the manifest but missing.")
        if sha256_file(f) != digest:
            raise ModelFileError(
                f"{f}: sha256 mismatch — the file was changed or corrupted after saving. "
                "Restore it or save the model again."
            )
    unlisted = _unlisted(d, files)
    if unlisted:
        raise ModelFileError(
            f"{d}: {_quote(unlisted)} not listed in {MANIFEST}, so it cannot be verified "
            "(the manifest was edited, or files were added after saving). Remove what does "
            "not belong to the model, or save the model again."
        )
    return manifest


def _parse_manifest(path: Path) -> dict[str, Any]:
    """The manifest at ``path`` as a JSON object, or a :class:`ModelFileError`."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # [[[[...]]]] 100,000 deep
        raise ModelFileError(f"{path}: unreadable manifest ({exc}).") from None
    if not isinstance(manifest, dict):
        raise ModelFileError(
            f"{path}: corrupt manifest (a JSON {type(manifest).__name__}, not an object). "
            "Save the model again."
        )
    return manifest


def _manifest_files(manifest: dict[str, Any], path: Path) -> dict[str, str]:
    """The manifest's ``files`` map (plain file name -> sha256 hex), checked."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ModelFileError(
            f"{path}: corrupt manifest ('files' must map file names to sha256 digests, got "
            f"{type(files).__name__}). Save the model again."
        )
    for name, digest in files.items():
        if not _is_plain_name(name) or name == MANIFEST:
            raise ModelFileError(
                f"{path}: corrupt manifest (file name {name!r} is not a plain file name inside "
                "the model directory). Save the model again."
            )
        if not isinstance(digest, str):
            raise ModelFileError(
                f"{path}: corrupt manifest (the sha256 of {name!r} is a "
                f"{type(digest).__name__}, not a string). Save the model again."
            )
    return files


def _unlisted(directory: Path, files: dict[str, str]) -> list[str]:
    """Entries of ``directory`` that are neither the manifest, nor listed in it, nor
    desktop junk: what a replace would delete and a load could not verify."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.name != MANIFEST and p.name not in files and not _desktop_junk(p)
    )


_DESKTOP_JUNK = frozenset({".DS_Store", "Thumbs.db", "desktop.ini", ".directory"})


def _desktop_junk(entry: Path) -> bool:
    """Files a desktop drops into any folder it shows; no loader opens them. Only plain
    files: a folder of that name holds what someone put there."""
    name = entry.name
    return (name in _DESKTOP_JUNK or name.startswith("._")) and (
        entry.is_file() and not entry.is_symlink()
    )


def _is_plain_name(name: object) -> bool:
    """Whether ``name`` is a bare file name: no directory part, no '..', not absolute."""
    if not isinstance(name, str) or name in ("", ".", ".."):
        return False
    if any(sep in name for sep in ("/", "\\", "\0")) or os.path.isabs(name):
        return False
    return Path(name).name == name


def _quote(names: list[str]) -> str:
    """``names`` for a message: the first few, then how many in all."""
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} ... ({len(names)} in all)"


def load_npy(path: Path) -> np.ndarray:
    """``np.load`` without pickle, with a readable error."""
    try:
        # the header's size against the file's: np.load allocates what the header claims
        with path.open("rb") as fh:
            version = np.lib.format.read_magic(fh)
            read_header = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, _, dtype = read_header(fh)
            data_bytes = path.stat().st_size - fh.tell()
        claimed = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if not dtype.hasobject and claimed != data_bytes:
            raise ModelFileError(
                f"{path}: its header describes {claimed:,} bytes of {dtype} {shape}, the "
                f"file holds {data_bytes:,}; the file is corrupt."
            )
        return np.load(path, allow_pickle=False)
    except ModelFileError:
        raise
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read array ({exc}).") from None
