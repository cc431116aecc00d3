from __future__ import annotations

from pathlib import Path

import pytest

from hybrid_rec.config import RecommenderConfig, load_config
from hybrid_rec.errors import ConfigError


def test_defaults_and_toml(tmp_path: Path) -> None:
    assert RecommenderConfig().model.dim == 64
    path = tmp_path / "c.toml"
    path.write_text("[model]\ndim = 32\n[data]\nevent_weights = {view = 1, buy = 7}\n")
    cfg = load_config(path)
    assert cfg.model.dim == 32
    # given weights are merged over the defaults: one new type keeps the others
    assert cfg.data.event_weights["view"] == 1.0
    assert cfg.data.event_weights["buy"] == 7.0
    assert cfg.data.event_weights["purchase"] == 5.0
    assert cfg.split.seed == 42


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[model]\ndim = -1\n", "model.dim"),
        ("[model]\nhistory_len = 100000000\n", "model.history_len"),  # tried to allocate TBs
        ("[model]\nflavour = 1\n", "flavour"),
        ("[data]\nevent_weights = {view = -2}\n", ">= 0"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_bad_config_is_a_clear_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match="not found"):
        RecommenderConfig.from_toml("/nonexistent/x.toml")
