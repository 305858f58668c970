"""Fixtures of the emulator tests: a uvicorn-served emulator on a free loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from rungen_async import AsyncRunGen, RetryPolicy
from rungen_async.emulator import Emulator, EmulatorServer

from ._helpers import accounts

#: Retries at once: nothing in the real-TCP tests waits on a timer.
NO_WAIT_RETRY = RetryPolicy(max_attempts=8, initial_delay=0, max_delay=0, max_retry_after=0)


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """uvicorn serving an emulator (warm-up and jobs of 0 s) in a thread; stopped after."""
    emulator = Emulator(accounts=accounts(), warmup=0, job_duration=0, seed=3)
    with EmulatorServer(emulator) as running:
        yield running


@pytest.fixture
async def tcp_client(server: EmulatorServer) -> AsyncIterator[AsyncRunGen]:
    """An AsyncRunGen talking to `server` over real TCP with the demo key."""
    async with AsyncRunGen(
        "rg-demo-key", base_url=server.base_url, retry=NO_WAIT_RETRY, user_id=_demo(server)
    ) as client:
        yield client


def _demo(server: EmulatorServer) -> str:
    return server.emulator.accounts.user_named("demo").id
