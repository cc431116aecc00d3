"""The top-level package: its public names, and what importing it costs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import hybrid_rec


def _imports_torch(code: str) -> bool:
    """Whether running ``code`` in a fresh interpreter leaves torch imported."""
    probe = f"{code}\nimport sys\nprint('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.strip().splitlines()[-1] == "True"


def test_public_names_resolve() -> None:
    from hybrid_rec import HybridRecommender, RecommenderConfig, datasets
    from hybrid_rec.data import datasets as data_datasets
    from hybrid_rec.recommender import HybridRecommender as Recommender

    assert HybridRecommender is Recommender
    assert datasets is data_datasets
    assert callable(datasets.load_movielens)
    assert isinstance(RecommenderConfig(), RecommenderConfig)
    for name in hybrid_rec.__all__:
        assert getattr(hybrid_rec, name) is not None
    assert set(hybrid_rec.__all__) <= set(dir(hybrid_rec))


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Recommender'"):
        _ = hybrid_rec.Recommender  # type: ignore[attr-defined]
    with pytest.raises(ImportError):
        from hybrid_rec import Recommender  # type: ignore[attr-defined]  # noqa: F401


def test_command_line_starts_without_torch(tmp_path: Path) -> None:
    """`hybrid-rec --help`, `data check` and option errors need no model: importing
    the CLI must not import torch (it took 3-4 s of a 4-13 s `--help`)."""
    assert not _imports_torch("import hybrid_rec.cli")
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id\nu1,a\nu1,b\nu2,a\n")
    check = (
        "from typer.testing import CliRunner\nfrom hybrid_rec.cli import app\n"
        f"result = CliRunner().invoke(app, ['data', 'check', {str(log)!r}])\n"
        "assert result.exit_code == 0, result.output\n"
        "assert 'valid interactions file' in result.output, result.output"
    )
    assert not _imports_torch(check)
    assert not _imports_torch("import hybrid_rec; hybrid_rec.RecommenderConfig()")
    assert _imports_torch("from hybrid_rec import HybridRecommender")


def test_thread_settings_precede_torch() -> None:
    """OMP_WAIT_POLICY must be set before torch loads OpenMP, also when torch is
    reached through the lazily imported recommender."""
    probe = (
        "import os; os.environ.pop('OMP_WAIT_POLICY', None)\n"
        "import hybrid_rec\n"
        "assert 'torch' not in __import__('sys').modules\n"
        "from hybrid_rec import HybridRecommender\n"
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "PASSIVE"
