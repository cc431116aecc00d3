"""The cold / warm / all protocol on a tiny hand-made split whose answers are known."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hybrid_rec.config import SplitConfig
from hybrid_rec.data.splits import ColdStartSplit, cold_start_split
from hybrid_rec.errors import UnknownIdError
from hybrid_rec.evaluation.metrics import EvaluationError
from hybrid_rec.evaluation.plots import _bucket_key, plot_recall_by_decile
from hybrid_rec.evaluation.protocol import (
    ColdStartEvaluator,
    Method,
    Scorer,
    evaluate_cold_start,
)


def _frame(pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(pairs, columns=["user_id", "item_id"])


def tiny_split() -> ColdStartSplit:
    """Users u1..u4 (+ u5 who only has a cold test interaction), warm w1..w6.

    Test cold items c1..c3, validation cold items v1, v2.
    """
    return ColdStartSplit(
        train=_frame(
            [
                ("u1", "w1"),
                ("u1", "w2"),
                ("u2", "w2"),
                ("u2", "w3"),
                ("u3", "w4"),
                ("u3", "w5"),
                ("u4", "w1"),
                ("u4", "w6"),
                ("u4", "w2"),
            ]
        ),
        val_warm=_frame([("u1", "w3"), ("u2", "w1")]),
        test_warm=_frame([("u1", "w4"), ("u2", "w5"), ("u3", "w6")]),
        val_cold=_frame([("u1", "v1"), ("u2", "v2")]),
        test_cold=_frame([("u1", "c1"), ("u3", "c2"), ("u4", "c3"), ("u5", "c1")]),
        warm_items=np.array([f"w{i}" for i in range(1, 7)]),
        val_cold_items=np.array(["v1", "v2"]),
        test_cold_items=np.array(["c1", "c2", "c3"]),
    )


class PairScorer:
    """Scores from a table of (user, item) -> value; everything else gets ``default``."""

    def __init__(
        self,
        table: dict[tuple[str, str], float],
        default: float = 0.0,
        known_users: set[str] | None = None,
    ) -> None:
        self.table = table
        self.default = default
        self.known_users = known_users
        self.calls = 0

    def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
        self.calls += 1
        if self.known_users is not None:
            unknown = [u for u in user_ids if u not in self.known_users]
            if unknown:
                raise UnknownIdError(f"unknown users {unknown}")
        return np.array(
            [[self.table.get((u, i), self.default) for i in item_ids] for u in user_ids],
            dtype=np.float32,
        )


def _pairs(*frames: pd.DataFrame) -> set[tuple[str, str]]:
    return {(u, i) for f in frames for u, i in zip(f["user_id"], f["item_id"], strict=True)}


def oracle(split: ColdStartSplit, value: float = 1.0) -> PairScorer:
    return PairScorer({p: value for p in _pairs(split.test_warm, split.test_cold)})


def test_scorer_protocols_are_structural() -> None:
    assert isinstance(oracle(tiny_split()), Scorer)
    assert not isinstance(oracle(tiny_split()), Method)


def test_oracle_gets_full_recall_everywhere() -> None:
    split = tiny_split()
    res = evaluate_cold_start(oracle(split), split, k=1)
    assert set(res) == {"cold", "warm", "all"}
    for name in ("cold", "warm"):
        assert res[name]["recall@1"] == pytest.approx(1.0)
        assert res[name]["ndcg@1"] == pytest.approx(1.0)
    # in "all" u1 has one warm and one cold relevant item, so k=2 is needed for 1.0
    res2 = evaluate_cold_start(oracle(split), split, k=2, which=("all",))
    assert res2["all"]["recall@2"] == pytest.approx(1.0)
    assert res2["all"]["ndcg@2"] == pytest.approx(1.0)


def test_reversed_oracle_gets_zero() -> None:
    split = tiny_split()
    res = evaluate_cold_start(oracle(split, value=-1.0), split, k=1)
    for name in ("cold", "warm", "all"):
        assert res[name]["recall@1"] == pytest.approx(0.0)
        assert res[name]["ndcg@1"] == pytest.approx(0.0)


def test_counts_candidates_and_users() -> None:
    split = tiny_split()
    res = evaluate_cold_start(oracle(split), split, k=1)
    assert res["cold"]["n_candidates"] == 3
    assert res["warm"]["n_candidates"] == 6
    assert res["all"]["n_candidates"] == 9
    assert res["cold"]["n_users"] == 4  # u1, u3, u4 and the new user u5
    assert res["cold"]["n_users_new"] == 1
    assert res["warm"]["n_users"] == 3
    assert res["all"]["n_users"] == 5


def test_train_and_val_positives_are_excluded_at_test() -> None:
    split = tiny_split()
    # train and validation positives outrank the relevant items; relevant beat the rest
    table = {p: 10.0 for p in _pairs(split.train, split.val_warm)}
    table.update({p: 5.0 for p in _pairs(split.test_warm, split.test_cold)})
    res = evaluate_cold_start(PairScorer(table), split, k=1, which=("warm", "all"))
    assert res["warm"]["recall@1"] == pytest.approx(1.0)
    # "all": u1 (w4, c1) and u3 (w6, c2) have two relevant items, so recall@1 is 1/2 for them
    assert res["all"]["recall@1"] == pytest.approx((0.5 + 1 + 0.5 + 1 + 1) / 5)


def test_validation_stage_uses_validation_frames_and_only_excludes_train() -> None:
    split = tiny_split()
    table = {p: 10.0 for p in _pairs(split.train)}
    table.update({p: 5.0 for p in _pairs(split.val_warm, split.val_cold)})
    res = evaluate_cold_start(PairScorer(table), split, k=1, stage="val")
    assert res["cold"]["n_candidates"] == 2
    assert res["cold"]["n_users"] == 2
    assert res["warm"]["n_users"] == 2
    assert res["warm"]["recall@1"] == pytest.approx(1.0)
    assert res["cold"]["recall@1"] == pytest.approx(1.0)
    assert res["all"]["n_candidates"] == 8


def test_new_users_the_scorer_refuses_are_excluded_and_counted() -> None:
    split = tiny_split()
    scorer = oracle(split)
    scorer.known_users = {"u1", "u2", "u3", "u4"}
    res = evaluate_cold_start(scorer, split, k=1, which=("cold",))
    assert res["cold"]["n_users"] == 3
    assert res["cold"]["n_users_new"] == 0
    assert res["cold"]["n_users_unscored"] == 1
    assert res["cold"]["recall@1"] == pytest.approx(1.0)


def test_batching_does_not_change_results() -> None:
    split = tiny_split()
    scorer = PairScorer({(u, i): float(int(i[1]) * 3 % 7) for u, i in _pairs(split.test_warm)}, 1.0)
    a = evaluate_cold_start(scorer, split, k=2, user_batch=1)
    b = evaluate_cold_start(scorer, split, k=2, user_batch=1024)
    assert a == b


def test_all_setting_reports_coverage_tail_and_deciles() -> None:
    split = tiny_split()
    res = evaluate_cold_start(oracle(split), split, k=2, which=("all",))["all"]
    deciles = res["recall_by_decile"]
    assert next(iter(deciles)) == "cold" and len(deciles) == 11
    assert deciles["cold"] == pytest.approx(1.0)
    assert sum(res["relevant_by_decile"].values()) == 3 + 4  # test_warm + test_cold pairs
    assert 0 < res["coverage"] <= 1
    # every warm item has < 5 train interactions here, so every recommendation is long-tail
    assert res["long_tail_share"] == pytest.approx(1.0)
    tail = evaluate_cold_start(oracle(split), split, k=2, which=("all",), long_tail_max=1)
    # long_tail_max=1: only cold items (0 interactions) are long-tail
    assert 0 < tail["all"]["long_tail_share"] < 1


def test_evaluator_is_reusable_and_scores_in_batches() -> None:
    split = tiny_split()
    evaluator = ColdStartEvaluator(split, k=1, user_batch=2, which=("warm",))
    scorer = oracle(split)
    first = evaluator(scorer)
    assert evaluator(scorer) == first
    assert scorer.calls == 2 * 2  # 3 warm users in batches of 2, twice


def test_bad_scorer_output_is_a_clear_error() -> None:
    split = tiny_split()

    class WrongShape:
        def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
            return np.zeros((len(user_ids), len(item_ids) + 1))

    class NaNs:
        def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
            return np.full((len(user_ids), len(item_ids)), np.nan)

    with pytest.raises(EvaluationError, match=r"WrongShape\.score returned shape"):
        evaluate_cold_start(WrongShape(), split)
    with pytest.raises(EvaluationError, match="NaN"):
        evaluate_cold_start(NaNs(), split)


def test_bad_arguments() -> None:
    split = tiny_split()
    with pytest.raises(EvaluationError, match="which"):
        ColdStartEvaluator(split, which=("hot",))  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="stage"):
        ColdStartEvaluator(split, stage="train")  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="k must"):
        ColdStartEvaluator(split, k=0)


def test_scorer_does_not_see_its_array_modified() -> None:
    split = tiny_split()
    cached = np.ones((3, 6), dtype=np.float32)

    class Cached:
        def score(self, user_ids: Sequence[str], item_ids: Sequence[str]) -> np.ndarray:
            return cached[: len(user_ids), : len(item_ids)]

    evaluate_cold_start(Cached(), split, which=("warm",))
    assert np.isfinite(cached).all()


def test_on_a_real_cold_start_split() -> None:
    rng = np.random.default_rng(3)
    rows = [(f"u{u}", f"i{i}") for u in range(60) for i in rng.choice(80, 15, replace=False)]
    split = cold_start_split(_frame(rows), SplitConfig(seed=1))
    res = evaluate_cold_start(oracle(split), split)
    for name in ("cold", "warm", "all"):
        assert res[name]["recall@20"] == pytest.approx(1.0)
    assert res["cold"]["n_candidates"] == len(split.test_cold_items)


def test_places_the_tie_break_filled_are_counted() -> None:
    """Popularity scores every cold item 0: its cold list is the candidates' seeded
    order, and the table must say so rather than show it as the method's skill."""
    split = tiny_split()
    flat = evaluate_cold_start(PairScorer({}), split, k=2)
    assert flat["cold"]["tie_cut_share"] == pytest.approx(1.0)  # every place by tie-break
    assert evaluate_cold_start(oracle(split), split, k=1)["cold"]["tie_cut_share"] == 0.0
    # warm, k=2, counts as popularity has them: u3 gets w2, then one of w1 / w6 (tied);
    # u1 and u2 have seen w2 and w1, get w6, then one of the unscored items (tied)
    counts = {("*", "w2"): 3.0, ("*", "w1"): 1.0, ("*", "w6"): 1.0}
    users = ["u1", "u2", "u3", "u4"]
    table = {(u, i): v for u in users for (_, i), v in counts.items()}
    res = evaluate_cold_start(PairScorer(table, default=-5.0), split, k=2, which=("warm",))
    assert res["warm"]["tie_cut_share"] == pytest.approx(3 / 6)  # one place in each list


def test_decile_results_plot_in_bucket_order(tmp_path: Path) -> None:
    split = tiny_split()
    res = evaluate_cold_start(oracle(split), split, k=2, which=("all",))["all"]
    shuffled = dict(sorted(res["recall_by_decile"].items()))  # as read back from sorted JSON
    assert list(shuffled)[:3] == ["cold", "d1", "d10"]
    out = plot_recall_by_decile({"oracle": shuffled, "other": {"cold": 0.5}}, tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _bucket_key("d2") < _bucket_key("d10") and _bucket_key("cold") < _bucket_key("d1")
