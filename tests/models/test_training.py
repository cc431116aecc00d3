"""The training loop's batching: samples of one user sharing a pass of the user tower."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pytest
import torch

from hybrid_rec import HybridRecommender, RecommenderConfig
from hybrid_rec.config import ModelConfig
from hybrid_rec.content import HashingEncoder
from hybrid_rec.data.datasets import Dataset
from hybrid_rec.models.collaborative import CollaborativeEmbeddings
from hybrid_rec.models.training import LARGE_LOG, _batches, batching


@pytest.mark.parametrize("per_history", [1, 3, 8])
def test_an_epoch_holds_every_sample_once_in_groups_of_one_user(per_history: int) -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 40, 2_000)
    seen: list[np.ndarray] = []
    for idx, group in _batches(users, 128, per_history, np.random.default_rng(1)):
        assert len(idx) == len(group)
        assert len(idx) <= max(128, per_history)
        assert np.all(np.diff(group) >= 0)  # contiguous groups, numbered from 0
        assert group[0] == 0 and set(np.diff(group)) <= {0, 1}
        for g in np.unique(group):
            members = idx[group == g]
            assert len(members) <= per_history
            assert len(np.unique(users[members])) == 1
        seen.append(idx)
    every = np.concatenate(seen)
    assert np.array_equal(np.sort(every), np.arange(len(users)))


def test_one_sample_per_history_keeps_the_plain_shuffled_order() -> None:
    users = np.random.default_rng(0).integers(0, 40, 1_000)
    batches = list(_batches(users, 100, 1, np.random.default_rng(5)))
    order = np.random.default_rng(5).permutation(len(users))
    assert np.array_equal(np.concatenate([b for b, _ in batches]), order)
    assert all(np.array_equal(g, np.arange(len(b))) for b, g in batches)


def test_grouped_training_learns_the_clusters(
    clustered: Dataset, small_config: Callable[..., RecommenderConfig]
) -> None:
    cfg = small_config()
    cfg.model.targets_per_history = 4
    rec = HybridRecommender(cfg, encoder=HashingEncoder(256)).fit(
        clustered.interactions, clustered.items, show_progress=False
    )
    user_cluster = clustered.info["user_cluster"]
    item_cluster = clustered.info["item_cluster"]
    users = list(user_cluster)[:60]
    recs = rec.recommend(users, k=10)
    pairs = zip(recs["user_id"], recs["item_id"], strict=True)
    share = np.mean([item_cluster[i] == user_cluster[u] for u, i in pairs])
    assert share > 0.8, share


def test_batching_groups_only_large_logs_unless_told() -> None:
    auto = ModelConfig(batch_size=512)
    assert batching(LARGE_LOG - 1, auto) == (512, 1)
    assert batching(LARGE_LOG, auto) == (1024, 4)
    told = ModelConfig(batch_size=256, targets_per_history=2)
    assert batching(10, told) == batching(10 * LARGE_LOG, told) == (256, 2)


def test_the_progress_bar_counts_the_epochs_that_ran(
    clustered: Dataset,
    small_config: Callable[..., RecommenderConfig],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = small_config(epochs=30)
    cfg.model.patience = 1  # stops early: a bar driven by the loop would read one short
    rec = HybridRecommender(cfg, encoder=HashingEncoder(64)).fit(
        clustered.interactions.head(2_000), clustered.items, show_progress=True
    )
    assert rec.train_result_.epochs_run < 30
    shown = re.findall(r"(\d+)/30 \[", capsys.readouterr().err)
    assert shown and int(shown[-1]) == rec.train_result_.epochs_run


def test_the_steps_after_training_have_a_bar_of_their_own(
    clustered: Dataset,
    small_config: Callable[..., RecommenderConfig],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Tuning, the holdout fold-in and the index build took a minute and more on a large
    catalogue with nothing on the screen after the training bar had finished."""
    cfg = small_config(epochs=2)
    log = clustered.interactions.head(2_000)
    HybridRecommender(cfg, encoder=HashingEncoder(64)).fit(log, clustered.items, show_progress=True)
    err = capsys.readouterr().err
    assert re.search(r"building the index: 100%\S* 5/5", err), err[-500:]
    assert "tuning" in err and "folding in the holdout" in err
    HybridRecommender(cfg, encoder=HashingEncoder(64)).fit(
        log, clustered.items, show_progress=False
    )
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("causal", [False, True])
def test_a_causal_history_holds_only_what_came_before_the_target(
    causal: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from hybrid_rec.models import HybridModel, TrainData, build_histories
    from hybrid_rec.models.training import _step
    from hybrid_rec.models.user import recency_bucket

    # one user read items 0, 1, 2, 3 at hours 1, 2, 3, 4; the target is item 1 (hour 2)
    hours = np.array([1, 2, 3, 4]) * 3600
    users, items = np.zeros(4, np.int64), np.arange(4)
    hist = build_histories(users, items, np.ones(4, np.int64), hours, 1, 10)
    cfg = ModelConfig(dim=8)
    model = HybridModel(4, 4, 3, cfg)
    data = TrainData(
        np.eye(4, dtype=np.float32), np.ones(4, np.int64), hist, users, items, np.ones(4),
        times=hours if causal else None,
    )  # fmt: skip
    seen: dict[str, np.ndarray] = {}

    def spy(vectors: torch.Tensor, batch: object, **kw: object) -> tuple[torch.Tensor, None]:
        seen["items"], seen["recency"] = batch.items.numpy(), batch.recency.numpy()  # type: ignore[attr-defined]
        return torch.nn.functional.normalize(vectors.mean(1), dim=-1), None

    monkeypatch.setattr(model, "users_forward", spy)
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(0)
    _step(model, data, torch.eye(4), torch.ones(4, dtype=torch.long), np.array([1]),
          np.array([0]), cfg, gen, rng)  # fmt: skip
    shown = sorted(seen["items"][0][seen["items"][0] >= 0].tolist())
    assert shown == ([0] if causal else [0, 2, 3])  # never the target; causal: nothing after
    # recency measured at the target (an hour before it), not at the user's last read
    first = seen["recency"][0][seen["items"][0] == 0]
    ref = (2 if causal else 4) * 3600
    np.testing.assert_array_equal(first, recency_bucket(np.array([ref]), np.array([3600]), True))


def test_sampled_negatives_are_the_uniform_draws_not_the_batch_items(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Above full_softmax_items a target is ranked among random items. The batch's own
    items (its targets and histories) get vectors too, but were they negatives as well,
    popular items would be pushed down far more often than rare ones: on a 12,000-item
    synthetic log all-items validation Recall@20 fell from 0.215 (full softmax) to 0.085."""
    import torch

    import hybrid_rec.models.training as training
    from hybrid_rec.models import HybridModel, TrainData, build_histories

    n_items = 40
    users, items = np.zeros(10, np.int64), np.arange(10)  # one user read items 0-9
    hist = build_histories(users, items, np.ones(10, np.int64), np.arange(10) * 60, 1, 10)
    cfg = ModelConfig(dim=8, cf_dropout=0.0)
    model = HybridModel(4, n_items, 3, cfg)
    content = torch.eye(n_items)[:, :4].contiguous()
    data = TrainData(content.numpy(), np.ones(n_items, np.int64), hist, users, items, np.ones(10))
    seen: dict[str, torch.Tensor] = {}
    real = training.weighted_softmax_loss

    def spy(u: torch.Tensor, c: torch.Tensor, t: torch.Tensor, w: torch.Tensor,
            temp: float, mask: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        seen["target"], seen["mask"] = t, mask  # type: ignore[assignment]
        return real(u, c, t, w, temp, mask)

    monkeypatch.setattr(training, "weighted_softmax_loss", spy)
    monkeypatch.setattr(training, "N_SAMPLED_NEGATIVES", 6)
    drawn = set(np.random.default_rng(3).integers(0, n_items, 6).tolist())
    gen, rng = torch.Generator().manual_seed(0), np.random.default_rng(3)
    loss = training._step(
        model, data, content, torch.ones(n_items, dtype=torch.long), np.array([2, 5]),
        np.array([0, 0]), cfg, gen, rng, full_softmax_items=8,
    )  # fmt: skip
    assert loss is not None and torch.isfinite(loss)
    cand = sorted(drawn | set(range(10)))  # the candidates: drawn, targets and history
    assert seen["mask"] is not None
    for row, target in zip(seen["mask"], (2, 5), strict=True):
        negatives = {cand[c] for c in np.flatnonzero(~row.numpy())}
        assert negatives == drawn | {target}  # history items not drawn are left out


def test_the_cf_table_grows_into_spare_rows_without_copying_itself() -> None:
    """One added item copied the whole table (30 ms of an add at 200,000 items):
    growth now fills zeroed room after it, and the trained rows never change."""
    table = CollaborativeEmbeddings(400, 8)
    trained = table.weight.detach().clone()
    table.grow(1)
    first = table.weight.data_ptr()
    copies = 0
    for _ in range(99):
        table.grow(1)
        copies += table.weight.data_ptr() != first
    assert copies == 0  # a quarter of 400 rows of room: 100 one-row adds in place
    assert table.weight.shape == (500, 8)
    assert torch.equal(table.weight[:400].detach(), trained)
    assert not table.weight[400:].any()  # new items carry no behaviour
    with torch.no_grad():
        table.weight[450] = 1.0  # a fold-in writes a row; the next growth keeps it
    table.grow(50)  # past the room: a new block, the same rows
    assert table.weight.data_ptr() != first and table.weight.shape == (550, 8)
    assert torch.equal(table.weight[:400].detach(), trained)
    assert table.weight[450].eq(1.0).all() and not table.weight[500:].any()
    table.load_state_dict({"weight": torch.ones(550, 8)})  # in place, as load does
    table.grow(2)
    assert table.weight[:550].eq(1.0).all() and not table.weight[550:].any()
