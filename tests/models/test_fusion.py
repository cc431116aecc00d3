from __future__ import annotations

import numpy as np
import pytest
import torch

from hybrid_rec.models.fusion import AttentionFusion, MaskBankDropout, evidence_bucket
from hybrid_rec.models.history import build_histories, rebuild_users
from hybrid_rec.models.user import context_features, recency_bucket


def test_evidence_buckets_are_log_scale() -> None:
    counts = torch.tensor([0, 1, 2, 3, 4, 7, 8, 10**9])
    assert evidence_bucket(counts).tolist() == [0, 1, 2, 2, 3, 3, 4, 15]


def test_cold_and_warm_share_one_code_path() -> None:
    torch.manual_seed(0)
    fusion = AttentionFusion(content_dim=16, dim=8)
    content = torch.randn(4, 16)
    cf = torch.randn(4, 8)
    has_cf = torch.tensor([True, True, False, False])
    counts = torch.tensor([50, 1, 0, 0])
    out, weights = fusion(content, cf, counts, has_cf)
    assert out.shape == (4, 8) and weights.shape == (4, 2)
    assert torch.allclose(weights.sum(-1), torch.ones(4))
    # without evidence the CF input is ignored (a cold item has none to give)
    out2, _ = fusion(content, cf * 100, counts, has_cf)
    assert torch.allclose(out[2:], out2[2:]) and not torch.allclose(out[:2], out2[:2])
    # the attention query depends on the amount of evidence
    _, w_many = fusion(content[:1], cf[:1], torch.tensor([500]), torch.tensor([True]))
    _, w_few = fusion(content[:1], cf[:1], torch.tensor([1]), torch.tensor([True]))
    assert not torch.allclose(w_many, w_few)


def test_ablations_force_one_token() -> None:
    content, cf = torch.randn(3, 16), torch.randn(3, 8)
    counts, has_cf = torch.tensor([5, 5, 0]), torch.tensor([True, True, False])
    _, w = AttentionFusion(16, 8, use_content=False)(content, cf, counts, has_cf)
    assert torch.all(w[:, 1] > 0.999)
    _, w = AttentionFusion(16, 8, use_cf=False)(content, cf, counts, has_cf)
    assert torch.all(w[:, 0] > 0.999)


def test_mask_bank_dropout_keeps_each_element_with_probability_1_minus_p() -> None:
    torch.manual_seed(0)
    drop = MaskBankDropout(0.2).train()  # a bank of 8,192 masks
    out = drop(torch.ones(20_000, 384))
    kept = out > 0
    assert abs(kept.float().mean().item() - 0.8) < 0.005
    assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.8))  # inverted scaling
    assert abs(kept.float().mean(0) - 0.8).max() < 0.03  # no column is favoured
    # rows draw their masks independently: 1,000 draws from 8,192 give ~941 distinct
    assert len(torch.unique(kept[:1000], dim=0)) > 900


def test_mask_bank_dropout_redraws_its_bank_and_is_seeded() -> None:
    x = torch.ones(64, 32)
    torch.manual_seed(1)
    drop = MaskBankDropout(0.5, bank_rows=16, refresh=3).train()
    first = [drop(x) > 0 for _ in range(3)]
    later = [drop(x) > 0 for _ in range(3)]
    rows = {tuple(r.tolist()) for m in first for r in m}
    assert len(rows) <= 16  # one window: every mask comes from the 16-row bank
    assert {tuple(r.tolist()) for m in later for r in m} - rows  # the next window has new ones
    torch.manual_seed(1)
    again = MaskBankDropout(0.5, bank_rows=16, refresh=3).train()
    assert all(torch.equal(again(x) > 0, m) for m in first)


def test_mask_bank_dropout_is_identity_in_eval_and_leaves_no_saved_state() -> None:
    x = torch.randn(10, 8)
    drop = MaskBankDropout(0.3)
    drop.train()
    drop(x)
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(MaskBankDropout(0.0).train()(x), x)
    assert drop.state_dict() == {}
    fusion = AttentionFusion(8, 4, content_dropout=0.3)
    # the same keys as the nn.Dropout it replaced: models saved before load unchanged
    assert "content_proj.1.weight" in fusion.state_dict()
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        MaskBankDropout(1.0)


def test_histories_are_most_recent_first_and_padded() -> None:
    users = np.array([0, 0, 0, 1])
    items = np.array([10, 11, 12, 13])
    times = np.array([5, 9, 1, 3])
    h = build_histories(users, items, np.array([1, 2, 3, 4]), times, n_users=3, max_len=2)
    assert h.items.tolist() == [[11, 10], [13, -1], [-1, -1]]
    assert h.events.tolist()[0] == [2, 1]
    assert h.ref_time.tolist() == [9, 3, 0]
    assert h.lengths.tolist() == [2, 1, 0]


@pytest.mark.parametrize("with_time", [True, False])
def test_rebuilding_some_users_equals_building_every_history(with_time: bool) -> None:
    """partial_fit derives again only the users of the new rows: the result must be
    what a pass over the whole log gives, ties in time and new users included."""
    rng = np.random.default_rng(3)
    n = 600
    users, items = rng.integers(0, 40, n), rng.integers(0, 90, n)
    events, times = rng.integers(0, 3, n), rng.integers(0, 30, n)  # many equal times
    # rows appended: known users, two new ones (40, 41)
    more = 50
    users = np.r_[users, rng.choice([3, 7, 40, 41], more)]
    items, events = np.r_[items, rng.integers(0, 90, more)], np.r_[events, rng.integers(0, 3, more)]
    times = np.r_[times, rng.integers(20, 40, more)]
    t = times if with_time else np.arange(len(users))
    before = build_histories(
        users[:n], items[:n], events[:n], times[:n] if with_time else None, 40, 8
    )
    whole = build_histories(users, items, events, times if with_time else None, 42, 8)
    rows = np.flatnonzero(np.isin(users, users[n:]))
    got = rebuild_users(before, users[rows], items[rows], events[rows], t[rows], 42)
    for name in ("items", "events", "times", "ref_time"):
        np.testing.assert_array_equal(getattr(got, name), getattr(whole, name))
    assert got.has_time == whole.has_time
    assert not np.array_equal(before.items[3], got.items[3])  # the appended rows count


def test_recency_and_context_features() -> None:
    ref = np.array([[3600 * 10]])
    assert recency_bucket(ref, np.array([[3600 * 10, 3600 * 9, 0]]), True).tolist() == [[1, 2, 4]]
    assert recency_bucket(ref, np.array([[0]]), False).tolist() == [[0]]
    hour, weekday = context_features(np.array([0, 86400 * 4 + 3600 * 13]), True)
    assert hour.tolist() == [0, 13] and weekday.tolist() == [3, 0]  # 1970-01-01: Thursday
