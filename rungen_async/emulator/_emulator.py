"""
`Emulator`: the one implementation of the RunGen API, called with a request, answering a
response, with no I/O of its own.

The ASGI app serves it over TCP; `rungen_async.testing` calls it from an httpx transport.
Everything that reads time asks the emulator's clock once per request, at arrival.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio
from attrs import evolve

from .._clock import Clock
from . import _admin
from ._accounts import Accounts, User
from ._endpoints import Api
from ._faults import FaultConfig, FaultInjector, FaultKind, ScriptedFault
from ._http import EmulatorRequest, EmulatorResponse, HTTPError, error_response
from ._records import EmulatorStats, RecordedRequest
from ._state import App, Job
from ._views import Variant

logger = logging.getLogger("rungen_async.emulator")

Variants = Literal["reference", "alternate", "mixed"]

#: Idempotency keys remembered; the oldest is forgotten first (a key is good for hours).
MAX_IDEMPOTENCY_KEYS = 100_000


class MonotonicClock:
    """`time.monotonic()` for reading, `anyio.sleep()` for waiting; usable from any thread."""

    __slots__ = ()

    def now(self) -> float:
        """Return `time.monotonic()`."""
        return time.monotonic()

    async def sleep(self, seconds: float, /) -> None:
        """Sleep on the running event loop."""
        await anyio.sleep(max(0.0, seconds))


class Emulator:
    """A local RunGen API: accounts, apps, jobs, faults, and a record of what it was sent.

    Args:
        accounts: Users and teams; defaults to `Accounts.demo()` (key ``rg-demo-key``).
        clock: Where time comes from; only `now()` is used. Defaults to `MonotonicClock`.
        warmup: Seconds an app stays INITIALIZING after it is started.
        job_duration: Seconds a job takes on a STANDARD worker (BASIC takes twice as long,
            PERFORMANCE half); input ``_duration`` overrides it per job.
        variants: Which documented response shapes to serve (see `_views`): ``"reference"``,
            ``"alternate"``, or ``"mixed"`` (a seeded coin toss per response).
        seed: Makes ids and the ``"mixed"`` choice reproducible; random faults take their
            own seed from `FaultConfig`.
        max_records: How many recent requests `requests` keeps (`None`: all).
        start_time: The wall-clock time of the first request, for ``created_at`` fields.
        idempotency_keys: Honour an ``Idempotency-Key`` header on POSTs (replay the first
            answer). The RunGen API documents no idempotency, so ``False`` serves the API as
            documented: every POST is carried out, key or not. Safety tests run with it off.
    """

    def __init__(
        self,
        *,
        accounts: Accounts | None = None,
        clock: Clock | None = None,
        warmup: float = 0.0,
        job_duration: float = 1.0,
        variants: Variants = "reference",
        seed: int | None = None,
        faults: FaultConfig | None = None,
        max_workers: int = 64,
        max_records: int | None = 10_000,
        start_time: datetime | None = None,
        idempotency_keys: bool = True,
    ) -> None:
        if variants not in ("reference", "alternate", "mixed"):
            raise ValueError(f"variants must be reference, alternate or mixed, not {variants!r}")
        self.accounts = accounts or Accounts.demo()
        self.clock: Clock = clock or MonotonicClock()
        self.variants = variants
        self.faults = FaultInjector(faults)
        self._variant_rng = random.Random(seed)
        self._start_time = start_time
        self._origin: float | None = None
        self.api = Api(
            accounts=self.accounts,
            warmup=warmup,
            job_duration=job_duration,
            max_workers=max_workers,
            seed=seed,
            variant=self._pick_variant,
            stamp=self._stamp,
        )
        self._admin = _admin.router(self)
        self._records: deque[RecordedRequest] = deque(maxlen=max_records)
        self.idempotency_keys = idempotency_keys
        self._idempotency: dict[tuple[str, str], tuple[str, EmulatorResponse]] = {}
        self._requests = 0
        self._replays = 0
        self._responses: Counter[int] = Counter()
        self._fault_counts: Counter[str] = Counter()
        # uvicorn handles requests in its thread while a test or the CLI steers the emulator
        # from another: every entry point holds this (re-entrant: admin endpoints call back).
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"Emulator(apps={len(self.api.apps)}, jobs={len(self.api.jobs)})"

    # -- handling -------------------------------------------------------------------------

    def handle(self, request: EmulatorRequest, *, internal: bool = False) -> EmulatorResponse:
        """Answer one request; see `EmulatorResponse` for delays and dropped connections.

        Args:
            internal: A test's own set-up request: no faults, not recorded or counted.
        """
        with self._lock:
            return self._handle(request, internal=internal)

    def _handle(self, request: EmulatorRequest, *, internal: bool) -> EmulatorResponse:
        now = self.clock.now()
        if self._origin is None:
            self._anchor(now)
        user_id: str | None = None
        fault: str | None = None
        try:
            if request.path.startswith("/_emulator/"):
                handler, params = self._admin.match(request.method, request.path)
                response = handler(request, now, **params)
            else:
                response, user_id, fault = self._handle_api(request, now, faults=not internal)
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, headers=exc.headers)
        if internal:
            return response
        self._requests += 1
        status = None if response.drop else response.status
        if status is not None:
            self._responses[status] += 1
        self._records.append(
            RecordedRequest.of(request, status=status, fault=fault, user_id=user_id, time=now)
        )
        # Method, path and outcome only: headers (the API key) are never logged.
        logger.debug("%s %s -> %s", request.method, request.path, status or response.drop)
        return response

    def _handle_api(
        self, request: EmulatorRequest, now: float, *, faults: bool
    ) -> tuple[EmulatorResponse, str | None, str | None]:
        api_key = request.headers.get("x-api-key")
        fault = self.faults.decide(request.method, request.path, api_key, now) if faults else None
        if fault is not None:
            self._fault_counts[fault.name] += 1
            if fault.response is not None:
                return evolve(fault.response, delay=fault.delay), None, fault.name
        user = self.accounts.authenticate(api_key)
        try:
            if user is None:
                raise HTTPError(403, "unauthorized: invalid or missing API key ('x-api-key')")
            handler, params = self.api.router.match(request.method, request.path)
            response = self._idempotent(
                request, user, lambda: handler(request, user, now, **params)
            )
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, headers=exc.headers)
        if fault is not None:
            response = evolve(
                response, delay=fault.delay, drop="after" if fault.drop_after else None
            )
        return response, user.id if user else None, None if fault is None else fault.name

    def _idempotent(
        self, request: EmulatorRequest, user: User, call: Callable[[], EmulatorResponse]
    ) -> EmulatorResponse:
        key = request.headers.get("idempotency-key")
        if request.method != "POST" or not key or not self.idempotency_keys:
            return call()
        fingerprint = hashlib.sha256(f"{request.path}\n".encode() + request.body).hexdigest()
        stored = self._idempotency.get((user.id, key))
        if stored is not None:
            if stored[0] != fingerprint:
                raise HTTPError(422, "this Idempotency-Key was already used for another request")
            self._replays += 1
            replayed = stored[1]
            return evolve(replayed, headers=(*replayed.headers, ("idempotent-replayed", "true")))
        try:
            response = call()
        except HTTPError as exc:
            response = error_response(exc.status, exc.message, headers=exc.headers)
        if response.status < 500:
            if len(self._idempotency) >= MAX_IDEMPOTENCY_KEYS:  # forget the oldest
                del self._idempotency[next(iter(self._idempotency))]
            self._idempotency[(user.id, key)] = (fingerprint, response)
        return response

    def _pick_variant(self) -> Variant:
        if self.variants == "mixed":
            return self._variant_rng.choice(("reference", "alternate"))
        return self.variants

    def _anchor(self, now: float) -> None:
        # The clock reading and the wall-clock time of the first request, taken together:
        # a `created_at` is that time plus the clock's progress since, so it agrees with
        # the `Date` header (taking them apart let it run ahead by the time in between).
        self._origin = now
        if self._start_time is None:
            self._start_time = datetime.now(UTC)

    def _stamp(self, reading: float) -> datetime:
        if self._origin is None:
            self._anchor(self.clock.now())
        assert self._start_time is not None
        assert self._origin is not None
        return self._start_time + timedelta(seconds=reading - self._origin)

    # -- inspecting and steering from Python ------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """The requests received (the most recent *max_records*), oldest first."""
        with self._lock:
            return list(self._records)

    def clear_requests(self) -> None:
        """Forget the recorded requests (the counters in `stats` keep going)."""
        with self._lock:
            self._records.clear()

    @property
    def stats(self) -> EmulatorStats:
        """A snapshot of the counters, with every app brought up to the current time."""
        with self._lock:
            return self._stats()

    def _stats(self) -> EmulatorStats:
        self.api.advance_all(self.clock.now())
        apps = self.api.apps.values()
        return EmulatorStats(
            requests=self._requests,
            apps_created=self.api.apps_created,
            jobs_created=self.api.jobs_created,
            jobs_queued=sum(app.in_queue for app in apps),
            jobs_running=sum(app.in_progress for app in apps),
            jobs_completed=sum(app.completed for app in apps),
            jobs_failed=sum(app.failed for app in apps),
            jobs_canceled=sum(app.canceled for app in apps),
            idempotent_replays=self._replays,
            responses=dict(self._responses),
            faults=dict(self._fault_counts),
        )

    def set_faults(self, config: FaultConfig | None = None, **settings: Any) -> FaultConfig:
        """Replace the random faults: pass a `FaultConfig`, or its fields as keywords."""
        config = config or FaultConfig(**settings)
        with self._lock:
            self.faults.configure(config)
        return config

    def script_fault(
        self,
        kind: FaultKind,
        *,
        count: int = 1,
        status: int = 500,
        retry_after: float | None = None,
        seconds: float = 0.0,
        routes: Iterable[str] = (),
    ) -> None:
        """Inject *kind* into the next *count* API requests matching *routes*.

        *kind* is ``"status"`` (answer *status*; a 429 carries ``Retry-After``), ``"drop"``,
        ``"drop_after"``, ``"connect"`` or ``"slow"`` (answer *seconds* late).
        """
        scripted = ScriptedFault(
            kind=kind,
            count=count,
            status=status,
            retry_after=retry_after,
            seconds=seconds,
            routes=tuple(routes),
        )
        with self._lock:
            self.faults.scripted.append(scripted)

    def fail_next_jobs(self, count: int = 1, message: str = "job failed (scripted)") -> None:
        """Make the next *count* jobs created end FAILED with *message*."""
        with self._lock:
            self.api.fail_next.extend([message] * count)

    def fail_job(self, number: int, message: str = "job failed (scripted)") -> None:
        """Make the *number*-th job created (counting from 1, over the emulator) fail."""
        with self._lock:
            self.api.fail_numbers[number] = message

    def app(self, app_id: str) -> App:
        """The app *app_id*, brought up to the current time; raise `KeyError` if none."""
        with self._lock:
            app = self.api.apps[app_id]
            app.advance(self.clock.now())
            return app

    def job(self, job_id: str) -> Job:
        """The job *job_id*, brought up to the current time; raise `KeyError` if none."""
        with self._lock:
            job = self.api.jobs[job_id]
            self.app(job.app_id)
            return job

    def drain_time(self) -> float:
        """The clock reading by which every job that can finish will have finished.

        Jobs queued on an app without workers cannot finish and are left out.
        """
        with self._lock:
            now = self.clock.now()
            self.api.advance_all(now)
            ends = [app.drain_time() for app in self.api.apps.values()]
        return max((end for end in ends if end is not None), default=now)
