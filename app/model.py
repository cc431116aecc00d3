"""The demo model: MovieLens-100k fitted once (MiniLM content vectors), then loaded.

The first start fits and saves to ``models/ml100k`` in the checkout (a few
minutes on 2 cores); later starts load it in seconds.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from app.settings import DEFAULT_MODEL_DIR, DEMO_EPOCHS
from hybrid_rec import HybridRecommender, RecommenderConfig, datasets
from hybrid_rec.errors import ModelFileError

__all__ = ["demo_config", "fit_demo_model", "load_or_fit"]

log = logging.getLogger(__name__)


def demo_config(epochs: int = DEMO_EPOCHS) -> RecommenderConfig:
    """The default config with a short training run, for the first start of the demo."""
    cfg = RecommenderConfig()
    cfg.model.epochs = epochs
    return cfg


def load_or_fit(
    model_dir: str | os.PathLike[str] = DEFAULT_MODEL_DIR,
    *,
    epochs: int = DEMO_EPOCHS,
    refit: bool = False,
    is_demo: bool = False,
) -> HybridRecommender:
    """Load the model in ``model_dir``, or fit MovieLens-100k and save it there first.

    Only a folder of the demo's is fitted here: its default one
    (:data:`DEFAULT_MODEL_DIR`), or ``model_dir`` with ``is_demo``. It is fitted when it
    holds no model, when ``refit`` is set, and (the default one) when it holds a
    model an older version of the library wrote. Any other directory must hold a
    model that loads: it may be someone's own, which a MovieLens fit would replace
    (and a mistyped path would serve MovieLens in its name).
    """
    directory = Path(model_dir)
    if not is_demo and directory.resolve() != Path(DEFAULT_MODEL_DIR).resolve():
        if refit:
            raise ModelFileError(
                f"{directory}: --refit fits the MovieLens demo, which would replace the model "
                "there. Fit your own data with `hybrid-rec fit`; --refit refits the demo in "
                "its default directory, or in one given with --demo."
            )
        if not (directory / "manifest.json").is_file():
            raise ModelFileError(
                f"{directory}: no saved model there. Fit one with `hybrid-rec fit ... "
                f"--model-dir {directory}`, leave --model-dir out for the MovieLens demo, or "
                "pass --demo to fit the demo into this folder."
            )
    if (directory / "manifest.json").is_file() and not refit:
        start = time.perf_counter()
        try:
            rec = HybridRecommender.load(directory)
        except ModelFileError as exc:
            if directory.resolve() != DEFAULT_MODEL_DIR.resolve():
                raise
            log.warning("the saved demo model cannot be loaded (%s); fitting it afresh", exc)
        else:
            log.info("loaded the model from %s in %.1f s", directory, time.perf_counter() - start)
            return rec
    return fit_demo_model(directory, epochs=epochs)


def fit_demo_model(directory: Path, *, epochs: int = DEMO_EPOCHS) -> HybridRecommender:
    """Fit MovieLens-100k (MiniLM content vectors) and save it to ``directory``."""
    log.info(
        "fitting MovieLens-100k into %s once (%d epochs, a few minutes); later starts load it "
        "in seconds",
        directory,
        epochs,
    )
    start = time.perf_counter()
    ds = datasets.load_movielens("100k")
    log.info(
        "step 1/3: loaded %s interactions, %s items", f"{len(ds.interactions):,}", len(ds.items)
    )
    log.info("step 2/3: embedding the items and training (progress bars below)")
    rec = HybridRecommender(demo_config(epochs)).fit(ds.interactions, ds.items, show_progress=True)
    rec.save(directory)
    log.info(
        "step 3/3: saved the model to %s (%.0f s in all)", directory, time.perf_counter() - start
    )
    return rec
