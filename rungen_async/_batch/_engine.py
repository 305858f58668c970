"""
The batch engine: lazy inputs, bounded submitters, one poll scheduler, nothing lost.

Tasks inside one task group:

* a feeder pulls inputs one at a time, only when a slot of *max_in_flight* is free;
* *max_concurrency* submitters send them (an AIMD limiter halves their number on a 429 and
  adds one back per window of successes);
* one poller pops due checks off the `PollScheduler` heap, within a poll-rate budget, and
  hands them to a few poll workers;
* finished items become `Outcome`s on a stream the caller iterates.

A failed item is an outcome, never an exception; a bug (in here or in a caller's callback)
cancels the batch and surfaces as an exception group.
"""

from __future__ import annotations

import contextlib
import math
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._exceptions import (
    AmbiguousRequestError,
    ConflictError,
    NotFoundError,
    RateLimitError,
    RunGenError,
)
from .._models import Job, JobStatus
from .._serde import structure_job
from .._validation import check_id
from ._journal import Journal, JournalItem
from ._outcomes import BatchStats, Outcome, OutcomeKind, StatsCounter
from ._scheduler import PollScheduler

if TYPE_CHECKING:
    from .._client import AsyncRunGen

#: Called with a fresh stats snapshot after each outcome.
ProgressCallback = Callable[[BatchStats], None]

T = TypeVar("T")

_CANCEL_TIMEOUT = 10.0
#: How long submits already in flight may still take once the batch is stopped (Ctrl-C,
#: a cancel scope, an error): their job ids are journaled and cancelled or reported.
SUBMIT_GRACE = 10.0
_SUBMIT_RATE_LIMIT_TRIES = 8


class _Item:
    __slots__ = ("index", "input", "job", "status", "submitted_at")

    def __init__(self, index: int, input: Any, job: Job, submitted_at: float) -> None:
        self.index = index
        self.input = input
        self.job = job
        self.status: JobStatus | None = None
        self.submitted_at = submitted_at


class Batch:
    """
    A running batch of jobs on one app; use ``async with rg.batch(...) as batch``.

    Iterate it for `Outcome`s in completion order. Leaving the block early (break, an
    exception, a cancel scope, Ctrl-C) stops submitting and, unless *cancel_on_exit* is
    False, cancels the remote jobs still in flight; `cancelled_job_ids` and
    `left_running_job_ids` say which.
    """

    def __init__(
        self,
        client: AsyncRunGen,
        app_id: str,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        max_concurrency: int,
        max_in_flight: int,
        poll_rate: float,
        job_deadline: float | None,
        deadline: float | None,
        journal: str | None,
        batch_id: str | None,
        resend_unconfirmed: bool = False,
        cancel_on_exit: bool,
        cancel_timed_out: bool,
        on_progress: ProgressCallback | None,
        scheduler: PollScheduler[int] | None,
    ) -> None:
        check_id("app_id", app_id)
        for name, value in (("max_concurrency", max_concurrency), ("max_in_flight", max_in_flight)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a whole number >= 1, got {value!r}")
        if not poll_rate > 0:
            raise ValueError(f"poll_rate must be > 0 requests per second, got {poll_rate!r}")
        for name, limit in (("job_deadline", job_deadline), ("deadline", deadline)):
            if limit is not None and not limit > 0:
                raise ValueError(f"{name} must be > 0 seconds, got {limit!r}")
        self._client = client
        self._clock = client.clock
        self.app_id = app_id
        self._inputs = inputs
        self.max_concurrency = max_concurrency
        self._max_in_flight = max_in_flight
        self._poll_rate = poll_rate
        # The poll budget, a token bucket shared by the poller and the poll workers.
        self._burst = max(1.0, poll_rate / 10)
        self._tokens = 1.0
        self._refilled = -math.inf  # set by the first take
        self._job_deadline = job_deadline
        self._deadline = deadline
        self._journal_path = journal
        self._resend_unconfirmed = resend_unconfirmed
        self._journal: Journal | None = None
        self._batch_id = batch_id
        self._cancel_on_exit = cancel_on_exit
        self._cancel_timed_out = cancel_timed_out
        self._on_progress = on_progress
        self._scheduler = scheduler if scheduler is not None else PollScheduler[int]()
        self._scheduler.poll_rate = poll_rate
        self._items: dict[int, _Item] = {}
        self._counter = StatsCounter()
        self._tg: TaskGroup | None = None
        self._wake: anyio.CancelScope | None = None
        self._wake_at = math.inf
        self._feeding = True
        self._pending_submits = 0
        # The shield of each submit in flight: a stop lets them finish, within SUBMIT_GRACE.
        self._submit_shields: set[anyio.CancelScope] = set()
        self._poll_workers = 1
        self._checks_busy = 0
        self._polls_eased: anyio.Event | None = None
        self._watchdog_scope: anyio.CancelScope | None = None
        self._watch_scope: anyio.CancelScope | None = None
        self._observed_done = 0
        self._finished = False
        #: Job ids cancelled remotely when the batch was left early.
        self.cancelled_job_ids: list[str] = []
        #: Job ids left running remotely when the batch was left early.
        self.left_running_job_ids: list[str] = []
        #: Outcomes (CANCELED or TIMED_OUT) of items still in flight when the batch stopped.
        self.unfinished: list[Outcome] = []
        # Outcomes, each with whether it holds an in-flight slot: the slot is freed when the
        # caller takes the outcome, so a slow consumer holds back new submits (backpressure).
        send, receive = anyio.create_memory_object_stream[tuple[Outcome, bool]](
            max(64, max_in_flight)
        )
        self._out_send: MemoryObjectSendStream[tuple[Outcome, bool]] = send
        self._out_receive: MemoryObjectReceiveStream[tuple[Outcome, bool]] = receive
        self._taken = 0
        self._slots = anyio.Semaphore(max_in_flight)
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._successes = 0
        self._last_halving = -math.inf
        self._retries_at_start = 0
        self._stop_listening: Callable[[], None] = lambda: None

    @property
    def batch_id(self) -> str:
        """The batch's id; item *i* is submitted with idempotency key ``f"{batch_id}:{i}"``."""
        return self._journal.batch_id if self._journal else (self._batch_id or "")

    @property
    def stats(self) -> BatchStats:
        """A snapshot of the batch's progress; cheap enough to read every second."""
        return self._counter.snapshot(
            now=self._clock.now(),
            in_flight=len(self._items),
            retries=self._client.retry_count - self._retries_at_start,
            submit_concurrency=int(self._limiter.total_tokens),
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._journal_path is not None:
            try:
                self._journal = Journal(
                    self._journal_path,
                    app_id=self.app_id,
                    batch_id=self._batch_id,
                    resend_unconfirmed=self._resend_unconfirmed,
                )
            except BaseException:
                self._out_send.close()
                self._out_receive.close()
                raise
        elif self._batch_id is None:
            self._batch_id = uuid.uuid4().hex
        self._counter.started = self._clock.now()
        self._retries_at_start = self._client.retry_count
        self._stop_listening = self._client.add_rate_limit_listener(self._on_rate_limit)
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        assert self._tg is not None
        try:
            if not self._finished:
                grace = anyio.current_time() + SUBMIT_GRACE
                for shield in self._submit_shields:
                    shield.deadline = min(shield.deadline, grace)
                self._tg.cancel_scope.cancel()
            try:
                return bool(await self._tg.__aexit__(exc_type, exc, tb))
            finally:
                if not self._finished:
                    await self._stop_in_flight()
        finally:
            self._stop_listening()
            self._out_receive.close()
            if self._journal is not None:
                self._journal.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        # A plain iterator, not an async generator: breaking out leaves nothing to finalise.
        # Outcomes already waiting are taken without yielding first (a busy event loop
        # would otherwise hand the caller one outcome per turn and let them pile up),
        # but every 64th take yields, so a caller with no awaits of its own never hogs it.
        self._taken = (self._taken + 1) % 64
        try:
            if self._taken:
                try:
                    outcome, holds_slot = self._out_receive.receive_nowait()
                except anyio.WouldBlock:
                    outcome, holds_slot = await self._out_receive.receive()
            else:
                outcome, holds_slot = await self._out_receive.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None
        if holds_slot:
            self._slots.release()
        return outcome

    async def _run(self) -> None:
        async with self._out_send, anyio.create_task_group() as tg:
            send_items, receive_items = anyio.create_memory_object_stream[tuple[int, Any]]()
            send_polls, receive_polls = anyio.create_memory_object_stream[int]()
            async with send_polls:
                async with receive_items:
                    for _ in range(self.max_concurrency):
                        tg.start_soon(self._submitter, receive_items.clone())
                workers = self._poll_workers = max(2, min(32, math.ceil(self._poll_rate / 20)))
                async with receive_polls:
                    for _ in range(workers):
                        tg.start_soon(self._poll_worker, receive_polls.clone())
                if self._deadline is not None:
                    tg.start_soon(self._watchdog)
                if self._scheduler.sweep_threshold:
                    tg.start_soon(self._watch_app)
                poller = anyio.create_task_group()
                async with poller:
                    poller.start_soon(self._poller, send_polls)
                    await self._feed(send_items)
                    self._feeding = False
                    self._poke(-math.inf)
            for scope in (self._watchdog_scope, self._watch_scope):
                if scope is not None:
                    scope.cancel()
        self._finished = True

    async def _watchdog(self) -> None:
        assert self._deadline is not None
        with anyio.CancelScope() as scope:
            self._watchdog_scope = scope
            await self._clock.sleep(self._deadline)
            assert self._tg is not None
            # Ends the caller's `async with` too; __aexit__ then stops what is in flight.
            self._tg.cancel_scope.cancel()

    async def _watch_app(self) -> None:
        """
        Sweep the parked cohort when the app's counters say enough of it has finished.

        Before any run time is known, checking each job on a guess costs several requests
        per job; one ``GET /app`` a tick tells how many jobs finished (completed + failed,
        against a baseline), and the parked jobs are all checked once that many of them
        are done. Other traffic on the app only makes sweeps come early, never late.
        """
        client, clock, scheduler = self._client, self._clock, self._scheduler
        threshold = scheduler.sweep_threshold or 1.0
        with anyio.CancelScope() as scope:
            self._watch_scope = scope
            try:
                app = await client.get_app(self.app_id)
            except RunGenError:
                return
            if app.jobs is None:
                return
            baseline = app.jobs.completed + app.jobs.failed
            started = clock.now()
            scheduler.sweeping = True
            while True:
                # A tick of 4 % of the run time (or of the time so far, before one is known).
                span = scheduler.model.minimum if len(scheduler.model) else clock.now() - started
                await clock.sleep(min(2.0, max(0.1, 0.04 * span)))
                if not (self._feeding or self._pending_submits or self._items):
                    return
                if not scheduler.parked:
                    continue
                asked = clock.now()
                try:
                    app = await client.get_app(self.app_id)
                except RunGenError:
                    continue
                finally:
                    self._counter.status_requests += 1
                counters = app.jobs
                if counters is None:
                    scheduler.stop_sweeping(clock.now())
                    return
                scheduler.queueing = counters.in_queue > 0
                unseen = counters.completed + counters.failed - baseline - self._observed_done
                if unseen <= 0:
                    scheduler.quiet_until = asked  # every tracked job was running then
                    continue
                now = clock.now()
                if not scheduler.finishing:
                    scheduler.wake_scouts(now)
                    self._poke(now)
                candidates = scheduler.sweepable(now)
                if scheduler.queueing:
                    # Jobs start in submission order, so the unseen finished ones are among
                    # the oldest (running + finished) of them.
                    candidates = candidates[: counters.in_progress + unseen]
                if candidates and unseen >= threshold * len(candidates):
                    scheduler.sweep(now, candidates)
                    self._poke(-math.inf)

    # -- feeding and submitting --------------------------------------------------------------

    async def _feed(self, send: MemoryObjectSendStream[tuple[int, Any]]) -> None:
        journal = self._journal
        async with send:
            index = -1
            async with contextlib.aclosing(_aiter(self._inputs)) as values:
                async for value in values:
                    index += 1
                    known = None
                    if journal is not None:
                        known = journal.state(index)
                        journal.check_input(index, value)
                    if known is not None and (
                        known.state == "finished"
                        or (known.unconfirmed and not self._resend_unconfirmed)
                    ):
                        restored = _restored(self.app_id, value, known)
                        self._counter.count(restored.kind, resumed=True)
                        await _send(self._out_send, (restored, False))
                        continue
                    try:
                        self._slots.acquire_nowait()
                    except anyio.WouldBlock:
                        await self._slots.acquire()
                    if known is not None and known.state == "submitted" and known.job_id:
                        # Submitted by an earlier run: re-attach by id, never submit again.
                        job = Job(id=known.job_id, status=JobStatus.QUEUED)
                        self._track(_Item(index, value, job, self._clock.now()), known_age=False)
                        continue
                    self._pending_submits += 1
                    await _send(send, (index, value))

    async def _submitter(self, receive: MemoryObjectReceiveStream[tuple[int, Any]]) -> None:
        async with receive:
            while True:
                try:
                    index, value = await _receive(receive)
                except anyio.EndOfStream:
                    return
                try:
                    await self._submit(index, value)
                finally:
                    self._pending_submits -= 1
                    if not self._pending_submits and not self._feeding:
                        self._poke(-math.inf)

    async def _submit(self, index: int, value: Any) -> None:
        journal = self._journal
        key = journal.key(index) if journal else f"{self._batch_id}:{index}"
        journaled = journal is None
        for attempt in range(_SUBMIT_RATE_LIMIT_TRIES):
            if self._checks_busy >= self._poll_workers:
                await self._polls_first()
            limiter = self._limiter
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()  # stopped: send nothing new
            except BaseException:
                limiter.release()
                raise
            if not journaled:  # just before sending: an unsent item is never "in flight"
                assert journal is not None
                journal.record_submitting(index, value)
                journaled = True
            shield = anyio.CancelScope(shield=True)
            self._submit_shields.add(shield)
            try:
                # Shielded: once sent, a submit's answer is awaited even if the batch is
                # stopped, so its job id is journaled (and cancelled) instead of lost.
                with shield:
                    job = await self._client.submit_job(self.app_id, value, idempotency_key=key)
                if shield.cancelled_caught:  # stopped, and the answer outlasted the grace
                    limiter.release()
                    self._unconfirmed_at_stop(index, value, key)
                    return
            except RateLimitError as exc:
                limiter.release()
                if attempt + 1 < _SUBMIT_RATE_LIMIT_TRIES:
                    continue  # provably not processed: the client paused, so try again
                await self._finish_unsubmitted(index, value, OutcomeKind.REJECTED, exc)
                return
            except AmbiguousRequestError as exc:
                limiter.release()
                await self._finish_unsubmitted(index, value, OutcomeKind.AMBIGUOUS, exc)
                return
            except (RunGenError, TypeError, ValueError) as exc:
                limiter.release()
                await self._finish_unsubmitted(index, value, OutcomeKind.REJECTED, exc)
                return
            except BaseException:
                limiter.release()
                raise
            finally:
                self._submit_shields.discard(shield)
            limiter.release()
            self._on_success()
            break
        if journal is not None:
            journal.record_submitted(index, job.id)
        self._counter.submitted += 1
        self._track(_Item(index, value, job, self._clock.now()), known_age=True)

    def _unconfirmed_at_stop(self, index: int, value: Any, key: str) -> None:
        error = RunGenError(
            f"the batch stopped while the submit of input {index} was in flight and its answer "
            f"did not come within {SUBMIT_GRACE:g} s: the job may exist; idempotency key {key!r}"
        )
        outcome = Outcome(
            index=index, input=value, kind=OutcomeKind.AMBIGUOUS, job=None, error=error
        )
        if self._journal is not None:
            self._journal.record_finished(index, outcome.to_journal())
        self._counter.count(outcome.kind)
        self.unfinished.append(outcome)

    def _track(self, item: _Item, *, known_age: bool) -> None:
        self._items[item.index] = item
        self._note_status(item, item.job.status)
        deadline = self._job_deadline
        self._scheduler.add(
            item.index,
            item.submitted_at,
            known_age=known_age,
            deadline=None if deadline is None else item.submitted_at + deadline,
        )
        if (due := self._scheduler.next_due()) is not None:
            self._poke(due)

    # -- rate limits (AIMD) ------------------------------------------------------------------

    def _on_rate_limit(self, retry_after: float | None) -> None:
        now = self._clock.now()
        # One halving per pause window, not one per refused request of a burst.
        if now - self._last_halving >= max(retry_after or 0.0, 1.0):
            self._last_halving = now
            self._limiter.total_tokens = max(1, int(self._limiter.total_tokens) // 2)
            self._successes = 0

    def _on_success(self) -> None:
        limit = int(self._limiter.total_tokens)
        if limit >= self.max_concurrency:
            return
        self._successes += 1
        if self._successes >= limit:  # additive increase: +1 per window of successes
            self._successes = 0
            self._limiter.total_tokens = limit + 1

    # -- polling -----------------------------------------------------------------------------

    def _poke(self, due: float) -> None:
        if self._wake is not None and due < self._wake_at:
            self._wake.cancel()

    def _take_due(self, now: float) -> int | None:
        """The key of a check due at *now*, if the poll budget allows one (takes a token)."""
        if self._refilled == -math.inf:
            self._refilled = now
        tokens = min(self._burst, self._tokens + (now - self._refilled) * self._poll_rate)
        self._refilled = now
        key = None
        if tokens >= 1 - 1e-9:
            key = self._scheduler.pop_due(now)
            if key is not None:
                tokens -= 1
        self._tokens = tokens
        return key

    async def _poller(self, send: MemoryObjectSendStream[int]) -> None:
        """Hand due checks to idle poll workers; sleep until the next is due (or a poke)."""
        clock, scheduler = self._clock, self._scheduler
        while True:
            due = scheduler.next_due()
            if due is None and not self._feeding and not self._pending_submits and not self._items:
                return
            now = clock.now()
            if due is not None and due <= now:
                key = self._take_due(now)
                if key is not None:
                    await _send(send, key)
                    continue
                if self._tokens >= 1 - 1e-9:
                    continue  # a newer plan moved that check later: look again
                wait = (1 - self._tokens) / self._poll_rate
            elif due is None:
                wait = scheduler.max_interval
            else:
                wait = due - now
            wait = max(wait, 1e-3)  # float dust must not spin the loop
            with anyio.CancelScope() as scope:
                self._wake, self._wake_at = scope, now + wait
                await clock.sleep(wait)
            self._wake, self._wake_at = None, math.inf

    async def _poll_worker(self, receive: MemoryObjectReceiveStream[int]) -> None:
        """
        Check the jobs the poller hands over; while more checks are due, take them directly.

        Under load (every worker busy, checks waiting) a worker goes from one check to the
        next without a hand-over through the poller: no task switch per check.
        """
        async with receive:
            while True:
                try:
                    index: int | None = await _receive(receive)
                except anyio.EndOfStream:
                    return
                while index is not None:
                    item = self._items.get(index)
                    if item is not None:
                        await self._busy_check(item)
                    try:
                        index = receive.receive_nowait()  # a check the poller holds goes first
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        index = self._take_due(self._clock.now())

    async def _busy_check(self, item: _Item) -> None:
        """Check *item*, counted as a busy worker (submits wait while every worker is)."""
        self._checks_busy += 1
        try:
            await self._check(item)
        finally:
            self._checks_busy -= 1
            eased = self._polls_eased
            freed = eased is not None and self._checks_busy < self._poll_workers
            if eased is not None and freed:
                self._polls_eased = None
                eased.set()
        if freed:
            # A submit waits for a free worker: let it have its turn first.
            await anyio.lowlevel.checkpoint()

    async def _polls_first(self) -> None:
        """
        Hold a submit while every poll worker is busy.

        When the client's CPU is the bottleneck, a due check is worth more than a new
        submit: a finished job waits for every check queued before its own, while a
        submit held back only starts its job a little later.
        """
        while self._checks_busy >= self._poll_workers:
            if self._polls_eased is None:
                self._polls_eased = anyio.Event()
            await self._polls_eased.wait()

    async def _check(self, item: _Item) -> None:
        scheduler, clock = self._scheduler, self._clock
        try:
            job = await self._client.get_job(self.app_id, item.job.id)
        except NotFoundError as exc:
            await self._finish(item, OutcomeKind.FAILED, item.job, exc)
            return
        except RunGenError:
            self._counter.poll_errors += 1
            scheduler.retry_later(item.index, clock.now())
            return
        finally:
            self._counter.status_requests += 1
        item.job = job
        now = clock.now()
        status = job.status
        self._note_status(item, status)
        if status.is_terminal:
            self._observed_done += status is not JobStatus.CANCELED
            scheduler.checked(item.index, now, finished=True)
            kind = (
                OutcomeKind.COMPLETED
                if status.is_success
                else OutcomeKind.FAILED
                if status is JobStatus.FAILED
                else OutcomeKind.CANCELED
            )
            await self._finish(item, kind, job, None)
            return
        if self._job_deadline is not None and now - item.submitted_at >= self._job_deadline:
            await self._time_out(item)
            return
        scheduler.checked(item.index, now, finished=False)
        if (due := scheduler.next_due()) is not None:
            self._poke(due)

    async def _time_out(self, item: _Item) -> None:
        job = item.job
        if self._cancel_timed_out:
            try:
                job = await self._client.cancel_job(self.app_id, job.id)
            except ConflictError:
                pass  # it finished meanwhile; report the timeout all the same
            except RunGenError:
                self._counter.poll_errors += 1
        await self._finish(item, OutcomeKind.TIMED_OUT, job, None)

    def _note_status(self, item: _Item, status: JobStatus | None) -> None:
        counter = self._counter
        old = item.status
        if old is not None:
            if old.is_pending:
                counter.queued -= 1
            elif old.is_active:
                counter.running -= 1
        if status is not None and not status.is_terminal:
            if status.is_pending:
                counter.queued += 1
            elif status.is_active:
                counter.running += 1
        item.status = status if status is not None and not status.is_terminal else None

    # -- outcomes ----------------------------------------------------------------------------

    async def _finish(
        self, item: _Item, kind: OutcomeKind, job: Job | None, error: BaseException | None
    ) -> None:
        if self._items.pop(item.index, None) is None:
            return
        self._note_status(item, None)
        self._scheduler.remove(item.index)
        await self._emit(
            Outcome(index=item.index, input=item.input, kind=kind, job=job, error=error)
        )
        if not self._items:
            self._poke(-math.inf)  # the poller may be done

    async def _finish_unsubmitted(
        self, index: int, value: Any, kind: OutcomeKind, error: BaseException
    ) -> None:
        await self._emit(Outcome(index=index, input=value, kind=kind, job=None, error=error))
        self._poke(-math.inf)  # the poller may be done, or may take the next input

    async def _emit(self, outcome: Outcome) -> None:
        if self._journal is not None:
            self._journal.record_finished(outcome.index, outcome.to_journal())
        self._counter.count(outcome.kind)
        await self._out_send.send((outcome, True))  # its slot is freed when it is taken
        if self._on_progress is not None:
            self._on_progress(self.stats)

    async def _stop_in_flight(self) -> None:
        """Cancel (or leave running) what is still in flight; shielded and time-boxed."""
        items = sorted(self._items.values(), key=lambda item: item.index)
        self._items.clear()
        if not items:
            return
        kind = OutcomeKind.CANCELED if self._cancel_on_exit else OutcomeKind.TIMED_OUT
        cancelled: set[str] = set()
        if self._cancel_on_exit:
            limiter = anyio.CapacityLimiter(16)

            async def cancel(item: _Item) -> None:
                async with limiter:
                    try:
                        await self._client.cancel_job(self.app_id, item.job.id)
                    except ConflictError:
                        pass  # already finished: nothing runs any more
                    except RunGenError:
                        return
                    cancelled.add(item.job.id)

            with anyio.move_on_after(_CANCEL_TIMEOUT, shield=True):
                async with anyio.create_task_group() as tg:
                    for item in items:
                        tg.start_soon(cancel, item)
        for item in items:
            job_id = item.job.id
            (self.cancelled_job_ids if job_id in cancelled else self.left_running_job_ids).append(
                job_id
            )
            error = RunGenError(
                f"the batch stopped before job {job_id!r} finished; it was "
                + ("cancelled" if job_id in cancelled else "left running")
            )
            outcome = Outcome(
                index=item.index, input=item.input, kind=kind, job=item.job, error=error
            )
            self.unfinished.append(outcome)
            self._counter.count(outcome.kind)
            if self._journal is not None and job_id in cancelled:
                # A resumed run submits this item again, under a fresh key.
                self._journal.record_abandoned(item.index, job_id)


async def _send(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Hand *item* to a waiting receiver at once if one is there; else wait (a checkpoint)."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def _receive(stream: MemoryObjectReceiveStream[T]) -> T:
    """Take an item that is already waiting without yielding first; else wait for one."""
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        return await stream.receive()


def _restored(app_id: str, value: Any, known: JournalItem) -> Outcome:
    """The outcome an earlier run journaled for an item (AMBIGUOUS if never confirmed)."""
    job = structure_job(known.job, app_id) if known.job is not None else None
    if known.unconfirmed:
        cause = f" ({known.error})" if known.error else ""
        error: RunGenError | None = RunGenError(
            f"the submit of input {known.index} was never confirmed{cause}: the API may or may "
            f"not have created its job; its idempotency key is {known.key!r}. Pass "
            "resend_unconfirmed=True (CLI: --resend-unconfirmed) to send it again under that "
            "key, safe only where the API honours keys"
        )
        kind = OutcomeKind.AMBIGUOUS
    else:
        error = RunGenError(known.error) if known.error else None
        kind = OutcomeKind(known.kind or "FAILED")
    return Outcome(index=known.index, input=value, kind=kind, job=job, error=error, resumed=True)


async def _aiter(values: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any]:
    if isinstance(values, AsyncIterable):
        async for value in values:
            yield value
    else:
        for value in values:
            yield value
