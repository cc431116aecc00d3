"""The benchmark module behind scripts/evaluate.py and hybrid-rec evaluate: repeated fits."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hybrid_rec.evaluation import benchmark

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "evaluate.py"


def _run(recall: float, ndcg: float | None, fit_s: float, decile: float) -> dict:
    setting = {
        "recall@20": recall,
        "ndcg@20": ndcg,
        "n_users": 10,
        "coverage": recall / 2,
        "long_tail_share": 0.1,
        "recall_by_decile": {"d1": decile, "cold": None},
    }
    return {"cold": setting, "warm": dict(setting), "all": dict(setting), "fit_s": fit_s}


def test_combine_runs_means_and_sample_sd() -> None:
    runs = [_run(0.2, 0.1, 10.0, 0.3), _run(0.4, None, 20.0, 0.5), _run(0.3, 0.2, 30.0, 0.4)]
    out = benchmark.combine_runs(runs, [42, 43, 44])
    assert out["repeats"] == 3
    assert out["cold"]["recall@20"] == pytest.approx(0.3)
    assert out["cold"]["coverage"] == pytest.approx(0.15)
    assert out["fit_s"] == pytest.approx(20.0)
    assert out["cold"]["n_users"] == 10 and isinstance(out["cold"]["n_users"], int)
    assert out["all"]["recall_by_decile"] == {"d1": pytest.approx(0.4), "cold": None}
    # a metric missing from any run has no mean and no sd
    assert out["warm"]["ndcg@20"] is None
    assert out["sd"]["warm"]["ndcg@20"] is None
    assert out["sd"]["cold"]["recall@20"] == pytest.approx(np.std([0.2, 0.4, 0.3], ddof=1))
    assert [r["model_seed"] for r in out["runs"]] == [42, 43, 44]
    assert out["runs"][1]["all"]["recall@20"] == 0.4
    # one run is passed through untouched
    single = _run(0.2, 0.1, 10.0, 0.3)
    assert benchmark.combine_runs([single], [42]) is single


def test_table_cells_show_sd_only_for_repeated_methods() -> None:
    repeated = benchmark.combine_runs([_run(0.2, 0.1, 1.0, 0.3), _run(0.4, 0.3, 1.0, 0.3)], [1, 2])
    once = _run(0.25, 0.125, 1.0, 0.3)
    lines = benchmark.results_table({"a": repeated, "b": once}, 20)
    assert "| a | 0.300 ± 0.141 | 0.200 ± 0.141 |" in lines[2]
    assert lines[3].startswith("| b | 0.2500 | 0.1250 |")


def test_methods_scored_on_fewer_users_are_named() -> None:
    full, short = _run(0.3, 0.2, 1.0, 0.3), _run(0.5, 0.4, 1.0, 0.3)
    short["cold"] = {**short["cold"], "n_users": 7}
    methods = {"hybrid": full, "knn": short}
    gap = benchmark.fewer_users(methods)
    assert gap.endswith("knn cold 7 of 10.") and "hybrid" not in gap
    assert benchmark.fewer_users({"hybrid": full, "b": _run(0.1, 0.1, 1.0, 0.3)}) == ""
    assert gap in benchmark.format_table("x", methods, 20)
    entry = {
        "meta": {
            "k": 20,
            "split": {"seed": 42, "n_warm_items": 8, "n_cold_items": 2},
            "encoder": "hashing",
            "long_tail_max": 5,
            "date": "2026-12-06",
        },
        "methods": methods,
    }
    assert gap in benchmark.results_section("x", entry)


def test_figures_the_tie_break_chose_are_marked_and_explained() -> None:
    """Popularity's cold row was the seeded order of equally scored items, shown as
    if it were the method's (a reviewer read "popularity predicts new releases")."""
    tied, ranked = _run(0.12, 0.04, 0.0, 0.3), _run(0.16, 0.09, 1.0, 0.3)
    tied["cold"] = {**tied["cold"], "tie_cut_share": 1.0}
    tied["warm"] = {**tied["warm"], "tie_cut_share": 0.05}  # a count tie at the 20th place
    methods = {"popularity": tied, "content-knn": ranked}
    table = benchmark.format_table("x", methods, 20)
    assert "0.040†" in table and table.count("†") == 2  # the cell and the note
    assert table.splitlines()[-1].startswith("† popularity cold: most places")
    lines = benchmark.results_table(methods, 20)
    assert "| popularity | 0.1200† | 0.0400† | 0.1200 |" in lines[2]
    assert benchmark.tie_note({"content-knn": ranked}) == ""


def test_repeats_on_the_command_line(tmp_path: Path) -> None:
    cmd = [sys.executable, str(SCRIPT), "--dataset", "synthetic", "--encoder", "hashing"]
    cmd += ["--methods", "random", "popularity", "--repeats", "2", "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    methods = json.loads((tmp_path / "quality.json").read_text())["synthetic+hashing"]["methods"]
    assert methods["random"]["repeats"] == 2
    seeds = [r["model_seed"] for r in methods["random"]["runs"]]
    assert seeds == [42, 43]
    # two seeds of random scores differ, so the spread is real
    assert methods["random"]["sd"]["all"]["recall@20"] > 0
    runs = [r["all"]["recall@20"] for r in methods["random"]["runs"]]
    assert methods["random"]["all"]["recall@20"] == pytest.approx(np.mean(runs))
    # popularity ignores the seed: fitted once, no spread reported
    assert "repeats" not in methods["popularity"] and "sd" not in methods["popularity"]
    md = (tmp_path / "RESULTS.md").read_text()
    random_row = next(line for line in md.splitlines() if line.startswith("| random |"))
    popularity_row = next(line for line in md.splitlines() if line.startswith("| popularity |"))
    assert "±" in random_row and "±" not in popularity_row
    assert "fitted 2 times" in md

    bad = subprocess.run([*cmd[:-4], "--repeats", "0"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "--repeats must be at least 1" in bad.stderr


def test_select_methods() -> None:
    known = list(benchmark.build_methods())
    assert benchmark.select_methods(None) == known
    assert benchmark.select_methods(["all"]) == known
    assert benchmark.select_methods(["hybrid, popularity", "lightfm"]) == [
        "hybrid",
        "popularity",
        "lightfm",
    ]
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['magic'\]"):
        benchmark.select_methods(["popularity,magic"])
    with pytest.raises(ValueError, match="no method given"):
        benchmark.select_methods([" , "])


def test_every_content_method_sees_the_attribute_features_the_hybrid_appends() -> None:
    """A fair table: the baselines get the same attribute part the hybrid adds itself."""
    import pandas as pd

    from hybrid_rec.config import SplitConfig
    from hybrid_rec.data.datasets import synthetic
    from hybrid_rec.data.splits import cold_start_split
    from hybrid_rec.evaluation.protocol import ColdStartEvaluator

    data = synthetic(n_users=80, n_items=60, n_clusters=3, interactions_per_user=10, seed=2)
    items = data.items.reset_index(drop=True)
    content = np.random.default_rng(0).normal(size=(len(items), 16)).astype(np.float32)
    augmented = benchmark.with_attributes(content, items, None)
    assert augmented is not None and augmented.shape[0] == len(items)
    assert augmented.shape[1] > 16 and np.array_equal(augmented[:, :16], content)
    assert benchmark.with_attributes(None, items, None) is None

    seen: dict[str, np.ndarray | None] = {}

    class Recorder:
        def fit(self, train: pd.DataFrame, items: pd.DataFrame, content: np.ndarray | None):
            seen["content"] = content
            return self

        def score(self, users, item_ids):  # type: ignore[no-untyped-def]
            return np.zeros((len(users), len(item_ids)))

    split = cold_start_split(data.interactions, SplitConfig(seed=1))
    ctx = benchmark.BenchContext(split, items, content, baseline_content=augmented)
    spec = benchmark.MethodSpec("recorder", lambda ctx: Recorder())
    benchmark.run_method(spec, ctx, ColdStartEvaluator(split, k=5, stage="test"))
    assert seen["content"] is augmented


def test_results_of_another_encoder_or_k_are_replaced_not_mixed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "quality.json"
    meta = {"split": {"seed": 42}, "encoder": "minilm", "k": 20, "long_tail_max": 5}
    benchmark.merge_quality(path, "ds", meta, {"content-knn": {"x": 1}}, ["content-knn", "hybrid"])
    same = benchmark.merge_quality(
        path, "ds", meta, {"hybrid": {"x": 2}}, ["content-knn", "hybrid"]
    )
    assert list(same["methods"]) == ["content-knn", "hybrid"]
    for field, value in (("encoder", "hashing"), ("k", 10), ("long_tail_max", 10)):
        other = {**meta, field: value}
        with caplog.at_level("WARNING"):
            out = benchmark.merge_quality(path, "ds", other, {"hybrid": {"x": 3}}, ["hybrid"])
        assert list(out["methods"]) == ["hybrid"] and "replaced, not mixed" in caplog.text
        caplog.clear()
        benchmark.merge_quality(path, "ds", meta, {"content-knn": {"x": 1}}, ["content-knn"])


def test_the_hybrid_is_tuned_for_the_k_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    """scripts/evaluate.py --k 10 tuned the hybrid's early stopping and offsets for k=20."""
    from hybrid_rec.data.datasets import synthetic
    from hybrid_rec.evaluation.baselines import Popularity

    seen: list[object] = []

    def spy(ctx: benchmark.BenchContext) -> Popularity:
        seen.append(ctx.config)
        return Popularity()

    spec = benchmark.MethodSpec("hybrid", spy, deterministic=True)
    monkeypatch.setattr(benchmark, "build_methods", lambda: {"hybrid": spec})
    data = synthetic(n_users=40, n_items=60, n_clusters=3, interactions_per_user=10, seed=1)
    content = np.eye(60, 8, dtype=np.float32)
    benchmark.run_benchmark(
        data.interactions,
        data.items,
        content,
        key="s",
        dataset="s",
        encoder="x",
        methods=["hybrid"],
        k=10,
        long_tail_max=3,
    )
    assert seen[0].eval.k == 10 and seen[0].eval.long_tail_max_interactions == 3


def test_several_splits_paired_on_the_command_line(tmp_path: Path) -> None:
    """scripts/evaluate_splits.py: one split per seed, mean ± sd over them, and the
    hybrid's differences to each baseline taken split by split."""
    script = ROOT / "scripts" / "evaluate_splits.py"
    cmd = [sys.executable, str(script), "--dataset", "synthetic", "--encoder", "hashing"]
    cmd += ["--methods", "random", "popularity", "content-knn", "--seeds", "3", "4"]
    done = subprocess.run([*cmd, "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads((tmp_path / "quality_splits.json").read_text())["synthetic+hashing-splits"]
    assert data["splits"]["3"]["n_cold_items"] > 0 and data["splits"]["3"] != data["splits"]["4"]
    per = [data["results"][s]["content-knn"]["all"]["recall@20"] for s in ("3", "4")]
    mean, sd = data["summary"]["methods"]["content-knn"]["all"]["recall"]
    assert mean == pytest.approx(np.mean(per)) and sd == pytest.approx(np.std(per, ddof=1))
    assert data["summary"]["paired"] == {}  # no hybrid among the methods: nothing to pair
    assert (
        "<!-- quality:synthetic+hashing-splits:start -->" in (tmp_path / "RESULTS.md").read_text()
    )
    bad = subprocess.run([*cmd[:-2], "3", "3"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "repeats a seed" in bad.stderr

    # a run of one more method on the same splits keeps the others' figures beside it
    one = [*cmd[:6], "--methods", "ease", "--seeds", "3", "4", "--out", str(tmp_path)]
    done = subprocess.run(one, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    after = json.loads((tmp_path / "quality_splits.json").read_text())["synthetic+hashing-splits"]
    assert set(after["results"]["3"]) == {"random", "popularity", "content-knn", "ease"}
    assert after["results"]["4"]["content-knn"] == data["results"]["4"]["content-knn"]
    table = (tmp_path / "RESULTS.md").read_text()
    rows = [table.index(f"| {m} | ") for m in ("random", "popularity", "content-knn", "ease")]
    assert rows == sorted(rows)  # the registry's order, the new method in its place
    # another k: nothing is kept, figures of different settings are never mixed
    done = subprocess.run([*one, "--k", "10"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    at_10 = json.loads((tmp_path / "quality_splits.json").read_text())["synthetic+hashing-splits"]
    assert set(at_10["results"]["3"]) == {"ease"}
    # other seeds are refused before any fit (they would drop the stored splits) ...
    other = [*one[:-4], "5", "4", "--out", str(tmp_path)]
    refused = subprocess.run(other, capture_output=True, text=True, cwd=ROOT)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
    # ... unless asked: then nothing of the old splits is kept
    done = subprocess.run([*other, "--overwrite"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    last = json.loads((tmp_path / "quality_splits.json").read_text())["synthetic+hashing-splits"]
    assert set(last["results"]) == {"5", "4"}
    assert set(last["results"]["4"]) == {"ease"}


def test_paired_differences_and_the_cold_ratio() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "evaluate_splits", ROOT / "scripts" / "evaluate_splits.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    per_split = {
        1: {
            "hybrid": _run(0.5, 0.3, 1, 0),
            "lightfm": _run(0.4, 0.3, 1, 0),
            "popularity": _run(0.9, 0.1, 1, 0),
            "hybrid-no-item-item": _run(0.95, 0.1, 1, 0),
        },
        2: {
            "hybrid": _run(0.3, 0.3, 1, 0),
            "lightfm": _run(0.5, 0.3, 1, 0),
            "popularity": _run(0.9, 0.1, 1, 0),
            "hybrid-no-item-item": _run(0.95, 0.1, 1, 0),
        },
    }
    out = mod.summarise(per_split, 20)
    paired = out["paired"]["lightfm"]["all"]
    assert paired["mean"] == pytest.approx(-0.05) and paired["ahead"] == 1
    assert paired["sd"] == pytest.approx(np.std([0.1, -0.2], ddof=1))
    assert "cold" not in out["paired"]["popularity"]  # ties decide its cold lists
    # neither a tie-break's figure nor the hybrid's own ablation is a rival
    assert out["cold_ratio"]["values"] == pytest.approx([0.5 / 0.4, 0.3 / 0.5])
    assert out["paired"]["hybrid-no-item-item"]["cold"]["mean"] == pytest.approx(-0.55)


def test_items_in_neither_setting_are_counted_in_the_header() -> None:
    """1,682 ml-100k items were 1,305 warm + 336 cold: the 41 others went unmentioned."""
    split = {"seed": 1, "n_items": 1682, "n_warm_items": 1305, "n_cold_items": 336}
    assert "41 more item(s) are in neither" in benchmark._unplaced(split)
    assert benchmark._unplaced({**split, "n_items": 1641}) == ""


def test_a_method_past_its_catalogue_limit_is_skipped_not_run(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """EASE's dense items × items matrix would not fit a big catalogue: the benchmark
    names it among the skipped methods and runs the others, before fitting anything."""
    from hybrid_rec.data.datasets import synthetic
    from hybrid_rec.evaluation.baselines import EASE

    data = synthetic(n_users=40, n_items=60, n_clusters=3, interactions_per_user=10, seed=1)
    content = np.eye(60, 8, dtype=np.float32)
    args = (data.interactions, data.items, content)
    kwargs = {"key": "s", "dataset": "s", "encoder": "x", "k": 10}
    run = benchmark.run_benchmark(*args, **kwargs, methods=["ease", "popularity"])
    assert set(run.results) == {"ease", "popularity"} and run.skipped == []
    monkeypatch.setattr(EASE, "MAX_ITEMS", 59)
    with caplog.at_level("WARNING"):
        run = benchmark.run_benchmark(*args, **kwargs, methods=["ease", "cease", "popularity"])
    assert list(run.results) == ["popularity"] and run.skipped == ["ease", "cease"]
    assert "more than its limit of 59" in caplog.text


def test_the_item_item_ablation_differs_from_the_hybrid_in_that_stage_only() -> None:
    """The table's hybrid-no-item-item row is the hybrid with its EASE stage off, all
    else equal (and the cold-ratio rivals leave it out: its cold lists are the hybrid's)."""
    from hybrid_rec.config import SplitConfig
    from hybrid_rec.data.datasets import synthetic
    from hybrid_rec.data.splits import cold_start_split

    data = synthetic(n_users=40, n_items=60, n_clusters=3, interactions_per_user=10, seed=1)
    split = cold_start_split(data.interactions, SplitConfig(seed=1))
    ctx = benchmark.BenchContext(split, data.items, None)
    specs = benchmark.build_methods()
    hybrid = specs["hybrid"].factory(ctx)
    ablation = specs["hybrid-no-item-item"].factory(ctx)
    assert isinstance(hybrid, benchmark.HybridMethod)
    assert isinstance(ablation, benchmark.HybridMethod)
    assert hybrid.config.model.item_item_max_items > 0
    assert ablation.config.model.item_item_max_items == 0
    ablation.config.model.item_item_max_items = hybrid.config.model.item_item_max_items
    assert ablation.config == hybrid.config
