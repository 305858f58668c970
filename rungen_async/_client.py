"""AsyncRunGen: the client's lifecycle, its one request path, and a method per endpoint."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import attrs
import httpx

from ._clock import Clock, SystemClock
from ._config import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_KEEPALIVE_CONNECTIONS,
    DEFAULT_POOL_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    ENV_API_KEY,
    ENV_BASE_URL,
    ENV_TEAM_ID,
    ENV_USER_ID,
)
from ._download import download as download_outputs
from ._http._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES
from ._http._retry import RetryPolicy
from ._http._select import default_transport
from ._http._send import CallOptions, Core
from ._models import App, GpuTier, Job, Lora
from ._polling import JobObserver, PollPolicy, wait_for_app, wait_for_job
from ._serde import structure, structure_job, structure_list
from ._validation import (
    check_api_key,
    check_base_url,
    check_gpu_tier,
    check_header_value,
    check_id,
    check_model_url,
    check_text,
    check_workers,
    encode_job_input,
    encode_json,
    loras_to_wire,
)

if TYPE_CHECKING:
    from ._batch._engine import Batch, ProgressCallback
    from ._batch._outcomes import BatchResult
    from ._batch._scheduler import PollScheduler


class AsyncRunGen:
    """
    Async client for the RunGen API; open it with ``async with``.

    Args:
        api_key: Sent as the ``x-api-key`` header. Defaults to ``$RUNGEN_API_KEY``.
        team_id: Sent as ``x-team-id``; leave it out (and ``$RUNGEN_TEAM_ID`` unset) to act in
            the personal context. `with_team()` gives views in other scopes.
        base_url: Defaults to ``$RUNGEN_BASE_URL``, then ``https://api.rungen.ai``. Plain
            ``http://`` is refused except to loopback hosts, unless *allow_insecure_http*.
        user_id: Default ``X-Authenticated-User-Id`` for `cancel_job()`
            (``$RUNGEN_USER_ID``).
        timeout: Seconds, or an ``httpx.Timeout``; by default connect 10 s, read 60 s,
            write 30 s, pool 60 s (with *http_client*: that client's own). `with_options()`
            gives views with another.
        max_connections: Bound on concurrent HTTP connections of the pool it creates.
        retry: How failed requests are retried and rate limits waited out; see `RetryPolicy`.
        http_client: An ``httpx.AsyncClient`` to send through; the caller closes it.
        transport: An httpx transport for the client this one creates (e.g. a
            ``httpx.MockTransport`` in tests). By default: on asyncio the SDK's own HTTP/1.1
            engine (`WireTransport`, several times less CPU per request), on trio httpx's own
            transport. ``AutoTransport(asyncio_engine="aiohttp")`` picks aiohttp instead.
        clock: Where retries and waits read time and sleep (tests pass a fake one).
        poll: How `wait_for_job()` and `wait_for_app()` space their checks.
        max_head_bytes: Largest response head (and trailer section) the default transport
            accepts (64 KiB); a larger one raises `ResponseTooLargeError`.
        max_body_bytes: Largest JSON response body accepted (32 MiB), by the default
            transport and by the client on any other; a larger one raises
            `ResponseTooLargeError`.
    """

    __slots__ = ("_core", "_is_view", "_options", "_poll")

    def __init__(
        self,
        api_key: str | None = None,
        *,
        team_id: str | None = None,
        base_url: str | None = None,
        user_id: str | None = None,
        timeout: float | httpx.Timeout | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        retry: RetryPolicy | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        allow_insecure_http: bool = False,
        clock: Clock | None = None,
        poll: PollPolicy | None = None,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        key = check_api_key(api_key or os.environ.get(ENV_API_KEY), ENV_API_KEY)
        url = check_base_url(
            base_url or os.environ.get(ENV_BASE_URL) or DEFAULT_BASE_URL,
            allow_insecure_http=allow_insecure_http,
        )
        team = team_id or os.environ.get(ENV_TEAM_ID) or None
        if team is not None:
            check_id("team_id", team)
        user = user_id or os.environ.get(ENV_USER_ID) or None
        if http_client is not None and transport is not None:
            raise ValueError("pass http_client or transport, not both")
        check_workers("max_connections", max_connections, minimum=1)
        direct: httpx.AsyncBaseTransport | None = None
        http_timeout = _make_timeout(timeout)
        call_timeout: httpx.Timeout | None = http_timeout
        if http_client is None:
            direct = transport or default_transport(
                limits=httpx.Limits(
                    max_connections=max_connections,
                    max_keepalive_connections=min(
                        max_connections, DEFAULT_MAX_KEEPALIVE_CONNECTIONS
                    ),
                ),
                max_head_bytes=max_head_bytes,
                max_body_bytes=max_body_bytes,
            )
            # The client owns the transport's lifecycle; requests go to the transport.
            http_client = httpx.AsyncClient(
                transport=direct, timeout=http_timeout, follow_redirects=False
            )
            owns_http = True
        else:
            owns_http = False
            if timeout is None:
                call_timeout = None  # the caller's client keeps its own timeout
        self._core = Core(
            api_key=key,
            base_url=url,
            http=http_client,
            owns_http=owns_http,
            clock=clock or SystemClock(),
            user_id=user,
            transport=direct,
            max_body_bytes=max_body_bytes,
        )
        self._options = CallOptions(
            headers=self._core.headers_for(team),
            team_id=team,
            timeout=call_timeout,
            retry=retry or RetryPolicy(),
        )
        self._is_view = False
        self._poll = poll or PollPolicy()

    # -- lifecycle and scope ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool, if this client created it; a team view closes nothing."""
        if not self._is_view and self._core.owns_http:
            await self._core.http.aclose()

    def with_team(self, team_id: str | None) -> AsyncRunGen:
        """
        Return a view acting in team *team_id* (None: the personal context).

        The view shares this client's connections and settings; concurrent calls through
        different views never mix their headers. Close the original, not the view.
        """
        if team_id is not None:
            check_id("team_id", team_id)
        headers = self._core.headers_for(team_id)
        return self._view(attrs.evolve(self._options, headers=headers, team_id=team_id))

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | None = None,
        max_retries: int | None = None,
    ) -> AsyncRunGen:
        """
        Return a view whose calls use another *timeout* or retry count; the rest is shared.

        As cheap as `with_team()` (no new connections; make one per request if you like):
        ``await rg.with_options(timeout=5, max_retries=0).get_job(app_id, job_id)``.
        Options left None keep this client's. Close the original, not the view.

        Args:
            timeout: Seconds, or an ``httpx.Timeout``, for each request of the view's calls.
            max_retries: Retries after the first try (0: none); the rest of the client's
                `RetryPolicy` stays.
        """
        options = self._options
        if timeout is not None:
            options = attrs.evolve(options, timeout=_make_timeout(timeout))
        if max_retries is not None:
            attempts = check_workers("max_retries", max_retries, minimum=0) + 1
            options = attrs.evolve(
                options, retry=attrs.evolve(options.retry, max_attempts=attempts)
            )
        return self._view(options)

    def _view(self, options: CallOptions) -> AsyncRunGen:
        view = object.__new__(AsyncRunGen)
        view._core = self._core
        view._options = options
        view._is_view = True
        view._poll = self._poll
        return view

    @property
    def team_id(self) -> str | None:
        """The ``x-team-id`` this client sends, or None in the personal context."""
        return self._options.team_id

    @property
    def user_id(self) -> str | None:
        """The default ``X-Authenticated-User-Id`` for `cancel_job()`, or None (cancels fail)."""
        return self._core.user_id

    @property
    def base_url(self) -> str:
        """The API's base URL."""
        return self._core.base_url

    @property
    def clock(self) -> Clock:
        """The clock retries and waits use."""
        return self._core.clock

    @property
    def retry_count(self) -> int:
        """How many retries this client (all its team views together) has sent so far."""
        return self._core.retry_count

    def add_rate_limit_listener(
        self, listener: Callable[[float | None], None]
    ) -> Callable[[], None]:
        """
        Call *listener* with the ``Retry-After`` seconds (or None) of every 429 this client gets.

        For code that paces itself, as `run_batch` does: it is called synchronously, so it
        must not block. Returns a function that removes the listener again.
        """
        listeners = self._core.rate_limit_listeners
        listeners.append(listener)

        def remove() -> None:
            if listener in listeners:
                listeners.remove(listener)

        return remove

    def __repr__(self) -> str:
        view = " view" if self._is_view else ""
        team = self._options.team_id
        return f"<AsyncRunGen{view} base_url={self._core.base_url!r} team_id={team!r}>"

    # -- apps ------------------------------------------------------------------------------

    async def create_app(
        self,
        name: str,
        *,
        gpu_tier: GpuTier | str,
        model_url: str,
        description: str | None = None,
        active_workers: int | None = None,
        location: str | None = None,
        loras: Iterable[Lora | Mapping[str, Any]] = (),
        idempotency_key: str | None = None,
    ) -> App:
        """
        Create an app; it starts STOPPED, so `start_app()` it before submitting jobs.

        Raises:
            BadRequestError: The API rejected a field.
            AmbiguousRequestError: The outcome is unknown; retry with its idempotency key.
        """
        configuration: dict[str, Any] = {"gpu_tier": check_gpu_tier(gpu_tier)}
        if active_workers is not None:
            configuration["active_workers"] = check_workers(
                "active_workers", active_workers, minimum=0
            )
        if location is not None:
            configuration["location"] = check_text("location", location)
        workflow: dict[str, Any] = {"model_url": check_model_url(model_url)}
        wire_loras = loras_to_wire(loras)
        if wire_loras:
            workflow["tools"] = {"loras": wire_loras}
        body: dict[str, Any] = {"name": check_text("name", name)}
        if description is not None:
            body["description"] = check_text("description", description, allow_empty=True)
        body["configuration"] = configuration
        body["workflow"] = workflow
        data = await self._request(
            "POST", "/app", content=encode_json("app", body), idempotency_key=idempotency_key
        )
        return structure(data, App)

    async def list_apps(self) -> list[App]:
        """List the apps of this scope (personal, or the team's)."""
        return structure_list(await self._request("GET", "/app"), App)

    async def get_app(self, app_id: str) -> App:
        """Fetch app *app_id*, with its status and job and worker counters."""
        return structure(await self._request("GET", f"/app/{check_id('app_id', app_id)}"), App)

    async def update_app(
        self,
        app_id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        active_workers: int | None = None,
        model_url: str | None = None,
        loras: Iterable[Lora | Mapping[str, Any]] | None = None,
    ) -> App:
        """
        Change only the fields given; the API can change LoRA weights but not the LoRA set.

        Raises:
            ValueError: No field was given, or one is invalid.
        """
        path = f"/app/{check_id('app_id', app_id)}"
        body: dict[str, Any] = {}
        if name is not None:
            body["name"] = check_text("name", name)
        if description is not None:
            body["description"] = check_text("description", description, allow_empty=True)
        if active_workers is not None:
            body["configuration"] = {
                "active_workers": check_workers("active_workers", active_workers, minimum=0)
            }
        workflow: dict[str, Any] = {}
        if model_url is not None:
            workflow["model_url"] = check_model_url(model_url)
        if loras is not None:
            workflow["tools"] = {"loras": loras_to_wire(loras)}
        if workflow:
            body["workflow"] = workflow
        if not body:
            raise ValueError(
                "update_app() needs at least one of name, description, active_workers, "
                "model_url or loras"
            )
        data = await self._request("PUT", path, content=encode_json("update", body))
        if data is None:  # the update page shows no response: read the app back
            return await self.get_app(app_id)
        return structure(data, App)

    async def start_app(self, app_id: str, workers: int = 1) -> App:
        """Scale app *app_id* to *workers* active workers (billing starts); see `wait_for_app`."""
        return await self.update_app(
            app_id, active_workers=check_workers("workers", workers, minimum=1)
        )

    async def stop_app(self, app_id: str) -> App:
        """Scale app *app_id* to zero workers, which stops its billing."""
        return await self.update_app(app_id, active_workers=0)

    async def delete_app(self, app_id: str) -> None:
        """Delete app *app_id* for good; stop it first, as the API's tutorial asks."""
        await self._request("DELETE", f"/app/{check_id('app_id', app_id)}")

    # -- jobs ------------------------------------------------------------------------------

    async def submit_job(
        self, app_id: str, input: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Job:
        """
        Queue a job on app *app_id* with the model's *input*; returns at once.

        Args:
            idempotency_key: Reuse the key of an `AmbiguousRequestError` to re-send a submit
                without risking a second job. A fresh key is made when None.

        Raises:
            NotFoundError: No such app in this scope.
            AmbiguousRequestError: The outcome is unknown; nothing was re-sent.
        """
        path = f"/app/{check_id('app_id', app_id)}/run_async"
        data = await self._request(
            "POST", path, content=encode_job_input(input), idempotency_key=idempotency_key
        )
        return structure_job(data, app_id, input)

    async def get_job(self, app_id: str, job_id: str) -> Job:
        """Fetch the current state of job *job_id*."""
        path = f"/app/{check_id('app_id', app_id)}/job/{check_id('job_id', job_id)}"
        return structure_job(await self._request("GET", path), app_id)

    async def cancel_job(self, app_id: str, job_id: str, *, user_id: str | None = None) -> Job:
        """
        Cancel a queued or running job.

        Args:
            user_id: Sent as ``X-Authenticated-User-Id``, which the cancel page requires;
                defaults to the client's *user_id*.

        Raises:
            ConflictError: The job already finished.
        """
        path = f"/app/{check_id('app_id', app_id)}/job/{check_id('job_id', job_id)}"
        user = user_id or self._core.user_id
        extra = None if user is None else {"x-authenticated-user-id": check_id("user_id", user)}
        return structure_job(await self._request("PUT", path, extra_headers=extra), app_id)

    # -- waiting and batches ---------------------------------------------------------------

    async def wait_for_job(
        self,
        app_id: str,
        job: str | Job,
        *,
        deadline: float | None = None,
        on_update: JobObserver | None = None,
    ) -> Job:
        """
        Poll job *job* (an id, or the `Job` from `submit_job`) until it finishes.

        Checks start fast and back off (see `PollPolicy`); transient errors are retried.
        Bound the wait with *deadline* seconds, or your own cancel scope
        (``anyio.fail_after``, ``asyncio.timeout``); cancelling the wait leaves the job
        running remotely.

        Raises:
            JobFailedError: It ended FAILED or CANCELED; ``.job`` is its final state.
            JobTimeoutError: *deadline* passed; it names the app and job to wait on again.
        """
        check_id("app_id", app_id)
        check_id("job_id", job.id if isinstance(job, Job) else job)
        return await wait_for_job(
            self, app_id, job, deadline=deadline, poll=self._poll, on_update=on_update
        )

    async def wait_for_app(self, app_id: str, *, deadline: float | None = None) -> App:
        """
        Poll app *app_id* until it is RUNNING (after `start_app`, which takes minutes).

        Raises:
            AppFailedError: It is stopped with no workers, or reports a failure.
            AppTimeoutError: *deadline* seconds passed first.
        """
        return await wait_for_app(
            self, check_id("app_id", app_id), deadline=deadline, poll=self._poll
        )

    async def run(
        self, app_id: str, input: Mapping[str, Any], *, deadline: float | None = None
    ) -> Job:
        """Submit a job and wait for it; returns the COMPLETED job (see `wait_for_job`)."""
        job = await self.submit_job(app_id, input)
        return await self.wait_for_job(app_id, job, deadline=deadline)

    async def download(self, job: Job, folder: str | Path) -> list[Path]:
        """
        Stream the output files of the COMPLETED *job* into *folder*; returns their paths.

        Files are written in chunks as ``<job id>-<n><suffix>``; the requests carry neither the
        API key nor the team header, whatever host the result names.

        Raises:
            DownloadError: The job has not completed, or a file could not be fetched.
        """
        return await download_outputs(job, folder)

    def batch(
        self,
        app_id: str,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        max_concurrency: int = 16,
        max_in_flight: int = 1000,
        poll_rate: float = 100.0,
        max_poll_rate: float | None = None,
        job_deadline: float | None = None,
        deadline: float | None = None,
        journal: str | None = None,
        batch_id: str | None = None,
        resend_unconfirmed: bool = False,
        cancel_on_exit: bool = True,
        cancel_timed_out: bool = False,
        on_progress: ProgressCallback | None = None,
        scheduler: PollScheduler[int] | None = None,
    ) -> Batch:
        """
        Run one job per input on app *app_id*; use as ``async with rg.batch(...) as b``.

        Iterate the batch for `Outcome`s in completion order. Inputs (any iterable or async
        iterable of JSON objects) are read lazily: memory follows *max_in_flight*, not the
        number of inputs.

        Args:
            max_concurrency: Submits in flight at once (halved on a 429, then regrown).
            max_in_flight: Jobs submitted and not yet finished, at most.
            poll_rate: Status requests per second for the whole batch, at most.
            max_poll_rate: Let the poll budget grow from *poll_rate* up to this while it
                delays checks and the API refuses none (doubling each second until the
                first 429 of a status check, then slowly; halved on each 429). None: the
                budget stays at *poll_rate*.
            job_deadline: Seconds after which an unfinished job is reported TIMED_OUT
                (and cancelled if *cancel_timed_out*).
            deadline: Seconds for the whole batch; then it stops as if left early.
            journal: An SQLite file that makes the batch resumable: run again with the same
                journal and inputs after a crash, and nothing is lost or submitted twice.
                One run at a time: a second is refused with `JournalLockedError`.
            resend_unconfirmed: On resume, send again (under their idempotency keys) the
                items whose submit was in flight when the last run died. Off by default:
                the RunGen API documents no idempotency, so they are reported AMBIGUOUS.
            batch_id: Seeds the idempotency keys (``f"{batch_id}:{index}"``); random by
                default, read from the journal when resuming.
            cancel_on_exit: Cancel the jobs still in flight when the batch is left early.
            on_progress: Called with a `BatchStats` snapshot after each outcome.
            scheduler: A tuned `PollScheduler`; the default learns the jobs' run times.
        """
        from ._batch._engine import Batch  # lazily: _batch sits above the client

        return Batch(
            self,
            app_id,
            inputs,
            max_concurrency=max_concurrency,
            max_in_flight=max_in_flight,
            poll_rate=poll_rate,
            max_poll_rate=max_poll_rate,
            job_deadline=job_deadline,
            deadline=deadline,
            journal=journal,
            resend_unconfirmed=resend_unconfirmed,
            batch_id=None if batch_id is None else check_header_value("batch_id", batch_id),
            cancel_on_exit=cancel_on_exit,
            cancel_timed_out=cancel_timed_out,
            on_progress=on_progress,
            scheduler=scheduler,
        )

    async def run_batch(
        self,
        app_id: str,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        max_concurrency: int = 16,
        max_in_flight: int = 1000,
        poll_rate: float = 100.0,
        max_poll_rate: float | None = None,
        job_deadline: float | None = None,
        deadline: float | None = None,
        journal: str | None = None,
        batch_id: str | None = None,
        resend_unconfirmed: bool = False,
        cancel_on_exit: bool = True,
        cancel_timed_out: bool = False,
        on_progress: ProgressCallback | None = None,
        scheduler: PollScheduler[int] | None = None,
    ) -> BatchResult:
        """
        Run a batch to the end and return every outcome in input order, with its stats.

        Takes the options of `batch()`. Keeps every outcome in memory; for millions of
        inputs iterate `batch()` instead.
        """
        from ._batch._engine import collect  # lazily: _batch sits above the client

        return await collect(
            self.batch(
                app_id,
                inputs,
                max_concurrency=max_concurrency,
                max_in_flight=max_in_flight,
                poll_rate=poll_rate,
                max_poll_rate=max_poll_rate,
                job_deadline=job_deadline,
                deadline=deadline,
                journal=journal,
                batch_id=batch_id,
                resend_unconfirmed=resend_unconfirmed,
                cancel_on_exit=cancel_on_exit,
                cancel_timed_out=cancel_timed_out,
                on_progress=on_progress,
                scheduler=scheduler,
            )
        )

    # -- the one request path --------------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        idempotency_key: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        if idempotency_key is not None:
            check_header_value("idempotency_key", idempotency_key)
        return await self._core.request(
            self._options,
            method,
            path,
            content=content,
            idempotency_key=idempotency_key,
            extra_headers=extra_headers,
        )


def _make_timeout(timeout: float | httpx.Timeout | None) -> httpx.Timeout:
    if isinstance(timeout, httpx.Timeout):
        return timeout
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        return httpx.Timeout(timeout)
    return httpx.Timeout(
        connect=DEFAULT_CONNECT_TIMEOUT,
        read=DEFAULT_READ_TIMEOUT,
        write=DEFAULT_WRITE_TIMEOUT,
        pool=DEFAULT_POOL_TIMEOUT,
    )
