"""Plots of benchmark results, written as PNG with matplotlib's Agg backend."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from hybrid_rec.data.io import atomic_path

__all__ = ["plot_recall_by_decile"]

log = logging.getLogger(__name__)


def _bucket_key(name: str) -> tuple[int, str]:
    """``cold`` first, then ``d1`` ... ``d10`` in numeric order (JSON sorts them as text)."""
    if name == "cold":
        return (-1, name)
    digits = name[1:]
    return (int(digits), name) if name.startswith("d") and digits.isdigit() else (1 << 30, name)


def plot_recall_by_decile(
    results: Mapping[str, Mapping[str, float | None]],
    path: str | os.PathLike[str],
    *,
    title: str = "Recall@20 by item popularity",
    ylabel: str = "recall@20",
) -> Path:
    """Draw recall by popularity bucket, one line per method, and save it as PNG.

    Parameters
    ----------
    results
        ``{method: {bucket: recall}}`` with the buckets of
        :func:`~hybrid_rec.evaluation.metrics.bucket_names` (``cold``, ``d1``
        = least popular tenth ... ``d10``), e.g. each method's
        ``result["all"]["recall_by_decile"]``. ``None`` (no relevant item in
        the bucket) leaves a gap.
    path
        Output PNG; written atomically, parent folders created.
    title, ylabel
        Labels.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    buckets = sorted({b for per_bucket in results.values() for b in per_bucket}, key=_bucket_key)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=120)
    try:
        x = list(range(len(buckets)))
        for method, per_bucket in results.items():
            y = [per_bucket.get(b) for b in buckets]
            ax.plot(x, [float("nan") if v is None else v for v in y], marker="o", label=method)
        ax.set_xticks(x, buckets)
        ax.set_xlabel("item popularity bucket (cold, then deciles of training popularity)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
        fig.tight_layout()
        out = Path(path)
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    log.info("wrote %s", out)
    return out
