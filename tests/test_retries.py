"""Status errors, and which failures are retried on GET and on POST."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import httpx
import pytest
import respx

from rungen_async import (
    AmbiguousRequestError,
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AsyncRunGen,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ResponseValidationError,
    RetryPolicy,
    ServerError,
)
from rungen_async._http._retry import parse_retry_after

from . import payloads
from .conftest import API_KEY, BASE_URL

APP = payloads.APP_ID
JOB = payloads.JOB_ID
JOB_PATH = f"/app/{APP}/job/{JOB}"
SUBMIT_PATH = f"/app/{APP}/run_async"


class RecordingClock:
    """A clock that records the sleeps asked of it and returns at once."""

    def __init__(self) -> None:
        self.time = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float, /) -> None:
        self.sleeps.append(seconds)
        self.time += max(seconds, 0.0)


def make_client(api: respx.Router, clock: RecordingClock, **policy: object) -> AsyncRunGen:
    retry = RetryPolicy(**{"initial_delay": 1.0, "max_delay": 4.0, "jitter": False, **policy})  # type: ignore[arg-type]
    return AsyncRunGen(
        API_KEY,
        base_url=BASE_URL,
        transport=httpx.MockTransport(api.async_handler),
        retry=retry,
        clock=clock,
    )


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        pytest.param(400, BadRequestError, id="400"),
        pytest.param(401, AuthenticationError, id="401"),
        pytest.param(403, AuthenticationError, id="403"),
        pytest.param(404, NotFoundError, id="404"),
        pytest.param(409, ConflictError, id="409"),
        pytest.param(422, BadRequestError, id="422"),
        pytest.param(418, APIStatusError, id="418"),
    ],
)
async def test_status_errors_map_to_classes(
    rungen: AsyncRunGen, api: respx.Router, status: int, error_class: type[APIStatusError]
) -> None:
    """Each status raises its class carrying status, the API's text, method and path."""
    api.get(JOB_PATH).respond(status, json=payloads.error(f"no job '{JOB}'"))

    with pytest.raises(error_class) as caught:
        await rungen.get_job(APP, JOB)

    error = caught.value
    assert type(error) is error_class
    assert (error.status_code, error.error, error.method, error.path) == (
        status,
        f"no job '{JOB}'",
        "GET",
        JOB_PATH,
    )
    assert str(error).startswith(f"{status} ")
    assert f"no job '{JOB}'" in str(error)


async def test_html_error_page_reports_the_start_of_the_body(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """A proxy's HTML error page still gives a readable error with the body's start."""
    api.get(JOB_PATH).respond(400, text="<html><body>Bad Gateway Config</body></html>")

    with pytest.raises(BadRequestError, match="Bad Gateway Config"):
        await rungen.get_job(APP, JOB)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"<html>oops</html>", id="html"),
        pytest.param(b'{"data": {"id": "j', id="truncated"),
    ],
)
async def test_unparseable_success_body_names_status_and_body(
    rungen: AsyncRunGen, api: respx.Router, body: bytes
) -> None:
    """A 200 that is not JSON raises ResponseValidationError with status and body start."""
    api.get(JOB_PATH).respond(200, content=body)

    with pytest.raises(ResponseValidationError) as caught:
        await rungen.get_job(APP, JOB)

    assert caught.value.status_code == 200
    assert "200" in str(caught.value)
    assert body.decode()[:5] in str(caught.value)


async def test_body_that_does_not_fit_the_model_is_a_validation_error(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """JSON that is not a job (no id at all) is reported, not crashed on."""
    api.get(JOB_PATH).respond(200, json={"data": {"status": "COMPLETED"}})

    with pytest.raises(ResponseValidationError, match="Job"):
        await rungen.get_job(APP, JOB)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_get_retries_transient_statuses(api: respx.Router, status: int) -> None:
    """A GET is retried after each retryable status, with exponential back-off."""
    clock = RecordingClock()
    route = api.get(JOB_PATH).mock(
        side_effect=[
            httpx.Response(status, json=payloads.error("busy")),
            httpx.Response(status, json=payloads.error("busy")),
            httpx.Response(200, json=payloads.job("RUNNING")),
        ]
    )

    async with make_client(api, clock) as client:
        job = await client.get_job(APP, JOB)

    assert job.status == "RUNNING"
    assert route.call_count == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_get_gives_up_after_max_attempts(api: respx.Router) -> None:
    """After max_attempts the last error is raised."""
    clock = RecordingClock()
    route = api.get(JOB_PATH).respond(502, json=payloads.error("bad gateway"))

    async with make_client(api, clock, max_attempts=3) as client:
        with pytest.raises(ServerError, match="bad gateway"):
            await client.get_job(APP, JOB)

    assert route.call_count == 3


@pytest.mark.parametrize(
    ("exception", "error_class"),
    [
        pytest.param(httpx.ConnectError("refused"), APIConnectionError, id="connect"),
        pytest.param(httpx.ReadTimeout("slow"), APITimeoutError, id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("dropped"), APIConnectionError, id="dropped"),
    ],
)
async def test_get_retries_transport_errors_then_translates(
    api: respx.Router, exception: Exception, error_class: type[Exception]
) -> None:
    """Transport failures are retried on GET, then raised as the SDK's own error."""
    clock = RecordingClock()
    route = api.get(JOB_PATH).mock(side_effect=exception)

    async with make_client(api, clock, max_attempts=2) as client:
        with pytest.raises(error_class) as caught:
            await client.get_job(APP, JOB)

    assert route.call_count == 2
    assert isinstance(caught.value.__cause__, type(exception))


async def test_timeout_error_is_also_a_builtin_timeout(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """APITimeoutError can be caught as TimeoutError."""
    api.get(JOB_PATH).mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(TimeoutError):
        await rungen.get_job(APP, JOB)


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(httpx.ConnectError("refused"), id="connect-refused"),
        pytest.param(httpx.ConnectTimeout("no answer"), id="connect-timeout"),
        pytest.param(httpx.PoolTimeout("pool"), id="pool-timeout"),
        pytest.param(httpx.Response(429, headers={"retry-after": "2"}), id="429"),
        pytest.param(httpx.Response(503, headers={"retry-after": "1"}), id="503-retry-after"),
        pytest.param(httpx.Response(408), id="408"),
    ],
)
async def test_post_is_retried_when_provably_not_processed(
    api: respx.Router, first: httpx.Response | Exception
) -> None:
    """A submit is re-sent only when the first try never ran, under the same key."""
    clock = RecordingClock()
    route = api.post(SUBMIT_PATH).mock(
        side_effect=[first, httpx.Response(201, json=payloads.submitted_bare())]
    )

    async with make_client(api, clock) as client:
        job = await client.submit_job(APP, {"prompt": "x"})

    assert job.id == JOB
    keys = {call.request.headers["idempotency-key"] for call in route.calls}
    assert route.call_count == 2
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("first", "status"),
    [
        pytest.param(httpx.ReadTimeout("after send"), None, id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("dropped"), None, id="dropped"),
        pytest.param(httpx.WriteError("half sent"), None, id="write-error"),
        pytest.param(httpx.Response(500), 500, id="500"),
        pytest.param(httpx.Response(502), 502, id="502"),
        pytest.param(httpx.Response(504), 504, id="504"),
        pytest.param(httpx.Response(503), 503, id="503-no-retry-after"),
    ],
)
async def test_ambiguous_post_is_not_retried_and_carries_its_key(
    api: respx.Router, first: httpx.Response | Exception, status: int | None
) -> None:
    """An outcome-unknown submit raises AmbiguousRequestError with the key; nothing re-sent."""
    clock = RecordingClock()
    route = api.post(SUBMIT_PATH).mock(side_effect=[first])

    async with make_client(api, clock) as client:
        with pytest.raises(AmbiguousRequestError) as caught:
            await client.submit_job(APP, {"prompt": "x"})

    assert route.call_count == 1
    error = caught.value
    assert error.idempotency_key == route.calls.last.request.headers["idempotency-key"]
    assert error.status_code == status
    assert error.idempotency_key in str(error)


async def test_ambiguous_post_is_retried_under_the_same_key_when_opted_in(
    api: respx.Router,
) -> None:
    """retry_ambiguous_posts=True re-sends after a 500, with the same idempotency key."""
    clock = RecordingClock()
    route = api.post(SUBMIT_PATH).mock(
        side_effect=[
            httpx.ReadTimeout("after send"),
            httpx.Response(500),
            httpx.Response(201, json=payloads.submitted_bare()),
        ]
    )

    async with make_client(api, clock, retry_ambiguous_posts=True) as client:
        job = await client.submit_job(APP, {"prompt": "x"})

    assert job.id == JOB
    assert len({call.request.headers["idempotency-key"] for call in route.calls}) == 1
    assert route.call_count == 3


async def test_post_client_errors_are_not_retried(api: respx.Router) -> None:
    """A 400 on submit is raised at once."""
    clock = RecordingClock()
    route = api.post(SUBMIT_PATH).respond(400, json=payloads.error("input is required"))

    async with make_client(api, clock) as client:
        with pytest.raises(BadRequestError, match="input is required"):
            await client.submit_job(APP, {})

    assert route.call_count == 1


async def test_retry_after_seconds_is_honoured_and_capped(api: respx.Router) -> None:
    """Retry-After decides the delay, up to max_retry_after."""
    clock = RecordingClock()
    api.get(JOB_PATH).mock(
        side_effect=[
            httpx.Response(429, headers={"retry-after": "3"}),
            httpx.Response(503, headers={"retry-after": "120"}),
            httpx.Response(200, json=payloads.job("RUNNING")),
        ]
    )

    async with make_client(api, clock, max_retry_after=10) as client:
        await client.get_job(APP, JOB)

    assert clock.sleeps == [3.0, 10.0]


def test_retry_after_http_date_is_read() -> None:
    """Retry-After as an HTTP-date counts from now."""
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)

    assert parse_retry_after("Thu, 01 Jan 2026 12:00:07 GMT", now=now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon", now=now) is None


def test_backoff_uses_full_jitter_under_the_cap() -> None:
    """Jittered delays stay within [0, cap], and the cap doubles up to max_delay."""
    policy = RetryPolicy(initial_delay=1.0, max_delay=5.0)

    delays = [policy.backoff(attempt) for attempt in (1, 2, 3, 4) for _ in range(50)]

    assert all(0 <= delay <= 5.0 for delay in delays)
    assert max(policy.backoff(1) for _ in range(50)) <= 1.0


def test_retry_policy_rejects_nonsense() -> None:
    """A policy with no attempts or negative delays is refused at construction."""
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_delay"):
        RetryPolicy(initial_delay=-1)


async def test_each_retry_is_logged_at_info(
    api: respx.Router, caplog: pytest.LogCaptureFixture
) -> None:
    """A retry logs method, path, reason and delay on the rungen_async logger."""
    clock = RecordingClock()
    api.get(JOB_PATH).mock(
        side_effect=[httpx.Response(503), httpx.Response(200, json=payloads.job())]
    )
    caplog.set_level(logging.INFO, logger="rungen_async")

    async with make_client(api, clock) as client:
        await client.get_job(APP, JOB)

    (record,) = caplog.records
    assert record.name == "rungen_async"
    assert record.levelno == logging.INFO
    assert f"GET {JOB_PATH}" in record.getMessage()
    assert "503" in record.getMessage()
