"""Training loop: weighted (sampled) softmax with CF-dropout and early stopping."""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from hybrid_rec.config import ModelConfig
from hybrid_rec.content.encoders import progress_enabled, torch_threads
from hybrid_rec.errors import TrainingError
from hybrid_rec.models.collaborative import weighted_softmax_loss
from hybrid_rec.models.history import Histories
from hybrid_rec.models.hybrid import HybridModel, UserBatch

__all__ = ["TrainData", "TrainResult", "train_model"]

log = logging.getLogger(__name__)

FULL_SOFTMAX_MAX_ITEMS = 20_000
N_SAMPLED_NEGATIVES = 8_192


@dataclass
class TrainData:
    """Everything the trainer reads, as internal-id arrays."""

    content: np.ndarray  # (n_items, content_dim) float32
    counts: np.ndarray  # (n_items,) training interactions per item
    histories: Histories
    users: np.ndarray  # (n,) target interactions: user
    items: np.ndarray  # (n,) target interactions: item
    weights: np.ndarray  # (n,) sample weights
    times: np.ndarray | None = None  # (n,) target times: histories end before them
    # fold-in: every item but the ``learning`` ones keeps its vector in ``frozen``
    # (n_items, dim), so a step runs the item tower on the learning rows only
    frozen: np.ndarray | None = None
    learning: np.ndarray | None = None  # (n_items,) bool


@dataclass
class TrainResult:
    """What happened during training."""

    epochs_run: int
    best_epoch: int
    best_score: float | None
    seconds: float
    losses: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def train_model(
    model: HybridModel,
    data: TrainData,
    config: ModelConfig,
    *,
    validate: Callable[[HybridModel], float] | None = None,
    trainable: list[torch.nn.Parameter] | None = None,
    epochs: int | None = None,
    show_progress: bool | None = None,
    full_softmax_items: int = FULL_SOFTMAX_MAX_ITEMS,
) -> TrainResult:
    """Train ``model`` in place and keep the weights of the best validation epoch.

    Parameters
    ----------
    validate
        Called after each epoch with the model in eval mode; higher is better.
        Without it, every epoch runs and the last weights are kept.
    trainable
        Restrict optimisation to these parameters (used by fold-in).
    epochs
        Overrides ``config.epochs``.
    full_softmax_items
        Up to this many items, every step ranks each target among all of them;
        beyond, among :data:`N_SAMPLED_NEGATIVES` items drawn uniformly at random.

    Raises
    ------
    TrainingError
        If the loss becomes NaN or infinite; the model is left at its last
        finite weights and nothing is saved.
    """
    with torch_threads(config.threads):
        return _train(
            model, data, config, validate, trainable, epochs, show_progress, full_softmax_items
        )


def _train(
    model: HybridModel,
    data: TrainData,
    config: ModelConfig,
    validate: Callable[[HybridModel], float] | None,
    trainable: list[torch.nn.Parameter] | None,
    epochs: int | None,
    show_progress: bool | None,
    full_softmax_items: int,
) -> TrainResult:
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    params = trainable if trainable is not None else list(model.parameters())
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    content = torch.as_tensor(data.content)
    counts = torch.as_tensor(data.counts, dtype=torch.long)
    n_samples = len(data.users)
    if n_samples == 0:
        raise TrainingError("no training interactions.")
    n_epochs = epochs or config.epochs
    batch_size, per_history = batching(n_samples, config)
    result = TrainResult(0, 0, None, 0.0)
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    start = time.perf_counter()
    quiet = not progress_enabled(show_progress, logging.getLogger("hybrid_rec"))
    bar = tqdm(total=n_epochs, desc="training", unit="epoch", disable=quiet)
    for epoch in range(n_epochs):
        model.train()
        total, steps = 0.0, 0
        for idx, group in _batches(data.users, batch_size, per_history, rng):
            loss = _step(
                model, data, content, counts, idx, group, config, gen, rng, full_softmax_items
            )
            if loss is None:
                continue
            if not torch.isfinite(loss):
                fix = "Lower model.lr or raise model.temperature"
                heaviest = float(np.max(data.weights)) if len(data.weights) else 0.0
                if heaviest > 1e6:  # a batch's weighted sum overflows long before float32
                    fix = (
                        "Scale down the interactions' weights (the largest is "
                        f"{heaviest:.3g}; only their ratios count), or lower model.lr"
                    )
                raise TrainingError(
                    f"training diverged at epoch {epoch + 1}: the loss is {loss.item()}. "
                    f"{fix}; nothing was saved."
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 5.0)
            opt.step()
            total += float(loss.item())
            steps += 1
        epoch_loss = total / max(1, steps)
        result.losses.append(epoch_loss)
        result.epochs_run = epoch + 1
        if validate is None:
            bar.set_postfix(loss=f"{epoch_loss:.4f}", refresh=False)
            bar.update(1)
            continue
        model.eval()
        score = float(validate(model))
        result.scores.append(score)
        # the bar counts an epoch once it is done, validation included, as the log does
        bar.set_postfix(loss=f"{epoch_loss:.4f}", val=f"{score:.4f}", refresh=False)
        bar.update(1)
        log.info("epoch %d: loss %.4f, validation %.4f", epoch + 1, epoch_loss, score)
        if result.best_score is None or score > result.best_score:
            result.best_score, result.best_epoch, stale = score, epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= config.patience:
                log.info("early stopping after epoch %d (best %d)", epoch + 1, result.best_epoch)
                break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        result.best_epoch = result.epochs_run
    _check_finite(model)
    model.eval()
    result.seconds = time.perf_counter() - start
    return result


LARGE_LOG = 200_000
"""Training interactions from which ``targets_per_history=None`` groups samples."""
GROUPED_TARGETS = 4


def batching(n_samples: int, config: ModelConfig) -> tuple[int, int]:
    """``(samples per batch, samples per user-tower pass)`` for a log of ``n_samples``.

    On a large log most of a step's time goes to the user tower (every sample
    runs attention over a 50-item history) and to the item tower (every item,
    once per step). Letting 4 samples of one user share a history pass and
    doubling the batch cuts both per sample: 3x the training throughput at
    MovieLens-1M's size on 2 cores. Small logs keep one pass per sample, the
    setting every MovieLens-100k figure was measured with.
    """
    if config.targets_per_history is not None:
        return config.batch_size, config.targets_per_history
    if n_samples < LARGE_LOG:
        return config.batch_size, 1
    return 2 * config.batch_size, GROUPED_TARGETS


def _batches(
    users: np.ndarray, batch_size: int, per_history: int, rng: np.random.Generator
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """One epoch of ``(sample indices, group of each sample)`` batches in random order.

    With ``per_history == 1`` every sample is its own group. Otherwise each user's
    samples, in random order, are cut into groups of up to ``per_history``; a
    group shares one pass of the user tower (its history with all of the group's
    targets hidden), and batches hold whole groups, about ``batch_size`` samples.
    """
    n = len(users)
    order = rng.permutation(n)
    if per_history <= 1:
        for b in range(0, n, batch_size):
            idx = order[b : b + batch_size]
            yield idx, np.arange(len(idx))
        return
    order = order[np.argsort(users[order], kind="stable")]  # by user, random within
    u = users[order]
    run_start = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    run_of = np.repeat(np.arange(len(run_start)), np.diff(np.r_[run_start, n]))
    rank = np.arange(n) - run_start[run_of]
    new_group = np.r_[True, (u[1:] != u[:-1]) | (rank[1:] % per_history == 0)]
    group_start = np.flatnonzero(new_group)
    group_stop = np.r_[group_start[1:], n]
    groups = rng.permutation(len(group_start))
    per_batch = max(1, batch_size // per_history)
    for b in range(0, len(groups), per_batch):
        pick = groups[b : b + per_batch]
        sizes = group_stop[pick] - group_start[pick]
        group = np.repeat(np.arange(len(pick)), sizes)
        offset = np.arange(len(group)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        yield order[np.repeat(group_start[pick], sizes) + offset], group


def _step(
    model: HybridModel,
    data: TrainData,
    content: torch.Tensor,
    counts: torch.Tensor,
    idx: np.ndarray,
    group: np.ndarray,
    config: ModelConfig,
    gen: torch.Generator,
    rng: np.random.Generator,
    full_softmax_items: int = FULL_SOFTMAX_MAX_ITEMS,
) -> torch.Tensor | None:
    """The loss of one batch: samples ``idx``; samples of one ``group`` share a user
    and one history, with every target of the group hidden from it."""
    n_items = len(content)
    targets = data.items[idx]
    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])  # groups are contiguous
    g_users = data.users[idx[starts]]
    hist = data.histories
    h_items = hist.items[g_users].copy()
    hidden = h_items[group] == targets[:, None]  # never show a target in its own history
    if len(starts) < len(group):
        hidden = np.logical_or.reduceat(hidden, starts, axis=0)
    ref_time = hist.ref_time[g_users]
    if data.times is not None:  # causal: only what came before the group's first target,
        ref_time = np.minimum.reduceat(data.times[idx], starts)  # its recency measured then
        hidden |= hist.times[g_users] >= ref_time[:, None]
    h_items[hidden] = -1
    ok_group = (h_items >= 0).any(axis=1)
    if not ok_group.any():
        return None
    ok = ok_group[group]
    renumber = np.cumsum(ok_group) - 1
    group, targets, idx = renumber[group[ok]], targets[ok], idx[ok]
    users, h_items, ref_time = g_users[ok_group], h_items[ok_group], ref_time[ok_group]
    # CF-dropout: a share of items per batch lose their CF evidence, as if they were cold
    has_cf_all = counts > 0
    if config.cf_dropout > 0:  # a fold-in has none: no draw over the catalogue each step
        has_cf_all &= ~(torch.rand(n_items, generator=gen) < config.cf_dropout)
    sampled: torch.Tensor | None = None
    if n_items <= full_softmax_items:
        cand = torch.arange(n_items)
    else:
        negs = torch.as_tensor(rng.integers(0, n_items, N_SAMPLED_NEGATIVES))
        used = torch.as_tensor(np.concatenate([targets, h_items[h_items >= 0]]))
        cand = torch.unique(torch.cat([negs, used]))
        sampled = torch.isin(cand, negs)
    if data.frozen is not None and data.learning is not None:
        vecs = torch.as_tensor(data.frozen)[cand]
        learn = torch.nonzero(torch.as_tensor(data.learning)[cand]).squeeze(1)
        if len(learn):
            rows = cand[learn]
            fresh, _ = model.items_forward(content[rows], rows, counts[rows], has_cf_all[rows])
            vecs = vecs.index_put((learn,), fresh)
    else:
        vecs, _ = model.items_forward(content[cand], cand, counts[cand], has_cf_all[cand])
    batch = UserBatch(
        h_items, hist.events[users], hist.times[users], ref_time, hist.has_time, users
    )
    col = torch.searchsorted(cand, torch.as_tensor(batch.items.clamp(min=0)))
    # index_select, not vecs[col]: its backward is an index_add_, several times faster
    # on CPU than the accumulating index_put_ of advanced indexing
    hist_vecs = vecs.index_select(0, col.reshape(-1)).reshape(*col.shape, -1)
    user_vecs, _ = model.users_forward(hist_vecs, batch, need_weights=False)
    if len(user_vecs) != len(targets):
        user_vecs = user_vecs.index_select(0, torch.as_tensor(group))
    target_col = torch.searchsorted(cand, torch.as_tensor(targets))
    weights = torch.as_tensor(data.weights[idx], dtype=torch.float32)
    not_negative = None
    if sampled is not None:
        # the negatives are the uniform draws only. The batch's own items (its targets
        # and histories) are there to be scored; as negatives too, a popular item would
        # be pushed down in nearly every step and a rarely read one in half of them: on
        # a 12,000-item synthetic log all-items validation Recall@20 fell from 0.215
        # (full softmax) to 0.085, and is 0.217 with the draws alone
        not_negative = (~sampled).expand(len(target_col), -1).clone()
        not_negative[torch.arange(len(target_col)), target_col] = False
    loss = weighted_softmax_loss(
        user_vecs, vecs, target_col, weights, config.temperature, not_negative
    )
    if config.align_weight > 0:
        loss = loss + config.align_weight * _alignment(model, content, counts, cand)
    return loss


def _alignment(
    model: HybridModel, content: torch.Tensor, counts: torch.Tensor, cand: torch.Tensor
) -> torch.Tensor:
    """1 - cos(content projection, CF vector) over warm items: teaches the content path
    where behaviour puts an item, which is where a cold item should land."""
    warm = cand[counts[cand] > 0]
    if len(warm) == 0:
        return torch.zeros(())
    fusion = model.fusion
    h_content = fusion.content_proj(content[warm] - fusion.content_mean)
    target = model.cf(warm).detach()
    return (1 - torch.nn.functional.cosine_similarity(h_content, target, dim=-1)).mean()


def _check_finite(model: HybridModel) -> None:
    for name, param in model.state_dict().items():
        if param.is_floating_point() and not torch.isfinite(param).all():
            raise TrainingError(f"parameter {name} holds NaN/inf after training; nothing saved.")
