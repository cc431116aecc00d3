"""Re-embedding a catalogue file: formats, incremental runs, the script, and a killed run."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.config import ContentConfig
from hybrid_rec.content import EmbeddingStore, HashingEncoder, reembed_catalog
from hybrid_rec.errors import DataValidationError, EmbeddingStoreError

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "reembed_catalog.py"
HASHING = ContentConfig(encoder="hashing", hashing_dim=32, shard_size=10)


def write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def assert_same_store(a: Path, b: Path) -> None:
    left, right = EmbeddingStore.open(a), EmbeddingStore.open(b)
    assert left.ids.tolist() == right.ids.tolist()
    assert left.hashes.tolist() == right.hashes.tolist()
    np.testing.assert_array_equal(left.get(left.ids), right.get(right.ids))
    left.verify()
    right.verify()


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_every_file_format_gives_the_same_store(
    tmp_path: Path, catalogue: pd.DataFrame, suffix: str
) -> None:
    reembed_catalog(catalogue, tmp_path / "from-frame", config=HASHING)
    path = write(catalogue, tmp_path / f"items{suffix}")
    summary = reembed_catalog(path, tmp_path / "from-file", config=HASHING)
    assert summary.new == len(catalogue)
    assert_same_store(tmp_path / "from-frame", tmp_path / "from-file")


def test_a_second_run_touches_only_what_changed(
    tmp_path: Path, catalogue: pd.DataFrame, counting: Callable[[Any], Any]
) -> None:
    path = write(catalogue, tmp_path / "items.parquet")
    reembed_catalog(path, tmp_path / "s", config=HASHING)
    edited = catalogue.copy()
    edited.loc[edited["item_id"] == "i005", "title"] = "A new title"
    edited = pd.concat(
        [edited[edited["item_id"] != "i009"], pd.DataFrame([{"item_id": "x1", "title": "New"}])]
    )
    write(edited, path)
    spy = counting(HashingEncoder(32))
    summary = reembed_catalog(path, tmp_path / "s", config=HASHING, encoder=spy)
    assert (summary.new, summary.changed, summary.removed) == (1, 1, 1)
    assert summary.unchanged == len(catalogue) - 2
    assert len(spy.texts) == 2


def test_keep_removed(tmp_path: Path, catalogue: pd.DataFrame) -> None:
    reembed_catalog(catalogue, tmp_path / "s", config=HASHING)
    summary = reembed_catalog(
        catalogue.iloc[:-3], tmp_path / "s", config=HASHING, keep_removed=True
    )
    assert (summary.removed, summary.kept) == (0, 3)
    assert len(EmbeddingStore.open(tmp_path / "s")) == len(catalogue)


def test_duplicate_ids_in_the_file_are_rejected(tmp_path: Path, catalogue: pd.DataFrame) -> None:
    path = write(pd.concat([catalogue, catalogue.iloc[:2]]), tmp_path / "items.csv")
    with pytest.raises(DataValidationError, match=r"duplicate item id.*'i000'"):
        reembed_catalog(path, tmp_path / "s", config=HASHING)
    assert not (tmp_path / "s").exists()


def test_an_encoder_change_needs_rebuild(tmp_path: Path, catalogue: pd.DataFrame) -> None:
    reembed_catalog(catalogue, tmp_path / "s", config=HASHING)
    other = HASHING.model_copy(update={"hashing_dim": 16})
    with pytest.raises(EmbeddingStoreError, match="rebuild"):
        reembed_catalog(catalogue, tmp_path / "s", config=other)
    summary = reembed_catalog(catalogue, tmp_path / "s", config=other, rebuild=True)
    assert summary.new == len(catalogue)
    assert EmbeddingStore.open(tmp_path / "s").dim == 16


def test_a_corrupt_shard_stops_the_run_unless_repairing(
    tmp_path: Path, catalogue: pd.DataFrame
) -> None:
    reembed_catalog(catalogue, tmp_path / "s", config=HASHING)
    shard = EmbeddingStore.open(tmp_path / "s").shard_files[0]
    shard.write_bytes(shard.read_bytes()[:-7])
    with pytest.raises(EmbeddingStoreError, match=str(shard)):
        reembed_catalog(catalogue, tmp_path / "s", config=HASHING)
    summary = reembed_catalog(catalogue, tmp_path / "s", config=HASHING, repair=True)
    assert summary.new == 10
    reembed_catalog(catalogue, tmp_path / "clean", config=HASHING)
    assert_same_store(tmp_path / "s", tmp_path / "clean")


@pytest.mark.slow
def test_minilm_re_embeds_only_the_changed_item(
    tmp_path: Path, minilm: Any, catalogue: pd.DataFrame, counting: Callable[[Any], Any]
) -> None:
    config = ContentConfig(shard_size=16)
    first = reembed_catalog(catalogue, tmp_path / "s", config=config, encoder=minilm)
    assert first.new == len(catalogue)
    edited = catalogue.copy()
    edited.loc[3, "description"] = "A heist in a casino goes wrong."
    spy = counting(minilm)
    summary = reembed_catalog(edited, tmp_path / "s", config=config, encoder=spy)
    assert (summary.new, summary.changed, summary.unchanged) == (0, 1, len(catalogue) - 1)
    assert len(spy.texts) == 1 and "casino" in spy.texts[0]
    store = EmbeddingStore.open(tmp_path / "s")
    vectors = store.get(store.ids)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert store.dim == 384


# ----------------------------------------------------------------------------- script


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reembed_catalog_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_script_prints_one_summary_line(
    tmp_path: Path, catalogue: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(catalogue, tmp_path / "items.jsonl")
    main = load_script().main
    assert main([str(path), "--store", str(tmp_path / "s"), "--encoder", "hashing", "-q"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    assert out[0].startswith(f"new {len(catalogue)} · changed 0 · unchanged 0 · removed 0 · ")
    assert out[0].endswith(" items/s")


def test_the_script_prunes_a_shrunk_catalogue_only_when_told(
    tmp_path: Path, catalogue: pd.DataFrame, capsys: pytest.CaptureFixture[str]
) -> None:
    """The refusal says "--prune"; the script used to have no such flag."""
    main = load_script().main
    store = str(tmp_path / "s")
    first = [str(write(catalogue, tmp_path / "all.csv")), "--store", store, "--encoder", "hashing"]
    assert main([*first, "-q"]) == 0
    few = write(catalogue.head(5), tmp_path / "few.csv")
    assert main([str(few), "--store", store, "--encoder", "hashing", "-q"]) == 2
    assert "--prune" in capsys.readouterr().err
    assert main([str(few), "--store", store, "--encoder", "hashing", "-q", "--prune"]) == 0
    assert f"removed {len(catalogue) - 5}" in capsys.readouterr().out


def test_the_script_reports_user_errors_without_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = load_script().main
    assert main([str(tmp_path / "missing.csv"), "--store", str(tmp_path / "s"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "missing.csv" in err and "file not found" in err
    assert "Traceback" not in err
    assert main(["x.csv", "--store", "s", "--batch-size", "0", "-q"]) == 2
    assert "batch_size" in capsys.readouterr().err


def test_the_script_runs_as_a_program(tmp_path: Path, catalogue: pd.DataFrame) -> None:
    path = write(catalogue, tmp_path / "items.csv")
    command = [
        sys.executable,
        str(SCRIPT),
        str(path),
        "--store",
        str(tmp_path / "s"),
        "--encoder",
        "hashing",
        "--shard-size",
        "7",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"new {len(catalogue)} ·")
    assert "%|" not in done.stderr  # stderr is a pipe: no progress bar (" 40%|███ ") ...
    drawn = [*command[:4], str(tmp_path / "s2"), *command[5:], "--progress"]
    fresh = subprocess.run(drawn, capture_output=True, text=True, timeout=120, check=False)
    assert fresh.returncode == 0 and "%|" in fresh.stderr  # ... unless asked for
    again = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert again.stdout.startswith(f"new 0 · changed 0 · unchanged {len(catalogue)} · removed 0")


# ----------------------------------------------------------------------------- killed run

CHILD = """
import sys, time
from hybrid_rec.config import ContentConfig
from hybrid_rec.content import HashingEncoder, reembed_catalog

class SlowHashing(HashingEncoder):
    # the same vectors and name as HashingEncoder(32), but each shard takes a while
    def encode(self, texts, **kwargs):
        time.sleep(float(sys.argv[3]))
        return super().encode(texts, **kwargs)

config = ContentConfig(encoder="hashing", hashing_dim=32, shard_size=20)
reembed_catalog(sys.argv[1], sys.argv[2], config=config, encoder=SlowHashing(32),
                show_progress=False)
"""


def test_a_run_killed_mid_way_resumes_to_the_same_store(
    tmp_path: Path,
    make_items: Callable[..., pd.DataFrame],
    counting: Callable[[Any], Any],
) -> None:
    items = make_items(200, seed=3)
    path = write(items, tmp_path / "items.parquet")
    store_dir = tmp_path / "killed"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(store_dir), "0.3"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    manifest = store_dir / "manifest.parquet"
    deadline = time.monotonic() + 120
    while not manifest.exists():
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        assert time.monotonic() < deadline, "the child never committed a shard"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)  # right after its first commit: 9 shards still to go
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    if child.stderr:
        child.stderr.close()

    partial = EmbeddingStore.open(store_dir)
    partial.verify()
    done = len(partial)
    assert 0 < done < len(items)

    config = ContentConfig(encoder="hashing", hashing_dim=32, shard_size=20)
    spy = counting(HashingEncoder(32))
    resumed = reembed_catalog(path, store_dir, config=config, encoder=spy)
    assert resumed.new == len(items) - done  # finished shards were not embedded again
    assert len(spy.texts) == len(items) - done
    assert resumed.unchanged == done

    reembed_catalog(path, tmp_path / "clean", config=config)
    assert_same_store(store_dir, tmp_path / "clean")
    shards = {p.name for p in (store_dir / "shards").iterdir()}
    assert shards == {p.name for p in EmbeddingStore.open(store_dir).shard_files}
