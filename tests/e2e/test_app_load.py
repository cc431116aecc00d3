"""Twenty concurrent requests through gradio_client: all succeed and the app still answers."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.e2e

K = 5
N_REQUESTS = 20


def _cards(page: str) -> int:
    return len(re.findall(r'class="hr-card"', page))


def test_twenty_concurrent_requests_all_succeed(served: Any) -> None:
    from gradio_client import Client

    client = Client(served.url, verbose=False, analytics_enabled=False, download_files=False)
    users = served.state.user_choices()[: N_REQUESTS // 2]
    tastes = [f"{word} and more {word}" for word in ("rocket", "recipe", "stadium", "guitar")]
    start = time.perf_counter()
    jobs = [client.submit(u, K, api_name="/recommend_user") for u in users]
    jobs += [
        client.submit([], tastes[n % len(tastes)], K, api_name="/recommend_new_user")
        for n in range(N_REQUESTS - len(jobs))
    ]
    assert len(jobs) == N_REQUESTS
    results = [job.result(timeout=300) for job in jobs]
    elapsed = time.perf_counter() - start
    for n, result in enumerate(results):
        page = result[1] if isinstance(result, tuple | list) else result
        assert "hr-error" not in page, (n, page[:500])
        assert _cards(page) == K and f'data-done="{K}" data-total="{K}"' in page, n
    # the app still answers, both the page and the API
    assert httpx.get(served.url, timeout=10).status_code == 200
    again = client.predict(users[0], 3, api_name="/recommend_user")
    assert _cards(again[1]) == 3
    print(f"{N_REQUESTS} concurrent requests answered in {elapsed:.1f} s")


def test_concurrent_item_additions_stay_consistent(served: Any) -> None:
    """add_items mutates the model: concurrent additions must not lose or mix items."""
    from gradio_client import Client

    client = Client(served.url, verbose=False, analytics_enabled=False, download_files=False)
    before = len(served.state.catalogue)

    def add(n: int) -> Any:
        return client.predict(
            "",  # automatic ids: new-1, new-2 ... must not collide
            f"Load test item {n}",
            f"orbit planet comet number {n}",
            [],
            None,
            "",
            "",
            api_name="/add_item",
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(add, range(6)))
    ids = []
    for result in results:
        page = result[0] if isinstance(result, tuple | list) else result
        found = re.search(r'class="hr-added" data-item="([^"]+)"', page)
        assert found, page[:500]
        ids.append(found.group(1))
    assert len(set(ids)) == 6 and set(ids) <= set(served.state.added)
    assert len(served.state.catalogue) == before + 6


def test_uploads_are_refused(served: Any) -> None:
    """The app has no file input, yet the server kept any upload (40 MB, from any page's
    cross-site POST) in Gradio's cache."""
    for origin in ({}, {"Origin": "http://evil.example"}):
        response = httpx.post(
            served.url.rstrip("/") + "/gradio_api/upload",
            files={"files": ("x.txt", b"x" * 4096, "text/plain")},
            headers=origin,
            timeout=30,
        )
        assert response.status_code >= 400, response.text
