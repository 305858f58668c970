"""
A test kit for code that uses rungen_async: an in-process RunGen API on a fake clock.

    fake = FakeRunGen()
    app_id = fake.create_app()                       # RUNNING at once, one worker
    async with fake.client() as rg:                  # an AsyncRunGen, no sockets
        job = await rg.submit_job(app_id, {"prompt": "a fox"})
        fake.finish_all_jobs()                       # jump the clock; nothing sleeps
        job = await rg.get_job(app_id, job.id)

`FakeRunGen` runs the same `rungen_async.emulator.Emulator` as the local server, through
`EmulatorTransport` (an httpx transport that calls it directly). Time is a `FakeClock`: the
client's retries and waits sleep on it, and sleeping only moves it forward.

For respx users, `respx_mock()` is ``respx.mock(using="rungen")``: a respx mocker registered
for the SDK's one exit to the network, so routes see every request of every `AsyncRunGen`
whatever its engine (respx itself is imported only then).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import anyio.lowlevel
import httpx

from ._clock import VirtualClock
from .emulator import (
    DEMO_TEAM_NAME,
    DEMO_USER_NAME,
    Accounts,
    Emulator,
    EmulatorRequest,
    EmulatorStats,
    FaultConfig,
    RecordedRequest,
    Variants,
)

if TYPE_CHECKING:
    import respx

    from ._client import AsyncRunGen
    from ._clock import Clock

__all__ = ["EmulatorTransport", "FakeClock", "FakeRunGen", "RecordedRequest", "respx_mock"]

DEFAULT_BASE_URL = "https://rungen.test"
#: ``created_at`` of the first request a `FakeRunGen` sees, so that timestamps repeat.
DEFAULT_START_TIME = datetime(2025, 1, 1, tzinfo=UTC)


class FakeClock(VirtualClock):
    """
    A `rungen_async.Clock` whose time moves only when every task waits on it, or by hand.

    ``await sleep(s)`` never waits for real: once the other tasks have run to their next
    wait, the earliest sleeper moves the time forward to its wake-up. Concurrent sleepers
    wake in the order real time would give. `advance()` moves the time by hand.
    """


class EmulatorTransport(httpx.AsyncBaseTransport):
    """An httpx transport that hands each request to an `Emulator`, with no socket.

    Injected latency is slept on *clock* (the emulator's by default). A dropped connection
    raises ``httpx.RemoteProtocolError``; a refused one (``"connect"``) ``httpx.ConnectError``,
    which tells a client the request was never sent.
    """

    def __init__(self, emulator: Emulator, *, clock: Clock | None = None) -> None:
        self.emulator = emulator
        self.clock = clock or emulator.clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Answer *request* from the emulator."""
        body = await request.aread()
        await anyio.lowlevel.checkpoint()  # as a real round trip would, let others run
        url = request.url
        port = f":{url.port}" if url.port else ""
        response = self.emulator.handle(
            EmulatorRequest(
                method=request.method,
                path=url.path,
                headers=dict(request.headers.items()),
                body=body,
                query=url.query.decode("ascii", "replace"),
                base_url=f"{url.scheme}://{url.host}{port}",
            )
        )
        if response.delay > 0:
            await self.clock.sleep(response.delay)
        if response.drop == "connect":
            raise httpx.ConnectError("connection refused (injected fault)", request=request)
        if response.drop is not None:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(
            response.status, headers=list(response.headers), content=response.body, request=request
        )


Outcome = int | Literal["drop", "drop_after", "connect"]


class FakeRunGen:
    """An in-process RunGen API for tests: accounts, apps and jobs on a `FakeClock`.

    The demo account is always there: `api_key` (user `user_id`, owner of team `team_id`).
    Pass *accounts* (`rungen_async.emulator.Accounts`) to add users and teams.

    Args:
        warmup: Seconds a started app stays INITIALIZING (0: RUNNING at once).
        job_duration: Seconds a job takes on a STANDARD worker; a job's input
            ``_duration`` overrides it, ``_fail`` (true or a message) makes it fail.
        variants: Which documented response shapes to serve; ``"alternate"`` and
            ``"mixed"`` exercise a client's tolerance of the API's inconsistencies.
        idempotency_keys: Honour ``Idempotency-Key`` on POSTs, an emulator extra the RunGen
            API does not document; pass ``False`` to test against the API as documented.
    """

    def __init__(
        self,
        *,
        accounts: Accounts | None = None,
        warmup: float = 0.0,
        job_duration: float = 1.0,
        variants: Variants = "reference",
        seed: int = 0,
        base_url: str = DEFAULT_BASE_URL,
        start_time: datetime = DEFAULT_START_TIME,
        idempotency_keys: bool = True,
    ) -> None:
        self.clock = FakeClock()
        self.emulator = Emulator(
            accounts=accounts,
            clock=self.clock,
            warmup=warmup,
            job_duration=job_duration,
            variants=variants,
            seed=seed,
            max_records=None,
            start_time=start_time,
            idempotency_keys=idempotency_keys,
        )
        self.transport = EmulatorTransport(self.emulator, clock=self.clock)
        self.base_url = base_url
        self.accounts = self.emulator.accounts
        demo = self.accounts.user_named(DEMO_USER_NAME)
        self.api_key: str = demo.api_keys[0]
        self.user_id: str = demo.id
        self.team_id: str = self.accounts.team_named(DEMO_TEAM_NAME).id

    def __repr__(self) -> str:
        return f"<FakeRunGen {self.emulator!r} {self.clock!r}>"

    # -- clients ----------------------------------------------------------------------------

    def client(self, api_key: str | None = None, **kwargs: Any) -> AsyncRunGen:
        """An `AsyncRunGen` wired to this fake: its transport, its clock, the key's user id.

        *kwargs* go to `AsyncRunGen` (``team_id``, ``retry``, ...); open it with ``async with``.
        """
        from ._client import AsyncRunGen  # the client imports nothing from here

        key = api_key or self.api_key
        user = self.accounts.authenticate(key)
        kwargs.setdefault("base_url", self.base_url)
        kwargs.setdefault("transport", self.transport)
        kwargs.setdefault("clock", self.clock)
        if user is not None:
            kwargs.setdefault("user_id", user.id)
        return AsyncRunGen(key, **kwargs)

    def http_client(self, api_key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        """A plain ``httpx.AsyncClient`` on this fake, sending *api_key* (the demo key)."""
        headers = {"x-api-key": api_key or self.api_key, **kwargs.pop("headers", {})}
        return httpx.AsyncClient(
            transport=self.transport, base_url=self.base_url, headers=headers, **kwargs
        )

    def key_of(self, user_name: str) -> str:
        """The first API key of the user called *user_name*."""
        return self.accounts.user_named(user_name).api_keys[0]

    # -- arranging ----------------------------------------------------------------------------

    def create_app(
        self,
        name: str = "test-app",
        *,
        active_workers: int = 1,
        gpu_tier: str = "STANDARD",
        model_url: str = "https://huggingface.co/black-forest-labs/FLUX.1-schnell",
        team_id: str | None = None,
        api_key: str | None = None,
        job_duration: float | None = None,
    ) -> str:
        """Create an app directly (unrecorded, unfaulted) and return its id.

        With the default warm-up of 0 and *active_workers* >= 1 it is RUNNING at once.
        *job_duration* overrides the fake's per-job seconds for this app.
        """
        configuration: dict[str, Any] = {"gpu_tier": gpu_tier, "active_workers": active_workers}
        if job_duration is not None:
            configuration["_job_duration"] = job_duration
        body = {"name": name, "configuration": configuration, "workflow": {"model_url": model_url}}
        headers = {"x-api-key": api_key or self.api_key}
        if team_id is not None:
            headers["x-team-id"] = team_id
        request = EmulatorRequest(
            method="POST", path="/app", headers=headers, body=json.dumps(body).encode()
        )
        response = self.emulator.handle(request, internal=True)
        if response.status != 201:
            raise ValueError(f"could not create the app: {response.json()}")
        created = response.json()
        return str(created.get("data", created)["id"])

    def fail_next_job(self, message: str = "job failed (scripted)", *, count: int = 1) -> None:
        """Make the next *count* jobs submitted end FAILED, with *message* as their error."""
        self.emulator.fail_next_jobs(count, message)

    def fail_job(self, number: int, message: str = "job failed (scripted)") -> None:
        """Make the *number*-th job submitted (counting from 1) end FAILED."""
        self.emulator.fail_job(number, message)

    def fail_next_requests(
        self,
        outcome: Outcome = 500,
        *,
        count: int = 1,
        route: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next *count* API requests fail.

        Args:
            outcome: An HTTP status (a 429 carries ``Retry-After``, 0 unless given), or
                ``"drop"`` (connection lost, request not handled), ``"drop_after"``
                (request handled, response lost) or ``"connect"`` (connection refused).
            route: Only requests matching this pattern count, e.g.
                ``"POST /app/*/run_async"`` or ``"/app/*"`` (any method).
        """
        routes = () if route is None else (route,)
        if isinstance(outcome, int):
            self.emulator.script_fault(
                "status", count=count, status=outcome, retry_after=retry_after, routes=routes
            )
        else:
            self.emulator.script_fault(outcome, count=count, routes=routes)

    def slow_next_requests(
        self, seconds: float, *, count: int = 1, route: str | None = None
    ) -> None:
        """Answer the next *count* API requests *seconds* late (on the fake clock)."""
        routes = () if route is None else (route,)
        self.emulator.script_fault("slow", count=count, seconds=seconds, routes=routes)

    def set_faults(self, config: FaultConfig | None = None, **settings: Any) -> FaultConfig:
        """Set random faults (see `rungen_async.emulator.FaultConfig`), seeded, so repeatable."""
        return self.emulator.set_faults(config, **settings)

    # -- time -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the fake time *seconds* forward; apps warm up and jobs progress."""
        self.clock.advance(seconds)

    def finish_all_jobs(self) -> float:
        """Jump to when every job that can finish has; return the seconds jumped.

        Jobs queued on an app without workers stay queued.
        """
        seconds = self.emulator.drain_time() - self.clock.now()
        self.clock.advance(seconds)
        return seconds

    # -- inspecting ---------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request the clients sent, oldest first (without the API key)."""
        return self.emulator.requests

    def requests_to(self, method: str | None = None, path: str = "*") -> list[RecordedRequest]:
        """The requests with *method* (any if None) whose path matches the pattern *path*."""
        return [
            record
            for record in self.emulator.requests
            if (method is None or record.method == method) and fnmatchcase(record.path, path)
        ]

    @property
    def stats(self) -> EmulatorStats:
        """Counters: requests, apps and jobs created, jobs by state, replays, faults."""
        return self.emulator.stats

    @property
    def jobs_created(self) -> int:
        """How many jobs were really created (idempotent replays create none)."""
        return self.emulator.api.jobs_created

    def job_status(self, job_id: str) -> str:
        """The state of job *job_id* right now: QUEUED, RUNNING, COMPLETED, FAILED, CANCELED."""
        return self.emulator.job(job_id).state.value

    def app_status(self, app_id: str) -> str:
        """The status of app *app_id* right now: STOPPED, INITIALIZING or RUNNING."""
        return self.emulator.app(app_id).status

    def job_input(self, job_id: str) -> Mapping[str, Any]:
        """The input job *job_id* was submitted with."""
        return self.emulator.job(job_id).input


# -- respx ------------------------------------------------------------------------------------


def respx_mock(**kwargs: Any) -> respx.MockRouter:
    """
    ``respx.mock(using="rungen", **kwargs)``: mock the RunGen API for every `AsyncRunGen`.

    The SDK's own engines bypass httpcore, which a plain ``respx.mock`` patches; this mocker
    patches the client's one exit to the network instead, on any engine, asyncio or trio.
    Use it as respx's own (``with respx_mock(base_url=...) as api:``, or as a decorator).
    Once this function or `RespxMocker` was used, ``respx.mock(using="rungen")`` works too.
    """
    import respx

    _respx_mocker()
    router: respx.MockRouter = respx.mock(using="rungen", **kwargs)
    return router


def __getattr__(name: str) -> Any:
    if name == "RespxMocker":
        return _respx_mocker()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _respx_mocker() -> type:
    """Define (and so register with respx) the mocker for ``using="rungen"``."""
    from respx.mocks import AbstractRequestMocker

    from ._http._reply import read_reply
    from ._http._send import Core

    class RespxMocker(AbstractRequestMocker):
        """respx's mocker for `rungen_async`: patches ``Core.send``, the one way out."""

        name = "rungen"
        targets: ClassVar[list[str]] = [f"{Core.__module__}.Core"]
        target_methods: ClassVar[list[str]] = ["send"]

        @classmethod
        def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
            return httpx.Request(
                kwargs["method"],
                kwargs["url"],
                content=kwargs["content"],
                headers=kwargs["headers"],
            )

        @classmethod
        async def from_async_httpx_response(
            cls, httpx_response: httpx.Response, target: Core, **kwargs: Any
        ) -> object:
            return await read_reply(httpx_response, target.max_body_bytes)

    return RespxMocker
