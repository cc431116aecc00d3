from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hybrid_rec.cli import app

runner = CliRunner()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the real console entry point (exit codes and stderr as a user sees them)."""
    return subprocess.run(
        [sys.executable, "-c", "from hybrid_rec.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_data_check_prints_summary(tmp_path: Path) -> None:
    path = tmp_path / "inter.csv"
    pd.DataFrame(
        {"user_id": ["a", "a", "b"], "item_id": [1, 2, 1], "event": ["view", "purchase", "click"]}
    ).to_csv(path, index=False)
    result = runner.invoke(app, ["data", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert "valid interactions file" in result.output
    assert "users             2" in result.output
    assert "long tail" in result.output and "purchase 1" in result.output


def test_data_check_items_and_json(tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": 1, "title": "A"}\n{"item_id": 2, "title": ""}\n')
    result = runner.invoke(app, ["data", "check", str(path), "--json"])
    assert result.exit_code == 0, result.output
    assert '"n_items": 2' in result.output
    assert '"title": 0.5' in result.output


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("user_id,item_id\n,1\n", "row(s) 0"),
        ("user,item\nu,1\n", "missing required column"),
        ("user_id,item_id,rating\nu,1,-3\n", "rating"),
    ],
)
def test_data_check_bad_input_is_one_readable_line(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    proc = _cli("data", "check", str(path), "--kind", "interactions")
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and expected in proc.stderr
    assert str(path) in proc.stderr


def test_data_check_unknown_items_against_catalogue(tmp_path: Path) -> None:
    inter, items = tmp_path / "i.csv", tmp_path / "c.csv"
    inter.write_text("user_id,item_id\nu,1\nu,9\n")
    items.write_text("item_id,title\n1,A\n")
    proc = _cli("data", "check", str(inter), "--items", str(items))
    assert proc.returncode == 2 and "absent from the catalogue" in proc.stderr


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("item_id,title\n1,Caf\xe9\n".encode("latin-1"))
    proc = _cli("data", "check", str(path))
    assert proc.returncode == 2 and "UTF-8" in proc.stderr


@pytest.mark.slow
def test_export_movielens_then_check(tmp_path: Path) -> None:
    proc = _cli("data", "export", "movielens-100k", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    check = _cli("data", "check", str(tmp_path / "interactions.csv"))
    assert check.returncode == 0, check.stderr
    assert "interactions      100,000" in check.stdout
    assert "users             943" in check.stdout


def test_serve_passes_its_options_to_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    import hybrid_rec.serve

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(hybrid_rec.serve, "serve", lambda **kw: calls.append(kw))
    args = ["serve", "--model-dir", "m", "--port", "7999", "--explain-backend", "template"]
    result = CliRunner().invoke(app, [*args, "--epochs", "2", "--refit", "--concurrency", "3"])
    assert result.exit_code == 0, result.output
    assert calls == [
        {
            "model_dir": Path("m"),
            "host": "127.0.0.1",
            "port": 7999,
            "refit": True,
            "concurrency": 3,
            "epochs": 2,
            "explain_backend": "template",
        }
    ]
    bad = CliRunner().invoke(app, ["serve", "--explain-backend", "gpt"])
    assert bad.exit_code == 2


@pytest.fixture(scope="module")
def synthetic_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    from hybrid_rec.data import datasets

    root = tmp_path_factory.mktemp("evaluate")
    ds = datasets.synthetic(n_users=300, n_items=240, interactions_per_user=20, seed=3)
    inter, items = root / "shop.csv", root / "items.csv"
    ds.interactions.to_csv(inter, index=False)
    ds.items.to_csv(items, index=False)
    config = root / "quick.toml"
    config.write_text("[content]\nencoder = 'hashing'\n\n[model]\nepochs = 3\nthreads = 1\n")
    return inter, items, config


def test_evaluate_on_own_files(synthetic_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    inter, items, config = synthetic_files
    out = tmp_path / "bench"
    args = ["evaluate", str(inter), str(items), "--config", str(config), "--out", str(out)]
    result = runner.invoke(app, [*args, "--methods", "popularity,content-knn,hybrid"])
    assert result.exit_code == 0, result.output
    assert "shop  (recall@20" in result.output and "hybrid" in result.output
    data = json.loads((out / "quality.json").read_text())["shop"]
    assert data["meta"]["encoder"].startswith("hashing")
    assert data["meta"]["split"]["seed"] == 42
    methods = data["methods"]
    assert set(methods) == {"popularity", "content-knn", "hybrid"}
    # popularity cannot rank items nobody has touched; content can
    assert methods["content-knn"]["cold"]["recall@20"] > methods["popularity"]["cold"]["recall@20"]
    assert methods["hybrid"]["cold"]["recall@20"] > methods["popularity"]["cold"]["recall@20"]
    for setting in ("cold", "warm", "all"):
        assert 0.0 <= methods["hybrid"][setting]["recall@20"] <= 1.0
    assert "### Cold-start quality: shop" in (out / "RESULTS.md").read_text()
    assert (out / "recall_by_decile_shop.png").stat().st_size > 0


def test_evaluate_bad_input(synthetic_files: tuple[Path, Path, Path], tmp_path: Path) -> None:
    inter, items, config = synthetic_files
    done = _cli("evaluate", str(inter), str(items), "--methods", "popularity,magic")
    assert done.returncode == 2 and "unknown method(s) ['magic']" in done.stderr
    done = _cli("evaluate", str(inter), str(items), "--methods", " , ")
    assert done.returncode == 2 and "no method given" in done.stderr
    broken = tmp_path / "broken.csv"
    pd.read_csv(inter).drop(columns=["item_id"]).to_csv(broken, index=False)
    done = _cli("evaluate", str(broken), str(items), "--config", str(config))
    assert done.returncode == 2
    assert done.stderr.startswith("error:") and "item_id" in done.stderr
    assert "Traceback" not in done.stderr


def test_usage_error_in_a_command_body_is_not_a_traceback(tmp_path: Path) -> None:
    done = _cli("embed", str(tmp_path / "items.csv"), "--store", str(tmp_path), "--workers", "2")
    assert done.returncode == 2
    assert "--workers applies to --backend ray only" in done.stderr
    assert "Traceback" not in done.stderr
