"""Fixtures of the end-to-end tests: the app served on 127.0.0.1 and Debian's Chromium.

The browser is Debian's ``chromium`` driven by Playwright (pytest-playwright's
``page`` fixture) without ``playwright install``; ``make test`` installs it.
Browser tests skip, saying so, only when that binary is absent. Chromium may
talk to 127.0.0.1 and nothing else: its resolver maps every other host to
"not found", and each page records its requests so the tests can check that.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` without `python -m` does not put the root on the path
    sys.path.insert(0, str(ROOT))

from app.gradio_app import DemoApp, build_app, launch  # noqa: E402
from hybrid_rec import HybridRecommender, RecommenderConfig  # noqa: E402
from hybrid_rec.data.datasets import Dataset, synthetic  # noqa: E402

CHROMIUM = Path(os.environ.get("HYBRID_REC_CHROMIUM", "/usr/lib/chromium/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
LOCAL_PREFIXES = ("http://127.0.0.1:", "data:", "blob:", "about:")


def free_port() -> int:
    """A port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_benchmarks(directory: Path) -> Path:
    """Benchmark files shaped as scripts/evaluate.py writes them (values made up for the test)."""
    from hybrid_rec.evaluation import plot_recall_by_decile

    directory.mkdir(parents=True, exist_ok=True)
    methods: dict[str, Any] = {}
    deciles: dict[str, dict[str, float | None]] = {}
    for n, name in enumerate(("popularity", "content-knn", "hybrid")):
        methods[name] = {
            s: {
                "recall@20": 0.05 + 0.04 * n + 0.01 * j,
                "ndcg@20": 0.03 + 0.02 * n + 0.01 * j,
                "coverage": 0.1 + 0.2 * n,
                "long_tail_share": 0.02 + 0.05 * n,
            }
            for j, s in enumerate(("cold", "warm", "all"))
        }
        deciles[name] = {
            b: 0.02 * (n + 1) * (1 + i / 3) for i, b in enumerate(["cold", "d1", "d2"])
        }
    meta = {"dataset": "synthetic-test", "encoder": "hashing", "k": 20, "date": "test data"}
    quality = {"synthetic-test": {"meta": meta, "methods": methods}}
    (directory / "quality.json").write_text(json.dumps(quality), encoding="utf-8")
    (directory / "RESULTS.md").write_text(
        "# Benchmark results\n\nMade-up numbers written by the e2e tests.\n", encoding="utf-8"
    )
    plot_recall_by_decile(deciles, directory / "recall_by_decile_synthetic-test.png")
    return directory


@dataclass
class Served:
    """The app under test."""

    url: str
    state: DemoApp
    data: Dataset


@pytest.fixture(scope="session")
def served(
    tmp_path_factory: pytest.TempPathFactory, app_config: Callable[[], RecommenderConfig]
) -> Iterator[Served]:
    """A small synthetic model (hashing encoder, template explanations) served on 127.0.0.1."""
    data = synthetic(n_users=150, n_items=200, n_clusters=4, interactions_per_user=15, seed=5)
    rec = HybridRecommender(app_config()).fit(data.interactions, data.items, show_progress=False)
    bench = write_benchmarks(tmp_path_factory.mktemp("benchmarks"))
    demo = build_app(rec, benchmarks_dir=bench, concurrency=2)
    url = launch(demo, host="127.0.0.1", port=free_port(), quiet=True)
    try:
        yield Served(url.rstrip("/"), demo.hr_state, data)  # type: ignore[attr-defined]
    finally:
        demo.close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's launch arguments: Debian's Chromium, headless, loopback only."""
    if not CHROMIUM.is_file():
        pytest.skip(
            f"Debian's chromium is not installed at {CHROMIUM}: `apt-get install -y chromium` "
            "(make test does it), or point HYBRID_REC_CHROMIUM at a Chromium binary."
        )
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "headless": True,
        "args": CHROMIUM_ARGS,
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": {"width": 1280, "height": 900}}


@pytest.fixture
def requests_seen() -> list[str]:
    return []


@pytest.fixture
def app_page(page: Any, served: Served, requests_seen: list[str]) -> Iterator[Any]:
    """The app open in Chromium; afterwards, no request may have left 127.0.0.1."""
    page.on("request", lambda request: requests_seen.append(request.url))
    page.set_default_timeout(60_000)
    page.goto(served.url)
    page.wait_for_selector("#user-go")
    yield page
    outside = sorted({u for u in requests_seen if not u.startswith(LOCAL_PREFIXES)})
    assert not outside, f"the page made requests outside 127.0.0.1: {outside}"


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot under test-output/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def shoot() -> Callable[[Any, str], Path]:
    """``shoot(page, name)`` saves test-output/screenshots/<name>.png."""
    return screenshot


@pytest.fixture(scope="session")
def port() -> Callable[[], int]:
    """``port()`` gives a port that is free on 127.0.0.1."""
    return free_port
