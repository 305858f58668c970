"""wait_for_job(), wait_for_app() and run(): adaptive polling on a fake clock."""

from __future__ import annotations

import anyio
import httpx
import pytest
import respx

from rungen_async import (
    AppFailedError,
    AppStatus,
    AppTimeoutError,
    AsyncRunGen,
    Job,
    JobFailedError,
    JobStatus,
    JobTimeoutError,
    PollPolicy,
    RetryPolicy,
    VirtualClock,
)

from . import payloads
from .conftest import API_KEY, BASE_URL

APP = payloads.APP_ID
JOB = payloads.JOB_ID
JOB_PATH = f"/app/{APP}/job/{JOB}"


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


@pytest.fixture
async def client(api: respx.Router, clock: VirtualClock) -> AsyncRunGen:
    return AsyncRunGen(
        API_KEY,
        base_url=BASE_URL,
        transport=httpx.MockTransport(api.async_handler),
        clock=clock,
        retry=RetryPolicy(initial_delay=0.1, jitter=False),
        poll=PollPolicy(initial_interval=1.0, factor=2.0, max_interval=8.0, jitter=0),
    )


async def test_wait_for_job_polls_until_terminal(
    client: AsyncRunGen, api: respx.Router, clock: VirtualClock
) -> None:
    """Checks back off (1, 2, 4 s) while nothing changes, and the result is returned."""
    times: list[float] = []
    statuses = iter(["IN_QUEUE", "IN_QUEUE", "IN_QUEUE", "COMPLETED"])

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(clock.now())
        return httpx.Response(200, json=payloads.job(next(statuses), result={"images": []}))

    api.get(JOB_PATH).mock(side_effect=answer)

    job = await client.wait_for_job(APP, JOB)

    assert job.status is JobStatus.COMPLETED
    assert job.result == {"images": []}
    assert times == [0.0, 1.0, 3.0, 7.0]


async def test_wait_for_job_speeds_up_when_the_status_moves(
    client: AsyncRunGen, api: respx.Router, clock: VirtualClock
) -> None:
    """Queued to running resets the interval to the initial one."""
    times: list[float] = []
    statuses = iter(["IN_QUEUE", "IN_QUEUE", "RUNNING", "RUNNING", "COMPLETED"])

    def answer(request: httpx.Request) -> httpx.Response:
        times.append(clock.now())
        return httpx.Response(200, json=payloads.job(next(statuses)))

    api.get(JOB_PATH).mock(side_effect=answer)

    await client.wait_for_job(APP, JOB)

    assert times == [0.0, 1.0, 3.0, 4.0, 6.0]


async def test_wait_for_a_fresh_job_waits_before_the_first_check(
    client: AsyncRunGen, api: respx.Router, clock: VirtualClock
) -> None:
    """Given the Job from submit_job, the first check comes after the initial interval."""
    api.post(f"/app/{APP}/run_async").respond(201, json=payloads.submitted_bare())
    route = api.get(JOB_PATH).respond(200, json=payloads.job("COMPLETED"))

    job = await client.run(APP, {"prompt": "x"})

    assert job.status is JobStatus.COMPLETED
    assert route.call_count == 1
    assert clock.now() == 1.0


@pytest.mark.parametrize("status", ["FAILED", "CANCELED"])
async def test_wait_for_job_raises_for_failed_jobs(
    client: AsyncRunGen, api: respx.Router, status: str
) -> None:
    """A job ending FAILED or CANCELED raises JobFailedError carrying it."""
    api.get(JOB_PATH).respond(200, json=payloads.job(status, error="CUDA out of memory"))

    with pytest.raises(JobFailedError, match=status) as caught:
        await client.wait_for_job(APP, JOB)

    assert caught.value.job.status == status
    assert caught.value.job.error == "CUDA out of memory"


async def test_transient_errors_during_a_wait_are_retried(
    client: AsyncRunGen, api: respx.Router
) -> None:
    """A 503 or 429 in the middle of a wait does not fail it."""
    api.get(JOB_PATH).mock(
        side_effect=[
            httpx.Response(200, json=payloads.job("RUNNING")),
            httpx.Response(503),
            httpx.Response(429, headers={"retry-after": "1"}),
            httpx.Response(200, json=payloads.job("COMPLETED")),
        ]
    )

    job = await client.wait_for_job(APP, JOB)

    assert job.status is JobStatus.COMPLETED


async def test_wait_deadline_says_how_to_reattach(
    client: AsyncRunGen, api: respx.Router, clock: VirtualClock
) -> None:
    """Past its deadline a wait raises JobTimeoutError naming app and job to re-attach."""
    api.get(JOB_PATH).respond(200, json=payloads.job("RUNNING"))

    with pytest.raises(JobTimeoutError) as caught:
        await client.wait_for_job(APP, JOB, deadline=5.0)

    error = caught.value
    assert (error.app_id, error.job_id) == (APP, JOB)
    assert "keeps running remotely" in str(error)
    assert f"wait_for_job({APP!r}, {JOB!r})" in str(error)
    assert error.job is not None
    assert error.job.status is JobStatus.RUNNING
    assert clock.now() == 5.0
    assert isinstance(error, TimeoutError)


async def test_on_update_sees_every_state(client: AsyncRunGen, api: respx.Router) -> None:
    """The observer is called with each state the wait sees."""
    api.get(JOB_PATH).mock(
        side_effect=[
            httpx.Response(200, json=payloads.job("IN_QUEUE")),
            httpx.Response(200, json=payloads.job("RUNNING")),
            httpx.Response(200, json=payloads.job("COMPLETED")),
        ]
    )
    seen: list[str] = []

    await client.wait_for_job(APP, JOB, on_update=lambda job: seen.append(job.status.value))

    assert seen == ["QUEUED", "RUNNING", "COMPLETED"]


async def test_wait_for_app_until_running(
    client: AsyncRunGen, api: respx.Router, clock: VirtualClock
) -> None:
    """wait_for_app() polls an INITIALIZING app until it is RUNNING."""
    api.get(f"/app/{APP}").mock(
        side_effect=[
            httpx.Response(200, json=payloads.app("INITIALIZING", active_workers=1)),
            httpx.Response(200, json=payloads.app("INITIALIZING", active_workers=1)),
            httpx.Response(200, json=payloads.app("RUNNING", active_workers=1)),
        ]
    )

    app = await client.wait_for_app(APP)

    assert app.status is AppStatus.RUNNING
    assert clock.now() == 3.0


async def test_wait_for_a_stopped_app_says_to_start_it(
    client: AsyncRunGen, api: respx.Router
) -> None:
    """A STOPPED app with no workers will never run: the error says so at once."""
    api.get(f"/app/{APP}").respond(200, json=payloads.app("STOPPED", active_workers=0))

    with pytest.raises(AppFailedError, match="start_app"):
        await client.wait_for_app(APP)


async def test_wait_for_app_deadline(client: AsyncRunGen, api: respx.Router) -> None:
    """An app still initializing at the deadline raises AppTimeoutError."""
    api.get(f"/app/{APP}").respond(200, json=payloads.app("INITIALIZING", active_workers=1))

    with pytest.raises(AppTimeoutError, match="INITIALIZING"):
        await client.wait_for_app(APP, deadline=4.0)


async def test_caller_cancel_scope_ends_a_wait(client: AsyncRunGen, api: respx.Router) -> None:
    """Cancelling the caller's scope ends the wait at once; no further check is sent."""
    route = api.get(JOB_PATH).respond(200, json=payloads.job("RUNNING"))

    with anyio.CancelScope() as scope:

        def observe(job: Job) -> None:
            if route.call_count == 3:
                scope.cancel()

        await client.wait_for_job(APP, JOB, on_update=observe)

    assert scope.cancelled_caught
    assert route.call_count == 3


def test_poll_policy_intervals_grow_to_the_cap() -> None:
    """Intervals multiply by factor up to max_interval; jitter stays within its fraction."""
    policy = PollPolicy(initial_interval=1.0, factor=3.0, max_interval=5.0, jitter=0.1)

    assert policy.next_interval(1.0) == 3.0
    assert policy.next_interval(3.0) == 5.0
    assert all(0.9 <= policy.spread(1.0) <= 1.1 for _ in range(100))
