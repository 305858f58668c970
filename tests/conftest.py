"""Shared fixtures: async backends, the fake RunGen API (`api`), an open client (`rungen`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from rungen_async import AsyncRunGen, RetryPolicy

BASE_URL = "https://api.test"
API_KEY = "rg-test-secret-key-0123456789"


@pytest.fixture(
    params=[
        pytest.param("asyncio", id="asyncio"),
        pytest.param("trio", id="trio"),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """Every async test runs once on asyncio and once on trio."""
    return str(request.param)


@pytest.fixture
def api() -> Iterator[respx.Router]:
    """The fake RunGen API; each test adds the routes it needs, and uses them all."""
    router = respx.Router(base_url=BASE_URL, assert_all_mocked=True)
    yield router
    router.assert_all_called()


@pytest.fixture
async def rungen(api: respx.Router) -> AsyncIterator[AsyncRunGen]:
    """An open client wired to `api`, retrying at once (no real sleeps)."""
    transport = httpx.MockTransport(api.async_handler)
    async with AsyncRunGen(
        API_KEY,
        base_url=BASE_URL,
        transport=transport,
        retry=RetryPolicy(initial_delay=0, max_delay=0, max_retry_after=0),
    ) as client:
        yield client
