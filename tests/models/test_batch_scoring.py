"""Batch scoring through HybridRecommender: new items -> users and users -> items, to Parquet."""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hybrid_rec import HybridRecommender
from hybrid_rec.batch import partial_dir
from hybrid_rec.cli import app
from hybrid_rec.content import HashingEncoder, item_texts
from hybrid_rec.content.store import EmbeddingStore
from hybrid_rec.data.datasets import Dataset, synthetic_new_items
from hybrid_rec.errors import (
    BatchOutputError,
    DataValidationError,
    EmbeddingStoreError,
    UnknownIdError,
)
from hybrid_rec.index import VectorIndex

# A child process that scores slowly (0.1 s per chunk) so that it can be killed mid-run.
SLOW_CHILD = """
import sys, time
from hybrid_rec import HybridRecommender
from hybrid_rec.content import HashingEncoder

class SlowHashing(HashingEncoder):
    def encode(self, texts, **kw):
        time.sleep(0.1)
        return super().encode(texts, **kw)

rec = HybridRecommender.load(sys.argv[1], encoder=SlowHashing(256))
rec.score_cold_items(sys.argv[2], k=5, chunk_size=4, output=sys.argv[3], on_existing="error")
"""


@pytest.fixture(scope="module")
def model_dir(fitted: HybridRecommender, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fitted.save(tmp_path_factory.mktemp("batch") / "model")


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> HybridRecommender:
    return HybridRecommender.load(model_dir, encoder=HashingEncoder(256))


def test_parquet_output_equals_the_returned_frame(
    fitted: HybridRecommender, tmp_path: Path
) -> None:
    new = synthetic_new_items(9, cluster=3, seed=5, start_id=40_000)
    frame = fitted.score_cold_items(new, k=7, chunk_size=4)
    report = fitted.score_cold_items(new, k=7, chunk_size=4, output=tmp_path / "s.parquet")
    assert report.rows == len(frame) == 63 and report.chunks == 3 and report.skipped == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), frame)
    csv = tmp_path / "new.csv"
    new.to_csv(csv, index=False)  # a file is read a chunk at a time, same answer
    pd.testing.assert_frame_equal(fitted.score_cold_items(csv, k=7, chunk_size=4), frame)


def test_sigkill_mid_run_then_resume_gives_the_same_parquet(
    loaded: HybridRecommender, model_dir: Path, tmp_path: Path
) -> None:
    items = tmp_path / "new.csv"
    synthetic_new_items(40, cluster=1, seed=2, start_id=50_000).to_csv(items, index=False)
    out = tmp_path / "scores.parquet"
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_CHILD, str(model_dir), str(items), str(out)],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    try:
        while len(list(partial_dir(out).glob("chunk-*.parquet"))) < 3:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the child wrote no chunks"
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
        if child.stderr:
            child.stderr.close()
    done = len(list(partial_dir(out).glob("chunk-*.parquet")))
    assert not out.exists() and 3 <= done < 10
    report = loaded.score_cold_items(items, k=5, chunk_size=4, output=out, on_existing="error")
    assert report.resumed == done and report.chunks == 10
    assert not partial_dir(out).exists()
    reference = loaded.score_cold_items(items, k=5, chunk_size=4, output=tmp_path / "ref.parquet")
    assert reference.resumed == 0
    assert out.read_bytes() == (tmp_path / "ref.parquet").read_bytes()


def test_existing_output_and_mismatched_partial_run(
    fitted: HybridRecommender, tmp_path: Path
) -> None:
    new = synthetic_new_items(6, cluster=0, seed=1, start_id=60_000)
    out = tmp_path / "s.parquet"
    fitted.score_cold_items(new, k=3, output=out)
    with pytest.raises(BatchOutputError, match="already exists"):
        fitted.score_cold_items(new, k=3, output=out)
    assert fitted.score_cold_items(new, k=4, output=out, overwrite=True).rows == 24
    stale = partial_dir(tmp_path / "t.parquet")
    stale.mkdir()
    (stale / "state.json").write_text(json.dumps({"format": 1, "params": {"k": 9}}))
    with pytest.raises(BatchOutputError, match=r"unfinished run.*k: 9 -> 3"):
        fitted.score_cold_items(new, k=3, output=tmp_path / "t.parquet")


def test_ids_already_in_the_model_error_or_skip(
    fitted: HybridRecommender, clustered: Dataset, tmp_path: Path
) -> None:
    new = synthetic_new_items(4, cluster=2, seed=3, start_id=70_000)
    mixed = pd.concat([new.iloc[:2], clustered.items.iloc[[5, 9]], new.iloc[2:]])
    with pytest.raises(DataValidationError, match=r"2 item\(s\) are already in the model") as err:
        fitted.score_cold_items(mixed, k=5, on_existing="error")
    assert err.value.rows == [2, 3] and "on_existing='skip'" in str(err.value)
    report = fitted.score_cold_items(
        mixed, k=5, chunk_size=2, output=tmp_path / "s.parquet", on_existing="skip"
    )
    assert report.skipped == 2
    written = pd.read_parquet(tmp_path / "s.parquet")
    assert set(written["item_id"]) == set(new["item_id"])  # the all-skipped chunk wrote nothing
    pd.testing.assert_frame_equal(written, fitted.score_cold_items(new, k=5))
    assert len(fitted.score_cold_items(mixed, k=5)) == 30  # "score" (default) scores them all
    with pytest.raises(DataValidationError, match="duplicate"):
        fitted.score_cold_items(pd.concat([new, new.iloc[:1]]), k=5)


def test_empty_text_error_names_the_row_of_the_input(fitted: HybridRecommender) -> None:
    new = synthetic_new_items(7, cluster=2, seed=3, start_id=80_000)
    new.loc[5, ["title", "description", "category"]] = ""
    new["price"] = np.nan
    with pytest.raises(DataValidationError, match=r"row\(s\) 5\b"):
        fitted.score_cold_items(new, k=5, chunk_size=3)


def test_memory_grows_sublinearly_with_the_number_of_items(
    fitted: HybridRecommender, tmp_path: Path
) -> None:
    """8x the items: results go to disk chunk by chunk, only ids and hashes stay (tens of
    bytes per item), so the traced peak grows far less than 8x."""
    fitted.user_vectors()  # cached model state is not part of the job

    def peak(n: int) -> int:
        items = tmp_path / f"{n}.csv"
        synthetic_new_items(n, cluster=1, seed=n, start_id=90_000).to_csv(items, index=False)
        tracemalloc.start()
        fitted.score_cold_items(items, k=10, chunk_size=20, output=tmp_path / f"{n}.parquet")
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    small, large = peak(40), peak(320)
    assert large < 1.3 * small, (small, large)


def test_recommend_batch_equals_recommend(
    fitted: HybridRecommender, clustered: Dataset, tmp_path: Path
) -> None:
    users = list(clustered.info["user_cluster"])[:23]
    expected = fitted.recommend(users, k=6)
    pd.testing.assert_frame_equal(fitted.recommend_batch(users, 6, chunk_size=5), expected)
    report = fitted.recommend_batch(users, 6, chunk_size=5, output=tmp_path / "r.parquet")
    assert report.chunks == 5 and report.rows == 23 * 6
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), expected)
    everyone = fitted.recommend_batch(k=2, chunk_size=100)
    assert everyone["user_id"].nunique() == len(fitted.user_ids_)
    with pytest.raises(UnknownIdError, match=r"1 unknown user\(s\), e\.g\. 'nobody'\. Pass"):
        fitted.recommend_batch([*users, "nobody"], 3)
    skipped = fitted.recommend_batch(
        [*users, "nobody"], 3, unknown_users="skip", output=tmp_path / "s.parquet"
    )
    assert skipped.skipped == 1 and skipped.rows == 23 * 3


def test_recommend_batch_reads_the_filters_once_not_per_chunk(
    fitted: HybridRecommender, clustered: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybrid_rec.recommender as module

    users = list(clustered.info["user_cluster"])[:23]
    category = str(fitted.items_["category"].iloc[0])
    filters = {"category": category}
    expected = fitted.recommend(users, k=4, filters=filters)
    assert set(fitted.items_.set_index("item_id").loc[expected["item_id"], "category"]) == {
        category
    }
    calls = []
    real = module.filter_mask
    monkeypatch.setattr(module, "filter_mask", lambda *a: calls.append(1) or real(*a))
    got = fitted.recommend_batch(users, 4, chunk_size=5, filters=filters)
    pd.testing.assert_frame_equal(got, expected)
    assert len(calls) == 1  # five chunks, one evaluation of the filters


def test_recommend_batch_warns_once_not_per_chunk(
    fitted: HybridRecommender, clustered: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    users = list(clustered.info["user_cluster"])[:23]
    fitted._noted.clear()  # a shared model: other tests may have met these cases first
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        empty = fitted.recommend_batch(users, 3, chunk_size=5, filters={"title": "no such"})
    assert empty.empty and caplog.text.count("no item passes") == 1
    caplog.clear()
    n = len(fitted.item_ids_)
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        full = fitted.recommend_batch(users, n + 5, chunk_size=5)
    assert caplog.text.count(f"k={n + 5} is larger") == 1
    assert full.groupby("user_id").size().max() <= n
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hybrid_rec.recommender"):
        fitted.recommend(users[:1], n + 5)  # the flag does not outlive the batch
    said = [r for r in caplog.records if f"k={n + 5} is larger" in r.getMessage()]
    assert [r.levelno for r in said] == [logging.DEBUG]  # warned already: once is enough
    caplog.clear()
    n_users = len(fitted.user_ids_)
    with caplog.at_level(logging.WARNING, logger="hybrid_rec.recommender"):
        fitted.score_cold_items(synthetic_new_items(2, cluster=0, seed=8), k=n_users + 1)
    assert f"larger than the {n_users} users; at most {n_users} per item" in caplog.text


def test_index_recall_is_saved_for_approximate_indexes_only(
    fresh: Callable[[], HybridRecommender], tmp_path: Path
) -> None:
    rec = fresh()
    assert not (rec.save(tmp_path / "exact") / "index_recall.json").exists()
    vectors = rec.index_.vectors
    rec.index_ = VectorIndex(vectors.shape[1], rec.config.index, "HNSW16,Flat").build(vectors)
    saved = rec.save(tmp_path / "hnsw")
    recall = json.loads((saved / "index_recall.json").read_text())
    assert recall["index"] == "HNSW16,Flat" and recall["k"] == rec.config.eval.k
    assert recall["queries"] == len(rec.user_ids_) and recall["recall_at_k"] >= 0.95
    HybridRecommender.load(saved, encoder=HashingEncoder(256))  # listed in the manifest


def test_cli_score_cold_and_recommend_batch(
    fresh: Callable[[], HybridRecommender], clustered: Dataset, tmp_path: Path
) -> None:
    rec = fresh()
    rec.config.content.encoder, rec.config.content.hashing_dim = "hashing", 256
    model = rec.save(tmp_path / "m")
    new = synthetic_new_items(5, cluster=0, seed=4, start_id=95_000)
    items = tmp_path / "new.jsonl"
    pd.concat([new, clustered.items.iloc[:1]]).to_json(items, orient="records", lines=True)
    out = tmp_path / "out.parquet"
    args = ["score-cold", str(items), "-m", str(model), "--out", str(out), "--k", "4"]
    runner = CliRunner()
    result = runner.invoke(app, args)
    assert isinstance(result.exception, DataValidationError)  # an existing id: error by default
    result = runner.invoke(app, [*args, "--on-existing", "skip", "--chunk-size", "2"])
    assert result.exit_code == 0, result.output
    assert (
        "wrote 20 (item, user) rows" in result.output and "1 input row(s) skipped" in result.output
    )
    result = runner.invoke(app, [*args, "--on-existing", "skip"])
    assert isinstance(result.exception, BatchOutputError)
    # a nightly re-embed into a store, then scoring that reads the vectors from it
    vectors = tmp_path / "vectors"
    result = runner.invoke(
        app, ["embed", str(items), "--store", str(vectors), "--encoder", "hashing"]
    )
    assert result.exit_code == 0, result.output
    stored = [*args[:5], str(tmp_path / "out2.parquet"), "--k", "4", "--on-existing", "skip"]
    result = runner.invoke(app, [*stored, "--store", str(vectors)])
    assert result.exit_code == 0, result.output
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "out2.parquet"), pd.read_parquet(out))
    result = runner.invoke(app, [*stored, "--store", str(vectors), "--backend", "ray"])
    assert result.exit_code == 2 and "--store applies to --backend local only" in result.output
    recs = tmp_path / "recs.csv"
    result = runner.invoke(
        app, ["recommend-batch", "-m", str(model), "--out", str(recs), "-k", "2"]
    )
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(recs)) == 2 * len(rec.user_ids_)
    result = runner.invoke(app, ["recommend-batch", "-m", str(model), "--out", str(recs)])
    assert isinstance(result.exception, BatchOutputError)


class CountingHashing(HashingEncoder):
    """Hashing that counts the texts it is asked to encode."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim)
        self.encoded = 0

    def encode(self, texts: Any, **kw: Any) -> np.ndarray:
        self.encoded += len(texts)
        return super().encode(texts, **kw)


def test_a_store_spares_the_encoder_and_gives_the_same_scores(
    model_dir: Path, tmp_path: Path
) -> None:
    counting = CountingHashing(256)
    rec = HybridRecommender.load(model_dir, encoder=counting)
    new = synthetic_new_items(40, cluster=1, seed=8, start_id=70_000)
    plain = rec.score_cold_items(new, k=6, chunk_size=16)
    assert counting.encoded == 40
    store = EmbeddingStore.for_encoder(tmp_path / "vectors", counting)
    store.sync(item_texts(new.iloc[:30], rec.config.content), counting)
    changed = new.copy()
    changed.loc[3, "description"] = "A different text written after the nightly embedding."
    counting.encoded = 0
    report = rec.score_cold_items(
        changed, k=6, chunk_size=16, store=tmp_path / "vectors", output=tmp_path / "s.parquet"
    )
    # 10 items the store lacks and 1 whose text changed since it was embedded
    assert counting.encoded == 11 and report.rows == 240
    want = rec.score_cold_items(changed, k=6, chunk_size=16)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "s.parquet"), want)
    unchanged = want["item_id"] != "i70003"
    pd.testing.assert_frame_equal(
        want[unchanged].reset_index(drop=True), plain[unchanged].reset_index(drop=True)
    )
    # a store written by another encoder is refused before any work
    other = EmbeddingStore.for_encoder(tmp_path / "other", HashingEncoder(64))
    with pytest.raises(EmbeddingStoreError, match="hashing-v1-d64"):
        rec.score_cold_items(new, k=6, store=other)


def test_a_refit_with_a_store_encodes_only_the_changed_items(
    clustered: Dataset, small_config: Callable[..., Any], tmp_path: Path
) -> None:
    counting = CountingHashing(256)
    items = clustered.items.copy()
    store = EmbeddingStore.for_encoder(tmp_path / "vectors", counting)
    store.sync(item_texts(items, small_config(1).content), counting)
    items.loc[5, "description"] = "A text changed after the nightly embedding."
    counting.encoded = 0
    fit = HybridRecommender(small_config(1), encoder=counting).fit
    with_store = fit(clustered.interactions, items, store=tmp_path / "vectors")
    assert counting.encoded == 1  # the one changed text, not the 300 items
    plain = HybridRecommender(small_config(1), encoder=HashingEncoder(256))
    plain.fit(clustered.interactions, items, show_progress=False)
    np.testing.assert_allclose(with_store.content_, plain.content_, atol=1e-6)
    with pytest.raises(EmbeddingStoreError, match="hashing-v1-d256"):
        HybridRecommender(small_config(1), encoder=HashingEncoder(64)).fit(
            clustered.interactions, items, store=tmp_path / "vectors"
        )


def test_fit_on_the_command_line_reads_the_store(clustered: Dataset, tmp_path: Path) -> None:
    clustered.items.to_csv(tmp_path / "items.csv", index=False)
    clustered.interactions.to_csv(tmp_path / "log.csv", index=False)
    common = ["--encoder", "hashing", "--store", str(tmp_path / "s")]
    runner = CliRunner()
    embedded = runner.invoke(app, ["embed", str(tmp_path / "items.csv"), *common])
    assert embedded.exit_code == 0, embedded.output
    files = [str(tmp_path / "log.csv"), str(tmp_path / "items.csv")]
    fitted = runner.invoke(
        app, ["fit", *files, "--model-dir", str(tmp_path / "m"), "--epochs", "1", *common]
    )
    assert fitted.exit_code == 0, fitted.output
    other = runner.invoke(
        app,
        [
            "fit",
            *files,
            "--model-dir",
            str(tmp_path / "m2"),
            "--epochs",
            "1",
            "--store",
            str(tmp_path / "s"),
        ],
    )  # the default encoder
    assert isinstance(other.exception, EmbeddingStoreError)  # `main` prints it, exit 2
    assert "cannot be mixed" in str(other.exception)


def test_fit_on_a_terminal_draws_its_bars_without_verbose(
    clustered: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hybrid_rec.content.encoders as encoders

    clustered.items.to_csv(tmp_path / "items.csv", index=False)
    clustered.interactions.to_csv(tmp_path / "log.csv", index=False)
    files = [str(tmp_path / "log.csv"), str(tmp_path / "items.csv")]
    args = ["fit", *files, "--encoder", "hashing", "--epochs", "1", "--model-dir"]
    monkeypatch.setattr(encoders, "watched", lambda: True)  # stderr is a terminal
    shown = CliRunner().invoke(app, [*args, str(tmp_path / "m")])
    assert shown.exit_code == 0, shown.output
    assert "hashing: 100%" in shown.output and "training: 100%" in shown.output
    monkeypatch.setattr(encoders, "watched", lambda: False)  # a nightly job's log file
    logged = CliRunner().invoke(app, [*args, str(tmp_path / "m2")])
    assert logged.exit_code == 0 and "training" not in logged.output


def test_a_store_holding_every_new_item_spares_building_the_encoder(
    model_dir: Path, tmp_path: Path
) -> None:
    rec = HybridRecommender.load(model_dir, encoder=HashingEncoder(256))
    new = synthetic_new_items(12, cluster=2, seed=9, start_id=80_000)
    store = EmbeddingStore.for_encoder(tmp_path / "vectors", rec.encoder)
    store.sync(item_texts(new, rec.config.content), rec.encoder)
    want = rec.score_cold_items(new, k=5)
    fresh = HybridRecommender.load(model_dir)  # the encoder comes from the config, lazily
    got = fresh.score_cold_items(new, k=5, store=tmp_path / "vectors")
    assert fresh._encoder is None  # never built: every vector came from the store
    pd.testing.assert_frame_equal(got, want)
    fresh.add_items(new, store=tmp_path / "vectors")
    assert fresh._encoder is None and len(fresh.similar_items(new["item_id"].iloc[0], k=3)) == 3
