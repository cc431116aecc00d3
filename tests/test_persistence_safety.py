"""Model directories: saving never deletes files it did not write, and loading verifies
every file it opens against a well-formed manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hybrid_rec import HybridRecommender, RecommenderConfig, persistence
from hybrid_rec._version import __version__
from hybrid_rec.cli import app
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset, synthetic
from hybrid_rec.errors import HybridRecError, ModelChangedError, ModelFileError
from hybrid_rec.persistence import (
    MANIFEST,
    atomic_directory,
    read_manifest,
    sha256_file,
    write_manifest,
)


def _save_fake_model(target: Path, payload: bytes = b"weights") -> Path:
    """A minimal model directory written the way ``HybridRecommender.save`` writes one."""
    with atomic_directory(target) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "weights.bin").write_bytes(payload)
        write_manifest(tmp, {"library_version": __version__})
    return target


def _read(d: Path) -> dict[str, object]:
    return read_manifest(d, library_version=__version__)


def _edit_manifest(d: Path, **changes: object) -> None:
    manifest = json.loads((d / MANIFEST).read_text())
    manifest.update(changes)
    (d / MANIFEST).write_text(json.dumps(manifest))


# ------------------------------------------------------------------ saving


def _users_folder(root: Path) -> Path:
    d = root / "sandbox"
    d.mkdir()
    for name in ("interactions.csv", "items.csv", "IMPORTANT.txt"):
        (d / name).write_text(f"the user's own {name}\n")
    return d


def test_saving_into_a_folder_of_other_files_is_refused_and_deletes_nothing(
    tmp_path: Path,
) -> None:
    d = _users_folder(tmp_path)
    ran = False
    refusal = "not empty and is not a saved hybrid_rec model"
    with pytest.raises(ModelFileError, match=refusal) as e, atomic_directory(d):
        ran = True
    assert not ran  # refused before any work is done
    assert str(d) in str(e.value) and "IMPORTANT.txt" in str(e.value)
    assert sorted(p.name for p in d.iterdir()) == ["IMPORTANT.txt", "interactions.csv", "items.csv"]
    assert (d / "IMPORTANT.txt").read_text() == "the user's own IMPORTANT.txt\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sandbox"]  # no temp dir left


def test_a_foreign_manifest_does_not_make_a_folder_replaceable(tmp_path: Path) -> None:
    d = _users_folder(tmp_path)
    (d / MANIFEST).write_text(json.dumps({"files": {}, "format_version": 1}))
    with pytest.raises(ModelFileError, match="not a saved hybrid_rec model"):
        _save_fake_model(d)
    (d / MANIFEST).write_text("[1, 2]")
    with pytest.raises(ModelFileError, match="not a saved hybrid_rec model"):
        _save_fake_model(d)
    assert (d / "IMPORTANT.txt").exists()


def test_saving_over_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "model"
    f.write_text("not a directory")
    with pytest.raises(ModelFileError, match="exists and is not a directory"):
        _save_fake_model(f)
    assert f.read_text() == "not a directory"
    with pytest.raises(ModelFileError, match="cannot create"):
        _save_fake_model(f / "inside")


def test_an_earlier_saved_model_or_an_empty_folder_is_replaced(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m", b"old")
    _save_fake_model(d, b"new")
    assert (d / "weights.bin").read_bytes() == b"new"
    _read(d)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # old copy and temp dir gone
    (tmp_path / "empty").mkdir()
    _read(_save_fake_model(tmp_path / "empty"))


def test_a_failed_save_leaves_the_earlier_model_whole(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m", b"old")
    with pytest.raises(RuntimeError, match="boom"), atomic_directory(d) as tmp:
        (tmp / "weights.bin").write_bytes(b"half")
        raise RuntimeError("boom")
    assert (d / "weights.bin").read_bytes() == b"old"
    _read(d)


def test_a_failed_rename_in_puts_the_old_model_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The old model was moved aside, the new one's rename failed, and the new one was
    deleted: no model was left at all (a review reproduced it with EIO and ENOTEMPTY)."""
    d = _save_fake_model(tmp_path / "m", b"old")
    real = persistence.os.replace

    def failing(src: object, dst: object) -> None:
        if Path(str(src)).is_dir() and str(src).endswith(".tmp"):  # the new model, renamed in
            raise OSError(5, "Input/output error")
        real(src, dst)

    monkeypatch.setattr(persistence.os, "replace", failing)
    with pytest.raises(OSError, match="Input/output"):
        _save_fake_model(d, b"new")
    monkeypatch.setattr(persistence.os, "replace", real)
    assert (d / "weights.bin").read_bytes() == b"old"
    _read(d)
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


def test_a_model_left_aside_by_a_killed_save_is_put_back(tmp_path: Path) -> None:
    """Killed between its two renames, a save leaves ``.m.XXXX.old/m`` and no ``m``."""
    d = _save_fake_model(tmp_path / "m", b"old")
    aside = tmp_path / ".m.abcd.old"
    aside.mkdir()
    d.rename(aside / "m")
    assert not d.exists()
    assert persistence.recover_interrupted_save(d)
    assert (d / "weights.bin").read_bytes() == b"old" and not aside.exists()
    assert not persistence.recover_interrupted_save(d)  # nothing more to do
    (aside / "m").mkdir(parents=True)  # an unfinished folder without a manifest: left alone
    d.rename(tmp_path / "elsewhere")
    assert not persistence.recover_interrupted_save(d) and not d.exists()


def _age(folder: Path, seconds: float) -> None:
    """Set the times of ``folder`` and everything in it ``seconds`` into the past."""
    when = time.time() - seconds
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (when, when))


def test_temporary_folders_of_killed_saves_are_swept_once_stale(tmp_path: Path) -> None:
    """A save killed while writing left ``.m.XXXXXXXX.tmp`` (a model's worth of disk)
    forever; the next save deletes such leftovers once untouched for an hour, and only
    those holding nothing but what a save writes."""
    d = _save_fake_model(tmp_path / "m", b"old")
    killed = tmp_path / ".m.k1ll3d00.tmp"  # a new model, killed mid-write
    killed.mkdir()
    (killed / "weights.bin").write_bytes(b"half")
    replaced = tmp_path / ".m.r3plac3d.old"  # killed after the new model went in
    shutil.copytree(d, replaced / "m")
    empty = tmp_path / ".m.3mpty000.old"  # killed before the old model went aside
    empty.mkdir()
    running = tmp_path / ".m.runn1ng0.tmp"  # another save, still writing
    running.mkdir()
    (running / "weights.bin").write_bytes(b"fresh")
    mine = tmp_path / ".m.m1ne0000.old"  # a user's file in it: not ours to delete
    shutil.copytree(d, mine / "m")
    (mine / "m" / "notes.txt").write_text("mine")
    other = tmp_path / ".m.x.0th3r000.tmp"  # model "m.x"'s folder, not model "m"'s
    other.mkdir()
    for folder in (killed, replaced, empty, mine, other):
        _age(folder, 2 * persistence.STALE_AFTER_S)
    _save_fake_model(d, b"new")
    assert (d / "weights.bin").read_bytes() == b"new"
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["m", running.name, mine.name, other.name])
    assert (mine / "m" / "notes.txt").read_text() == "mine"


def test_a_saved_model_with_the_users_files_added_is_not_replaced(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m")
    (d / "notes.txt").write_text("mine")
    with pytest.raises(ModelFileError, match=r"not part of it \(notes\.txt\)"):
        _save_fake_model(d, b"new")
    assert (d / "notes.txt").read_text() == "mine"
    assert (d / "weights.bin").read_bytes() == b"weights"


# ------------------------------------------------------------------ loading


def test_a_file_dropped_from_the_manifest_is_not_read_unchecked(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m")
    manifest = json.loads((d / MANIFEST).read_text())
    del manifest["files"]["weights.bin"]
    (d / MANIFEST).write_text(json.dumps(manifest))
    (d / "weights.bin").write_bytes(b"tampered")
    with pytest.raises(ModelFileError, match=r"weights\.bin not listed in manifest\.json"):
        _read(d)


def test_a_file_added_after_saving_is_refused(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m")
    (d / "extra.npy").write_bytes(b"x")
    with pytest.raises(ModelFileError, match=r"extra\.npy not listed"):
        _read(d)


def test_desktop_junk_is_ignored_but_other_dot_files_are_kept(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m")
    (d / ".DS_Store").write_bytes(b"finder")  # no loader opens it
    _read(d)
    _save_fake_model(d, b"new")
    assert (d / "weights.bin").read_bytes() == b"new"
    (d / ".git").mkdir()  # the user's own, even if hidden: never deleted, never loaded
    (d / ".git" / "HEAD").write_text("ref")
    with pytest.raises(ModelFileError, match=r"\.git"):
        _read(d)
    with pytest.raises(ModelFileError, match=r"not part of it \(\.git\)"):
        _save_fake_model(d, b"newer")
    assert (d / ".git" / "HEAD").read_text() == "ref"
    junk_only = tmp_path / "fresh"
    junk_only.mkdir()
    (junk_only / ".DS_Store").write_bytes(b"finder")
    _save_fake_model(junk_only)  # as good as empty
    # a folder under a junk file's name is the user's: a save deleted it with its files
    for name in ("._notes", ".DS_Store"):
        other = _save_fake_model(tmp_path / f"other{name}")
        (other / name).mkdir()
        (other / name / "mine.txt").write_text("keep")
        with pytest.raises(ModelFileError, match=re.escape(name)):
            _save_fake_model(other, b"newer")
        assert (other / name / "mine.txt").read_text() == "keep"


def test_a_file_written_into_the_old_model_during_a_save_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = _save_fake_model(tmp_path / "m")
    real = persistence.check_replaceable
    calls = []

    def late_writer(dest: Path) -> None:
        real(dest)
        calls.append(dest)
        if len(calls) == 2:  # after the last check, before the swap
            (Path(dest) / "report.csv").write_text("mine")

    monkeypatch.setattr(persistence, "check_replaceable", late_writer)
    _save_fake_model(d, b"new")
    kept = list(tmp_path.glob(".m.*.old/m/report.csv"))
    assert (d / "weights.bin").read_bytes() == b"new"
    assert len(kept) == 1 and kept[0].read_text() == "mine"


@pytest.mark.parametrize(
    "name", ["../../etc/passwd", "/etc/passwd", "..", ".", "", "sub/config.json", "a\\b"]
)
def test_manifest_names_outside_the_directory_are_refused(tmp_path: Path, name: str) -> None:
    d = _save_fake_model(tmp_path / "m")
    files = json.loads((d / MANIFEST).read_text())["files"]
    _edit_manifest(d, files={**files, name: "0" * 64})
    with pytest.raises(ModelFileError, match="not a plain file name"):
        _read(d)


@pytest.mark.parametrize(
    ("files", "kind"), [(["config.json"], "list"), ("x", "str"), (None, "NoneType")]
)
def test_a_files_entry_of_the_wrong_type_is_a_corrupt_model(
    tmp_path: Path, files: object, kind: str
) -> None:
    d = _save_fake_model(tmp_path / "m")
    _edit_manifest(d, files=files)
    with pytest.raises(ModelFileError, match=rf"corrupt manifest.*got {kind}"):
        _read(d)


def test_a_digest_of_the_wrong_type_is_a_corrupt_model(tmp_path: Path) -> None:
    d = _save_fake_model(tmp_path / "m")
    _edit_manifest(d, files={"config.json": 5, "weights.bin": None})
    with pytest.raises(ModelFileError, match=r"corrupt manifest.*not a string"):
        _read(d)


@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "3", "null"])
def test_a_manifest_that_is_not_an_object_is_a_corrupt_model(tmp_path: Path, text: str) -> None:
    d = _save_fake_model(tmp_path / "m")
    (d / MANIFEST).write_text(text)
    with pytest.raises(ModelFileError, match="corrupt manifest"):
        _read(d)


# ------------------------------------------------------------------ through the library


@pytest.fixture(scope="module")
def tiny() -> Dataset:
    return synthetic(n_users=40, n_items=50, n_clusters=2, interactions_per_user=8, seed=3)


def _tiny_config() -> RecommenderConfig:
    cfg = RecommenderConfig()
    cfg.content.encoder, cfg.content.hashing_dim = "hashing", 64
    cfg.model.epochs, cfg.model.dim, cfg.model.history_len = 1, 16, 8
    return cfg


@pytest.fixture(scope="module")
def tiny_model(tiny: Dataset) -> HybridRecommender:
    rec = HybridRecommender(_tiny_config(), encoder=HashingEncoder(64))
    return rec.fit(tiny.interactions, tiny.items, show_progress=False)


def test_recommender_save_refuses_a_users_folder_and_replaces_its_own_model(
    tiny_model: HybridRecommender, tmp_path: Path
) -> None:
    d = _users_folder(tmp_path)
    with pytest.raises(ModelFileError, match="not a saved hybrid_rec model"):
        tiny_model.save(d)
    assert len(list(d.iterdir())) == 3
    m = tiny_model.save(tmp_path / "m")
    tiny_model.save(m)  # replacing an earlier save keeps working
    HybridRecommender.load(m, encoder=HashingEncoder(64))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "sandbox"]


def test_recommender_load_refuses_a_file_dropped_from_the_manifest(
    tiny_model: HybridRecommender, tmp_path: Path
) -> None:
    d = tiny_model.save(tmp_path / "m")
    manifest = json.loads((d / MANIFEST).read_text())
    del manifest["files"]["meta.json"]
    (d / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ModelFileError, match=r"meta\.json not listed"):
        HybridRecommender.load(d)
    _edit_manifest(d, files=list(manifest["files"]))
    with pytest.raises(ModelFileError, match="corrupt manifest"):
        HybridRecommender.load(d)


def test_cli_fit_into_the_data_folder_is_refused_and_keeps_the_data(
    tiny: Dataset, tmp_path: Path
) -> None:
    d = tmp_path / "sandbox"
    d.mkdir()
    tiny.interactions.to_csv(d / "interactions.csv", index=False)
    tiny.items.to_csv(d / "items.csv", index=False)
    (d / "IMPORTANT.txt").write_text("keep me")
    args = ["fit", str(d / "interactions.csv"), str(d / "items.csv"), "-o", str(d)]
    result = CliRunner().invoke(app, [*args, "--encoder", "hashing", "--epochs", "1"])
    assert isinstance(result.exception, HybridRecError), result.output
    assert "not a saved hybrid_rec model" in str(result.exception)
    assert sorted(p.name for p in d.iterdir()) == ["IMPORTANT.txt", "interactions.csv", "items.csv"]
    assert (d / "IMPORTANT.txt").read_text() == "keep me"


def test_saved_files_get_the_mode_the_umask_gives(tmp_path: Path) -> None:
    """mkstemp/mkdtemp made models 0600/0700: a service reading them as another user failed."""
    import stat

    from hybrid_rec.data.io import atomic_write_json, default_mode
    from hybrid_rec.persistence import atomic_directory

    assert default_mode() == 0o666 & ~_current_umask()
    atomic_write_json(tmp_path / "a.json", {"x": 1})
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == default_mode()
    with atomic_directory(tmp_path / "m") as tmp:
        (tmp / "f.txt").write_text("x")
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == default_mode(directory=True)


def _current_umask() -> int:
    import os

    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _rewritten(src: Path, dest: Path, name: str, change: Callable[[Path], None]) -> Path:
    """A copy of the model at ``src`` with ``name`` changed and the manifest made to
    agree: a directory that passes every sha256 check."""
    shutil.copytree(src, dest)
    change(dest / name)
    manifest = json.loads((dest / MANIFEST).read_text())
    manifest["files"][name] = sha256_file(dest / name)
    (dest / MANIFEST).write_text(json.dumps(manifest))
    return dest


def _meta(key: str, value: object) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        meta = json.loads(path.read_text())
        meta[key] = value
        path.write_text(json.dumps(meta))  # json writes NaN / Infinity as Python reads them

    return change


def _array(change_array: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def change(path: Path) -> None:
        np.save(path, change_array(np.load(path)), allow_pickle=False)

    return change


def _nan_rows(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a[0] = np.nan
    return a


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("meta.json", _meta("taste_weight", float("inf")), "taste_weight inf"),
        ("meta.json", _meta("cold_bias", float("nan")), "cold_bias nan"),
        ("meta.json", _meta("prior_weight", "0.5"), "prior_weight '0.5'"),
        ("meta.json", _meta("content_dim", 6_400_000), "content_dim 6400000"),
        ("taste_basis.npy", _array(lambda a: np.full_like(a, np.nan)), "taste_basis.npy"),
        ("fusion_weights.npy", _array(lambda a: a[:, :1]), "fusion_weights.npy"),
        ("fusion_weights.npy", _array(_nan_rows), "fusion_weights.npy holds NaN"),
        ("content.npy", _array(lambda a: a.astype(np.float16)), "float16, not float32"),
        ("prior_coef.npy", _array(lambda a: a[:-1]), "prior_coef.npy"),
    ],
)
def test_consistent_but_wrong_model_files_are_refused(
    tiny_model: HybridRecommender,
    tmp_path: Path,
    name: str,
    change: Callable[[Path], None],
    message: str,
) -> None:
    """Files rewritten together with their manifest passed the sha256 check and loaded:
    NaN weights served empty lists, an infinite taste weight scored every item inf, a
    huge content_dim died allocating terabytes in torch."""
    saved = tiny_model.save(tmp_path / "m")
    bad = _rewritten(saved, tmp_path / "bad", name, change)
    with pytest.raises(ModelFileError, match=re.escape(message)):
        HybridRecommender.load(bad, encoder=HashingEncoder(64))
    HybridRecommender.load(saved, encoder=HashingEncoder(64))  # the original still loads


def test_a_load_during_a_save_waits_for_it_instead_of_undoing_it(
    tiny_model: HybridRecommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that came between a save's two renames took the moved-aside model for a
    crashed save's and put it back; the save then failed and its update was lost."""
    d = tiny_model.save(tmp_path / "m")
    real = os.replace
    aside, go_on = threading.Event(), threading.Event()

    def paused(src: object, dst: object) -> None:
        real(src, dst)  # type: ignore[arg-type]
        if str(dst).endswith(".old/m") and not aside.is_set():
            aside.set()  # the old model is aside, the new one not in yet
            go_on.wait(20)

    monkeypatch.setattr(persistence.os, "replace", paused)
    errors: list[BaseException] = []
    loaded: list[HybridRecommender] = []

    def run(job: Callable[[], object]) -> threading.Thread:
        def target() -> None:
            try:
                out = job()
                if isinstance(out, HybridRecommender):
                    loaded.append(out)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        return thread

    saver = run(lambda: tiny_model.save(d))
    assert aside.wait(20)
    loader = run(lambda: HybridRecommender.load(d, encoder=HashingEncoder(64)))
    time.sleep(0.5)
    assert loader.is_alive()  # waiting on the save's lock
    go_on.set()
    saver.join(20)
    loader.join(20)
    assert not errors, errors
    assert len(loaded) == 1 and len(loaded[0].item_ids_) == len(tiny_model.item_ids_)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing left aside


def test_a_header_that_lies_or_a_manifest_nested_deep_is_a_corrupt_model(tmp_path: Path) -> None:
    """An .npy header claiming 800 GB on a 1 KB file died in a MemoryError, a manifest of
    100,000 nested lists in a RecursionError: tracebacks, not the clear error."""
    import io

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (10**11,)}
    )
    lying = tmp_path / "x.npy"
    lying.write_bytes(header.getvalue() + b"\0" * 1000)
    with pytest.raises(ModelFileError, match=r"800,000,000,000 bytes .* the file holds 1,000"):
        persistence.load_npy(lying)
    np.save(tmp_path / "ok.npy", np.zeros((0, 5), np.float32))
    assert persistence.load_npy(tmp_path / "ok.npy").shape == (0, 5)
    d = _save_fake_model(tmp_path / "m")
    (d / MANIFEST).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ModelFileError, match="unreadable manifest"):
        _read(d)


# ------------------------------------------------------------------ two writers


def _new_item(tiny: Dataset, item_id: str) -> pd.DataFrame:
    row = tiny.items.iloc[:1].copy()
    row["item_id"] = item_id
    return row.reset_index(drop=True)


def test_a_save_over_another_writers_newer_save_is_refused_unless_forced(
    tiny: Dataset, tiny_model: HybridRecommender, tmp_path: Path
) -> None:
    """A service loaded the model, a CLI job then saved an added item to the same
    directory; the service's next save silently dropped that item."""
    d = tiny_model.save(tmp_path / "m")
    service = HybridRecommender.load(d, encoder=HashingEncoder(64))
    service.add_items(_new_item(tiny, "from-service-1"))
    service.save(d)  # its own earlier state there: replaced, as before
    job = HybridRecommender.load(d, encoder=HashingEncoder(64))
    job.add_items(_new_item(tiny, "from-job"))
    job.save(d)
    service.add_items(_new_item(tiny, "from-service-2"))
    with pytest.raises(ModelChangedError, match="another writer saved"):
        service.save(d)
    on_disk = HybridRecommender.load(d, encoder=HashingEncoder(64))
    assert "from-job" in set(on_disk.item_ids_.external_ids)  # the job's item survived
    assert "from-service-2" not in set(on_disk.item_ids_.external_ids)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # nothing left aside
    service.save(d, force=True)
    ids = set(HybridRecommender.load(d, encoder=HashingEncoder(64)).item_ids_.external_ids)
    assert {"from-service-1", "from-service-2"} <= ids and "from-job" not in ids
    job.add_items(_new_item(tiny, "from-job-2"))
    with pytest.raises(ModelChangedError):  # now the job is behind
        job.save(d)
    tiny_model.save(tmp_path / "elsewhere")  # a directory an object never read is replaced
    tiny_model.save(tmp_path / "elsewhere")


def test_a_save_that_lands_while_another_is_written_is_not_overwritten(
    tiny: Dataset, tiny_model: HybridRecommender, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check is repeated under the lock just before the rename: a writer that
    saved while this save was writing its files is not overwritten either."""
    d = tiny_model.save(tmp_path / "m")
    service = HybridRecommender.load(d, encoder=HashingEncoder(64))
    job = HybridRecommender.load(d, encoder=HashingEncoder(64))
    job.add_items(_new_item(tiny, "from-job"))
    write_recall = service._write_index_recall

    def meanwhile(path: Path) -> None:
        job.save(d)  # lands after the service's first check, before its rename
        write_recall(path)

    monkeypatch.setattr(service, "_write_index_recall", meanwhile)
    with pytest.raises(ModelChangedError):
        service.save(d)
    assert "from-job" in set(
        HybridRecommender.load(d, encoder=HashingEncoder(64)).item_ids_.external_ids
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # its files were cleaned up
