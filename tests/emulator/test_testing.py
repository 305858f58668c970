"""The user test kit: FakeRunGen, its transport and its fake clock, used as the README shows."""

from __future__ import annotations

import anyio
import httpx
import pytest

from rungen_async import (
    AmbiguousRequestError,
    AsyncRunGen,
    ConflictError,
    JobStatus,
    NotFoundError,
    RateLimitError,
    RetryPolicy,
)
from rungen_async.emulator import Accounts, read_png_header
from rungen_async.testing import EmulatorTransport, FakeClock, FakeRunGen

from ._helpers import ACCOUNTS_CONFIG, BOB_KEY

FAST_RETRY = RetryPolicy(initial_delay=0.5, max_delay=1, jitter=False)


async def test_fake_clock_sleep_advances_time() -> None:
    """sleep() jumps the time; advance() too; neither waits."""
    clock = FakeClock()

    with anyio.fail_after(1):
        await clock.sleep(3600)
    clock.advance(1.5)

    assert clock.now() == 3601.5
    with pytest.raises(ValueError, match="back"):
        clock.advance(-1)


async def test_plain_httpx_client_through_the_transport() -> None:
    """Any httpx.AsyncClient works on EmulatorTransport."""
    fake = FakeRunGen()

    async with fake.http_client() as http:
        response = await http.get("/app")

    assert response.status_code == 200
    assert response.json() == {"data": []}
    assert fake.requests[0].headers.get("x-api-key") is None


async def test_submit_and_finish_with_the_client() -> None:
    """The README flow: submit, finish all jobs, read a COMPLETED job and its image."""
    fake = FakeRunGen(job_duration=30)
    app_id = fake.create_app()

    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a red fox"})
        assert job.status.is_pending or job.status.is_active
        assert fake.finish_all_jobs() == 30
        job = await rg.get_job(app_id, job.id)
        async with fake.http_client() as http:
            image = await http.get(job.image_urls[0], headers={"x-api-key": ""})

    assert job.status is JobStatus.COMPLETED
    assert job.execution_time == 30.0
    assert read_png_header(image.content)[:2] == (128, 128)
    assert fake.stats.jobs_created == 1
    submitted = fake.requests_to("POST", "/app/*/run_async")
    assert [record.json for record in submitted] == [{"input": {"prompt": "a red fox"}}]
    assert "idempotency-key" in submitted[0].headers


async def test_every_endpoint_through_the_client() -> None:
    """create, list, get, start, submit, get job, cancel, stop and delete all work."""
    fake = FakeRunGen(warmup=60, job_duration=5)

    async with fake.client() as rg:
        app = await rg.create_app("demo", gpu_tier="STANDARD", model_url="https://hf.co/x")
        started = await rg.start_app(app.id, 2)
        fake.advance(60)
        ready = await rg.get_app(app.id)
        listed = await rg.list_apps()
        first = await rg.submit_job(app.id, {"prompt": "a"})
        second = await rg.submit_job(app.id, {"prompt": "b", "_duration": 100})
        fake.advance(5)
        done = await rg.get_job(app.id, first.id)
        canceled = await rg.cancel_job(app.id, second.id)
        with pytest.raises(ConflictError):
            await rg.cancel_job(app.id, first.id)
        await rg.stop_app(app.id)
        await rg.delete_app(app.id)
        with pytest.raises(NotFoundError):
            await rg.get_app(app.id)

    assert app.status is not None
    assert app.status.value == "STOPPED"
    assert started.status is not None
    assert started.status.value == "INITIALIZING"
    assert ready.status is not None
    assert ready.status.is_ready
    assert [a.id for a in listed] == [app.id]
    assert done.status is JobStatus.COMPLETED
    assert canceled.status is JobStatus.CANCELED
    headers = fake.requests_to("PUT", f"/app/{app.id}/job/*")[0].headers
    assert headers["x-authenticated-user-id"] == fake.user_id


async def test_failed_jobs_scripted_and_by_input() -> None:
    """fail_next_job() and fail_job(n) make jobs FAILED with the error message."""
    fake = FakeRunGen()
    app_id = fake.create_app(active_workers=3)
    fake.fail_next_job("CUDA out of memory")
    fake.fail_job(3, "third")

    async with fake.client() as rg:
        jobs = [await rg.submit_job(app_id, {"prompt": str(n)}) for n in range(3)]
        fake.finish_all_jobs()
        jobs = [await rg.get_job(app_id, job.id) for job in jobs]

    assert [job.status for job in jobs] == [
        JobStatus.FAILED,
        JobStatus.COMPLETED,
        JobStatus.FAILED,
    ]
    assert [job.error for job in jobs] == ["CUDA out of memory", None, "third"]


async def test_scripted_429_is_retried_on_the_fake_clock() -> None:
    """A 429 with Retry-After pauses the client on the fake clock, then it succeeds."""
    fake = FakeRunGen()
    fake.fail_next_requests(429, count=2, retry_after=30)

    with anyio.fail_after(5):
        async with fake.client(retry=FAST_RETRY) as rg:
            apps = await rg.list_apps()

    assert apps == []
    assert [record.status for record in fake.requests] == [429, 429, 200]
    assert fake.clock.now() >= 60


async def test_retries_run_out() -> None:
    """When every attempt fails the client raises the last error."""
    fake = FakeRunGen()
    fake.fail_next_requests(429, count=10)

    async with fake.client(retry=RetryPolicy(max_attempts=3, jitter=False)) as rg:
        with pytest.raises(RateLimitError):
            await rg.list_apps()

    assert len(fake.requests) == 3


async def test_dropped_submit_is_ambiguous_and_replays_safely() -> None:
    """A submit whose answer is lost raises AmbiguousRequestError; re-sending it with its
    key returns the original job and creates no second one."""
    fake = FakeRunGen()
    app_id = fake.create_app()
    fake.fail_next_requests("drop_after", route="POST /app/*/run_async")

    async with fake.client() as rg:
        with pytest.raises(AmbiguousRequestError) as caught:
            await rg.submit_job(app_id, {"prompt": "once"})
        job = await rg.submit_job(
            app_id, {"prompt": "once"}, idempotency_key=caught.value.idempotency_key
        )

    assert fake.jobs_created == 1
    assert fake.stats.idempotent_replays == 1
    assert fake.job_input(job.id) == {"prompt": "once"}


async def test_refused_connection_is_retried() -> None:
    """A "connect" fault raises httpx.ConnectError, which the client may safely retry."""
    fake = FakeRunGen()
    app_id = fake.create_app()
    fake.fail_next_requests("connect", count=2)

    async with fake.client(retry=FAST_RETRY) as rg:
        job = await rg.submit_job(app_id, {"prompt": "x"})

    assert fake.jobs_created == 1
    assert fake.job_status(job.id) in {"QUEUED", "RUNNING"}


async def test_transport_raises_httpx_errors() -> None:
    """Dropped connections surface as httpx transport errors."""
    fake = FakeRunGen()
    fake.fail_next_requests("drop")
    fake.fail_next_requests("connect")

    async with fake.http_client() as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/app")
        with pytest.raises(httpx.ConnectError):
            await http.get("/app")


async def test_slow_responses_sleep_on_the_fake_clock() -> None:
    """A slow response moves the fake clock, not the real one."""
    fake = FakeRunGen()
    fake.slow_next_requests(120)

    with anyio.fail_after(1):
        async with fake.http_client() as http:
            await http.get("/app")

    assert fake.clock.now() == 120


async def test_team_scope_through_the_client() -> None:
    """A team view creates team apps; the personal scope does not see them."""
    fake = FakeRunGen(accounts=Accounts.from_dict(ACCOUNTS_CONFIG))
    acme = fake.accounts.team_named("acme").id

    async with fake.client(BOB_KEY) as rg:
        team = rg.with_team(acme)
        app = await team.create_app("team-app", gpu_tier="BASIC", model_url="https://hf.co/x")
        assert [a.id for a in await team.list_apps()] == [app.id]
        assert await rg.list_apps() == []
        with pytest.raises(NotFoundError):
            await rg.get_app(app.id)

    assert app.owner_team_id == acme


@pytest.mark.parametrize("variants", ["alternate", "mixed"])
async def test_client_tolerates_every_variant(variants: str) -> None:
    """The client reads the alternate and mixed response shapes."""
    fake = FakeRunGen(variants=variants)  # type: ignore[arg-type]

    async with fake.client() as rg:
        app = await rg.create_app("v", gpu_tier="STANDARD", model_url="https://hf.co/x")
        await rg.start_app(app.id)
        job = await rg.submit_job(app.id, {"prompt": "p"})
        fake.finish_all_jobs()
        done = await rg.get_job(app.id, job.id)
        got = await rg.get_app(app.id)

    assert done.status is JobStatus.COMPLETED
    assert done.image_urls
    assert got.jobs is not None
    assert got.jobs.completed == 1


async def test_ten_thousand_jobs_in_flight() -> None:
    """10,000 jobs queue on one app and all finish through the fake clock."""
    fake = FakeRunGen(job_duration=2)
    app_id = fake.create_app(active_workers=8, gpu_tier="PERFORMANCE")
    transport = EmulatorTransport(fake.emulator)
    body = b'{"input": {"prompt": "many"}}'

    async with httpx.AsyncClient(
        transport=transport, base_url=fake.base_url, headers={"x-api-key": fake.api_key}
    ) as http:
        for _ in range(10_000):
            response = await http.post(f"/app/{app_id}/run_async", content=body)
            assert response.status_code == 201
        in_flight = fake.stats
        seconds = fake.finish_all_jobs()
        done = fake.stats

    assert in_flight.jobs_queued + in_flight.jobs_running == 10_000
    assert seconds == pytest.approx(10_000 / 8 * 1.0)
    assert done.jobs_completed == 10_000
    assert done.jobs_queued == done.jobs_running == 0


async def test_client_builds_on_any_asyncrungen_kwargs() -> None:
    """client() passes keyword arguments through and returns an AsyncRunGen."""
    fake = FakeRunGen()

    client = fake.client(team_id=fake.team_id)

    assert isinstance(client, AsyncRunGen)
    assert client.team_id == fake.team_id
    assert client.clock is fake.clock
    await client.aclose()


async def test_client_paces_itself_under_the_rate_limit() -> None:
    """With a per-key limit of 2/s, the client's calls all succeed by honouring Retry-After."""
    fake = FakeRunGen()
    fake.set_faults(rate_limit=2)

    async with fake.client(retry=FAST_RETRY) as rg:
        for _ in range(10):
            await rg.list_apps()

    statuses = [record.status for record in fake.requests]
    assert statuses.count(200) == 10
    assert 429 in statuses
    assert fake.stats.faults["rate_limit"] == statuses.count(429)
    assert fake.clock.now() >= 4
