"""The Ray backend (hybrid_rec.distributed) gives the local backend's results.

Ray must not talk to any address but loopback here, so the Ray half of these
tests runs in a child process inside a loopback-only network namespace
(``unshare -n``, then ``ip link set lo up``; tests/ray_job.py), started once
for the module: one Ray cluster serves every job. The child writes its
outputs to a folder and the tests compare them with the local backend's,
computed in this process. A machine where ``unshare -n`` is not permitted
(it needs root or CAP_SYS_ADMIN) fails these tests with the reason rather
than skipping them, so the coverage is never silently lost.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.cli import app
from hybrid_rec.config import ContentConfig
from hybrid_rec.content import (
    EmbeddingStore,
    HashingEncoder,
    SentenceTransformerEncoder,
    item_texts,
    reembed_catalog,
)
from hybrid_rec.data.datasets import synthetic, synthetic_new_items
from hybrid_rec.distributed import (
    BackendOptions,
    _by_length,
    _PrecomputedEncoder,
    _split,
    _unwrap,
    ray_embed,
    ray_reembed_catalog,
    ray_score_cold_items,
    require_ray,
)
from hybrid_rec.errors import ConfigError, EncoderError, MissingDependencyError

ROOT = Path(__file__).resolve().parents[1]
JOB = ROOT / "tests" / "ray_job.py"
STORE_CFG = ContentConfig(encoder="hashing", hashing_dim=32, shard_size=10)


def run_in_loopback_namespace(argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``argv`` in a new network namespace whose only interface is ``lo`` (up)."""
    missing = [tool for tool in ("unshare", "ip") if shutil.which(tool) is None]
    if missing:
        pytest.fail(
            f"the Ray tests run in a loopback-only network namespace and need {missing} "
            "(util-linux, iproute2) on PATH."
        )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local cluster only
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    command = ["unshare", "--net", "bash", "-c", 'ip link set lo up && exec "$@"', "bash", *argv]
    proc = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # on a timeout, the whole group (Ray included) is killed
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"the Ray job ran past {timeout:.0f} s.\n{err[-4000:]}")
    if proc.returncode != 0 and "unshare failed" in err:
        pytest.fail(
            "the Ray tests run in a loopback-only network namespace (`unshare -n`), which "
            "needs root or CAP_SYS_ADMIN; run the suite as root (as CI does). unshare said: "
            + err.strip()[-500:]
        )
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def _small_config() -> RecommenderConfig:
    cfg = RecommenderConfig()
    cfg.content.encoder = "hashing"  # what each Ray worker builds when it loads the model
    cfg.model.epochs = 3
    cfg.model.dim = 32
    cfg.model.batch_size = 256
    cfg.model.history_len = 20
    return cfg


def _catalogue_versions() -> tuple[pd.DataFrame, pd.DataFrame]:
    items = synthetic(n_users=20, n_items=25, n_clusters=3, seed=3).items
    edited = items.copy()
    edited.loc[3, "title"] = "A brand new title"
    extra = pd.DataFrame([{"item_id": "new-1", "title": "Something else entirely"}])
    return items, pd.concat([edited.drop(index=7), extra], ignore_index=True)


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Inputs written here, every Ray job run once in the namespace, outputs read back."""
    work = tmp_path_factory.mktemp("ray")
    ds = synthetic(n_users=240, n_items=300, n_clusters=4, interactions_per_user=20, seed=7)
    rec = HybridRecommender(_small_config()).fit(ds.interactions, ds.items, show_progress=False)
    rec.save(work / "model")
    synthetic_new_items(50, cluster=2, seed=11, start_id=10_000).to_parquet(
        work / "new_items.parquet", index=False
    )
    (work / "texts.json").write_text(json.dumps(item_texts(ds.items).tolist()[:120]))
    for name, frame in zip(("items_v1", "items_v2"), _catalogue_versions(), strict=True):
        frame.to_parquet(work / f"{name}.parquet", index=False)
    proc = run_in_loopback_namespace([sys.executable, str(JOB), str(work)], timeout=800)
    if proc.returncode != 0:
        pytest.fail(f"the Ray job failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}")
    return work, json.loads((work / "result.json").read_text())


# ----------------------------------------------------------------------------- on Ray


@pytest.mark.slow
def test_ray_embedding_equals_local_hashing(ray_run: tuple[Path, dict[str, Any]]) -> None:
    work, _ = ray_run
    texts = json.loads((work / "texts.json").read_text())
    np.testing.assert_array_equal(np.load(work / "hashing.npy"), HashingEncoder(64).encode(texts))


@pytest.mark.slow
def test_ray_embedding_equals_local_minilm(ray_run: tuple[Path, dict[str, Any]]) -> None:
    work, _ = ray_run
    texts = json.loads((work / "texts.json").read_text())
    on_ray = np.load(work / "minilm.npy")
    local = SentenceTransformerEncoder().encode(texts)
    assert on_ray.shape == local.shape == (len(texts), 384)
    # other batches and thread counts change float sums in the last bits only
    np.testing.assert_allclose(on_ray, local, atol=2e-6)


@pytest.mark.slow
def test_ray_cold_item_scores_equal_local(ray_run: tuple[Path, dict[str, Any]]) -> None:
    work, _ = ray_run
    new_items = pd.read_parquet(work / "new_items.parquet")
    local = HybridRecommender.load(work / "model").score_cold_items(new_items, k=20)
    on_ray = pd.read_parquet(work / "scores.parquet")
    assert on_ray["item_id"].drop_duplicates().tolist() == new_items["item_id"].tolist()
    assert_same_ranking(on_ray, local)


@pytest.mark.slow
def test_cli_score_cold_with_backend_ray_equals_local(ray_run: tuple[Path, dict[str, Any]]) -> None:
    work, result = ray_run
    assert result["cli_rc"] == 0, result["cli_out"]
    new_items = pd.read_parquet(work / "new_items.parquet")
    local = HybridRecommender.load(work / "model").score_cold_items(new_items, k=20)
    assert_same_ranking(pd.read_parquet(work / "scores_cli.parquet"), local)


def assert_same_ranking(got: pd.DataFrame, want: pd.DataFrame, tol: float = 1e-5) -> None:
    """Equal ``score_cold_items`` frames up to float rounding: the same items in the same
    order, the same score at each rank, and the same users except where two users'
    scores tie within ``tol`` (blocks of another size sum floats in another order)."""
    assert list(got.columns) == list(want.columns) == ["item_id", "user_id", "score", "rank"]
    assert got.dtypes.to_dict() == want.dtypes.to_dict()
    pd.testing.assert_frame_equal(got[["item_id", "rank"]], want[["item_id", "rank"]])
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=tol)
    pairs = got.merge(want, on=["item_id", "user_id"], how="outer", suffixes=("_got", "_want"))
    both = pairs.dropna()
    np.testing.assert_allclose(both["score_got"], both["score_want"], rtol=0, atol=tol)
    assert (both["user_id"].size / len(want)) > 0.99
    kth = want.groupby("item_id")["score"].min()  # the k-th score of each item
    for _, row in pairs[pairs.isna().any(axis=1)].iterrows():
        score = row["score_got"] if pd.notna(row["score_got"]) else row["score_want"]
        assert abs(score - kth[row["item_id"]]) <= tol, row  # swapped at the cut-off only


@pytest.mark.slow
def test_ray_reembed_leaves_the_store_the_local_backend_does(
    ray_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    work, result = ray_run
    local = [
        reembed_catalog(work / f"{name}.parquet", tmp_path / "store", config=STORE_CFG)
        for name in ("items_v1", "items_v2")
    ]
    counts = ("new", "changed", "unchanged", "removed", "kept")
    for on_ray, here in zip(result["summaries"], local, strict=True):
        assert {c: on_ray[c] for c in counts} == {c: getattr(here, c) for c in counts}
    assert (local[1].new, local[1].changed, local[1].removed) == (1, 1, 1)
    assert_same_store(work / "store", tmp_path / "store")


@pytest.mark.slow
def test_reembed_script_with_backend_ray(
    ray_run: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    work, result = ray_run
    assert result["script_rc"] == 0
    config = ContentConfig(encoder="hashing", shard_size=10)
    reembed_catalog(work / "items_v2.parquet", tmp_path / "store", config=config)
    assert_same_store(work / "store_script", tmp_path / "store")


@pytest.mark.slow
def test_a_worker_error_comes_back_as_the_hybrid_rec_error(
    ray_run: tuple[Path, dict[str, Any]],
) -> None:
    _, result = ray_run
    name, message = result["worker_error"]
    assert name == "EncoderError"
    assert message.startswith("unknown encoder 'no-such-encoder'")
    assert "Failed to apply UDF" not in message  # Ray Data's retry note is dropped


@pytest.mark.slow
def test_ray_listens_on_loopback_only(ray_run: tuple[Path, dict[str, Any]]) -> None:
    _, result = ray_run
    if not result["listening"]:
        pytest.skip("`ss` is not installed: listening sockets not checked")
    for address in result["listening"]:
        host = address.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        assert ipaddress.ip_address(host).is_loopback, address


def assert_same_store(a: Path, b: Path) -> None:
    left, right = EmbeddingStore.open(a), EmbeddingStore.open(b)
    assert left.encoder_name == right.encoder_name
    assert left.ids.tolist() == right.ids.tolist()
    assert left.hashes.tolist() == right.hashes.tolist()
    np.testing.assert_array_equal(left.get(left.ids), right.get(right.ids))
    left.verify()


# ----------------------------------------------------------------------------- without Ray


@pytest.fixture
def no_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    """``import ray`` fails, as where the ``dist`` extra is not installed."""
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.setitem(sys.modules, "ray.data", None)


@pytest.mark.usefixtures("no_ray")
def test_without_ray_every_entry_point_names_the_extra(tmp_path: Path) -> None:
    with pytest.raises(MissingDependencyError, match=r"pip install 'hybrid_rec\[dist\]'"):
        require_ray()
    with pytest.raises(MissingDependencyError, match=r"hybrid_rec\[dist\]"):
        ray_embed(["a text"], "hashing")
    items, _ = _catalogue_versions()
    with pytest.raises(MissingDependencyError, match=r"hybrid_rec\[dist\]"):
        ray_reembed_catalog(items, tmp_path / "store", config=STORE_CFG)
    assert issubclass(MissingDependencyError, ImportError)


@pytest.mark.usefixtures("no_ray")
def test_without_ray_scoring_names_the_extra(tmp_path: Path) -> None:
    ds = synthetic(n_users=30, n_items=40, n_clusters=2, interactions_per_user=8, seed=1)
    cfg = _small_config()
    cfg.model.epochs = 1
    HybridRecommender(cfg).fit(ds.interactions, ds.items, show_progress=False).save(tmp_path / "m")
    new = synthetic_new_items(3, cluster=0, seed=2, start_id=5_000)
    with pytest.raises(MissingDependencyError, match=r"hybrid_rec\[dist\]"):
        ray_score_cold_items(tmp_path / "m", new, k=5)


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "reembed_script", ROOT / "scripts/reembed_catalog.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.usefixtures("no_ray")
def test_without_ray_the_script_says_what_to_install(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    items, _ = _catalogue_versions()
    items.to_parquet(tmp_path / "items.parquet", index=False)
    argv = [str(tmp_path / "items.parquet"), "--store", str(tmp_path / "s"), "--encoder", "hashing"]
    assert _script().main([*argv, "--backend", "ray", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pip install 'hybrid_rec[dist]'" in err
    assert "Traceback" not in err


@pytest.mark.usefixtures("no_ray")
def test_without_ray_the_cli_embed_command_says_what_to_install(tmp_path: Path) -> None:
    items, _ = _catalogue_versions()
    items.to_parquet(tmp_path / "items.parquet", index=False)
    args = ["embed", str(tmp_path / "items.parquet"), "--store", str(tmp_path / "s")]
    result = CliRunner().invoke(app, [*args, "--encoder", "hashing", "--backend", "ray"])
    assert isinstance(result.exception, MissingDependencyError)
    assert "pip install 'hybrid_rec[dist]'" in str(result.exception)


def test_ray_only_flags_are_refused_with_the_local_backend(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _script().main(["items.csv", "--store", str(tmp_path / "s"), "--workers", "2"])
    assert exit_info.value.code == 2
    result = CliRunner().invoke(app, ["embed", "items.csv", "--store", "s", "--workers", "2"])
    assert result.exit_code == 2
    assert "--workers applies to --backend ray only" in result.output


def test_backend_options_are_checked() -> None:
    for bad in ({"num_workers": 0}, {"num_cpus": -1}, {"rows_per_batch": 1.5}):
        with pytest.raises(ConfigError):
            BackendOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        BackendOptions(cpus_per_worker=0)


def test_blocks_cover_the_input_in_order() -> None:
    frame = pd.DataFrame({"x": np.arange(1001)})
    blocks = _split(frame, workers=2, rows_per_batch=None, cap=2048)
    assert len(blocks) == 8  # 4 blocks per worker keep the pool busy
    assert pd.concat(blocks)["x"].tolist() == list(range(1001))
    assert max(len(b) for b in _split(frame, 2, None, cap=100)) == 100
    assert [len(b) for b in _split(frame, 2, 600, cap=100)] == [600, 401]


def test_blocks_are_rounded_to_whole_encoder_batches_and_sorted_by_length() -> None:
    frame = pd.DataFrame({"x": np.arange(1682)})
    assert [len(b) for b in _split(frame, 1, None, cap=2048, multiple=64)] == [448] * 3 + [338]
    assert _by_length(["ab", "abcd", "", "abcd"]).tolist() == [1, 3, 0, 2]


def test_the_hybrid_rec_error_is_found_behind_ray_wrappers() -> None:
    inner = EncoderError("unknown encoder 'x'")

    class TaskError(Exception):
        def __init__(self, cause: BaseException) -> None:
            super().__init__("ray traceback ...")
            self.cause = cause

    try:
        try:
            raise TaskError(inner)
        except TaskError as exc:
            raise RuntimeError("the dataset failed") from exc
    except RuntimeError as outer:
        assert _unwrap(outer) is inner
    assert _unwrap(RuntimeError("no cause")) is None


def test_precomputed_vectors_are_served_by_text_and_the_rest_encoded_locally() -> None:
    local = HashingEncoder(16)
    pre = _PrecomputedEncoder(local)
    pre.add(["a b", "c"], local.encode(["a b", "c"]))
    out = pre.encode(["c", "new text", "a b"])
    np.testing.assert_array_equal(out, local.encode(["c", "new text", "a b"]))
    assert pre.fallbacks == 1
    assert (pre.name, pre.dim) == (local.name, local.dim)
