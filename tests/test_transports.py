"""
End to end over real TCP, once per HTTP engine: the emulator on loopback (uvicorn in a thread).

Every test runs with ``WireTransport`` and ``AiohttpTransport`` (asyncio only) and with
``httpx.AsyncHTTPTransport`` (asyncio and trio), so every engine keeps the SDK's contract:
answers decoded the same way, retries of 429s and dropped GETs, and a dropped POST reported
as ambiguous.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from rungen_async import (
    AmbiguousRequestError,
    AsyncRunGen,
    JobStatus,
    OutcomeKind,
    PollScheduler,
    RetryPolicy,
)
from rungen_async._http._aiohttp import AiohttpTransport
from rungen_async._http._pool import WireTransport
from rungen_async.emulator import Emulator, EmulatorServer

#: Retries at once: nothing here waits on a timer.
NO_WAIT_RETRY = RetryPolicy(max_attempts=8, initial_delay=0, max_delay=0, max_retry_after=0)

ENGINES = [
    pytest.param(("asyncio", "wire"), id="asyncio-wire"),
    pytest.param(("asyncio", "aiohttp"), id="asyncio-aiohttp"),
    pytest.param(("asyncio", "httpx"), id="asyncio-httpx"),
    pytest.param(("trio", "httpx"), id="trio-httpx"),
]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(async backend, transport) for one run of a test."""
    backend, transport = request.param
    return str(backend), str(transport)


@pytest.fixture
def anyio_backend(engine: tuple[str, str]) -> str:
    """The backend the engine runs on (aiohttp: asyncio only)."""
    return engine[0]


@pytest.fixture
def server() -> Iterator[EmulatorServer]:
    """The emulator (no warm-up, jobs of 0 s) served by uvicorn on a free loopback port."""
    with EmulatorServer(Emulator(warmup=0, job_duration=0, seed=7)) as running:
        yield running


@pytest.fixture
async def rg(engine: tuple[str, str], server: EmulatorServer) -> AsyncIterator[AsyncRunGen]:
    """A client over the engine's transport, talking to `server` with the demo key."""
    transports: dict[str, type[httpx.AsyncBaseTransport]] = {
        "wire": WireTransport,
        "aiohttp": AiohttpTransport,
        "httpx": httpx.AsyncHTTPTransport,
    }
    transport = transports[engine[1]]()
    async with AsyncRunGen(
        "rg-demo-key", base_url=server.base_url, transport=transport, retry=NO_WAIT_RETRY
    ) as client:
        yield client


async def _running_app(rg: AsyncRunGen) -> str:
    app = await rg.create_app("transports", gpu_tier="STANDARD", model_url="https://hf.co/x")
    await rg.start_app(app.id)
    return app.id


async def test_submit_and_get_job(rg: AsyncRunGen, server: EmulatorServer) -> None:
    """A job submitted over TCP is read back COMPLETED, with its result."""
    app_id = await _running_app(rg)

    job = await rg.submit_job(app_id, {"prompt": "over tcp", "width": 64, "height": 64})
    done = await rg.get_job(app_id, job.id)

    assert done.id == job.id
    assert done.status is JobStatus.COMPLETED
    assert done.image_urls[0].startswith(server.base_url)
    assert server.emulator.stats.jobs_created == 1


async def test_small_batch(rg: AsyncRunGen, server: EmulatorServer) -> None:
    """A batch of 12 jobs completes every item, each job created once."""
    app_id = await _running_app(rg)
    scheduler = PollScheduler[int](first_check=0.01, min_interval=0.01, max_interval=0.05)

    result = await rg.run_batch(
        app_id, [{"prompt": f"n={n}"} for n in range(12)], poll_rate=1000, scheduler=scheduler
    )

    assert [outcome.kind for outcome in result.outcomes] == [OutcomeKind.COMPLETED] * 12
    assert [outcome.index for outcome in result.outcomes] == list(range(12))
    assert len({outcome.job_id for outcome in result.outcomes}) == 12
    assert server.emulator.stats.jobs_created == 12


async def test_429_is_retried(rg: AsyncRunGen, server: EmulatorServer) -> None:
    """Two 429s on a job GET are retried; the third attempt answers."""
    app_id = await _running_app(rg)
    job = await rg.submit_job(app_id, {"prompt": "limited"})
    server.emulator.script_fault(
        "status", status=429, retry_after=0, count=2, routes=["GET /app/*/job/*"]
    )

    done = await rg.get_job(app_id, job.id)

    assert done.status is JobStatus.COMPLETED
    assert server.emulator.stats.faults.get("429") == 2


async def test_dropped_get_is_retried(rg: AsyncRunGen, server: EmulatorServer) -> None:
    """A GET whose connection closes before any answer is sent again, on a new connection."""
    app_id = await _running_app(rg)
    job = await rg.submit_job(app_id, {"prompt": "dropped"})
    server.emulator.script_fault("drop", routes=["GET /app/*/job/*"])

    done = await rg.get_job(app_id, job.id)

    assert done.status is JobStatus.COMPLETED
    assert server.emulator.stats.faults.get("drop") == 1


async def test_dropped_post_is_ambiguous(rg: AsyncRunGen, server: EmulatorServer) -> None:
    """A POST whose answer is lost is not re-sent by default; the error carries its key."""
    app_id = await _running_app(rg)
    server.emulator.script_fault("drop_after", routes=["POST /app/*/run_async"])

    with pytest.raises(AmbiguousRequestError) as caught:
        await rg.submit_job(app_id, {"prompt": "lost"}, idempotency_key="key-1")

    assert caught.value.idempotency_key == "key-1"
    assert server.emulator.stats.jobs_created == 1
