"""
The poll lane: which submitted jobs to check when, within the batch's poll budget.

* `Dispatcher` pops due checks off the `PollScheduler` heap within a token-bucket budget
  of *poll_rate* checks per second and hands them to a few poll workers.
* `PollLane` tracks the jobs in flight: it checks one, notes its status, times it out,
  sweeps the parked cohort by the app's counters, and turns a finished job into an
  `Outcome`.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._clock import Clock
from .._exceptions import (
    ConflictError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
    RunGenError,
)
from .._models import Job, JobStatus
from ._budget import PollBudget
from ._outcomes import Outcome, OutcomeKind, StatsCounter, make_outcome
from ._scheduler import PollScheduler
from ._watch import AppWatcher

if TYPE_CHECKING:
    from .._client import AsyncRunGen

T = TypeVar("T")


class Item:
    """A submitted input and the last state of its job."""

    __slots__ = ("index", "input", "job", "status", "submitted_at")

    def __init__(self, index: int, input: Any, job: Job, submitted_at: float) -> None:
        self.index = index
        self.input = input
        self.job = job
        self.status: JobStatus | None = None
        self.submitted_at = submitted_at


class Dispatcher:
    """
    Hands due checks to poll workers, within a budget of *poll_rate* checks per second
    (growing up to *max_poll_rate* while no 429 comes, if that is higher: `PollBudget`).

    *check* checks one key; *done* says whether nothing more can ever become due.
    """

    def __init__(
        self,
        clock: Clock,
        scheduler: PollScheduler[int],
        *,
        poll_rate: float,
        max_poll_rate: float | None = None,
        check: Callable[[int], Awaitable[None]],
        done: Callable[[], bool],
    ) -> None:
        self._clock = clock
        self._scheduler = scheduler
        self._check = check
        self._done = done
        #: The poll budget, shared by the poller and the poll workers.
        self.budget = PollBudget(poll_rate, max_rate=max_poll_rate)
        scheduler.poll_rate = poll_rate
        self._wake: anyio.CancelScope | None = None
        self._wake_at = math.inf
        self.workers = max(2, min(32, math.ceil(self.budget.max_rate / 20)))
        self._checks_busy = 0
        self._polls_eased: anyio.Event | None = None
        #: Seconds due checks waited for the poll budget (0: the budget never bound).
        self.budget_bound_seconds = 0.0

    def poke(self, due: float) -> None:
        """Wake the poller if it sleeps past *due* (``-math.inf``: wake it now)."""
        if self._wake is not None and due < self._wake_at:
            self._wake.cancel()

    def _take_due(self, now: float) -> int | None:
        """The key of a check due at *now*, if the poll budget allows one (takes a token)."""
        budget = self.budget
        if not budget.ready(now):
            return None
        key = self._scheduler.pop_due(now)
        if key is not None:
            budget.spend()
        return key

    async def poller(self, send: MemoryObjectSendStream[int]) -> None:
        """Hand due checks to idle poll workers; sleep until the next is due (or a poke)."""
        clock, scheduler = self._clock, self._scheduler
        while True:
            if scheduler.placing:  # a released cohort: a chunk, then let others run
                scheduler.place(clock.now())
                await anyio.lowlevel.checkpoint()
                continue
            bound = False
            due = scheduler.next_due()
            if due is None and self._done():
                return
            now = clock.now()
            if due is not None and due <= now:
                key = self._take_due(now)
                if key is not None:
                    try:
                        await send_soon(send, key)
                    except anyio.BrokenResourceError:
                        return  # every worker is gone: the batch is stopping
                    continue
                if self.budget.ready(now):
                    continue  # a newer plan moved that check later: look again
                wait = self.budget.wait()
                bound = True
            elif due is None:
                wait = scheduler.max_interval
            else:
                wait = due - now
            wait = max(wait, 1e-3)  # float dust must not spin the loop
            with anyio.CancelScope() as scope:
                self._wake, self._wake_at = scope, now + wait
                await clock.sleep(wait)
            self._wake, self._wake_at = None, math.inf
            if bound:  # a due check waited for the budget, not for its time
                self.budget_bound_seconds += clock.now() - now
                if self.budget.bound(clock.now()):
                    scheduler.poll_rate = self.budget.rate

    def throttled(self) -> None:
        """A status check got a 429: an adaptive budget halves."""
        if self.budget.throttled(self._clock.now()):
            self._scheduler.poll_rate = self.budget.rate

    async def worker(self, receive: MemoryObjectReceiveStream[int]) -> None:
        """
        Check the jobs the poller hands over; while more checks are due, take them directly.

        Under load (every worker busy, checks waiting) a worker goes from one check to the
        next without a hand-over through the poller: no task switch per check.
        """
        async with receive:
            while True:
                try:
                    key: int | None = await receive_soon(receive)
                except anyio.EndOfStream:
                    return
                while key is not None:
                    await self._busy_check(key)
                    try:
                        key = receive.receive_nowait()  # a check the poller holds goes first
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        key = self._take_due(self._clock.now())

    async def _busy_check(self, key: int) -> None:
        """Check *key*, counted as a busy worker (submits wait while every worker is)."""
        self._checks_busy += 1
        try:
            await self._check(key)
        finally:
            self._checks_busy -= 1
            eased = self._polls_eased
            freed = eased is not None and self._checks_busy < self.workers
            if eased is not None and freed:
                self._polls_eased = None
                eased.set()
        if freed:
            # A submit waits for a free worker: let it have its turn first.
            await anyio.lowlevel.checkpoint()

    async def polls_first(self) -> None:
        """
        Hold a submit while every poll worker is busy.

        When the client's CPU is the bottleneck, a due check is worth more than a new
        submit: a finished job waits for every check queued before its own, while a
        submit held back only starts its job a little later.
        """
        while self._checks_busy >= self.workers:
            if self._polls_eased is None:
                self._polls_eased = anyio.Event()
            await self._polls_eased.wait()


class PollLane:
    """
    The jobs in flight, checked through a `Dispatcher`; finished ones go to *emit*.

    *more_coming* says whether submits may still add jobs.
    """

    def __init__(
        self,
        client: AsyncRunGen,
        app_id: str,
        *,
        scheduler: PollScheduler[int],
        poll_rate: float,
        max_poll_rate: float | None = None,
        job_deadline: float | None,
        cancel_timed_out: bool,
        counter: StatsCounter,
        emit: Callable[[Outcome], Awaitable[None]],
        more_coming: Callable[[], bool],
    ) -> None:
        self._client = client
        # Status checks are never retried in place: the scheduler re-plans a failed one.
        self._checks = client.with_options(max_retries=0)
        self._clock = client.clock
        self._app_id = app_id
        self._scheduler = scheduler
        self._job_deadline = job_deadline
        self._cancel_timed_out = cancel_timed_out
        self._counter = counter
        self._emit = emit
        self._more_coming = more_coming
        self.items: dict[int, Item] = {}
        #: Jobs seen to finish (not cancelled): the app's counters count these too.
        self.observed_done = 0
        self.dispatcher = Dispatcher(
            self._clock,
            scheduler,
            poll_rate=poll_rate,
            max_poll_rate=max_poll_rate,
            check=self._check_key,
            done=lambda: not (self._more_coming() or self.items),
        )

    def poke(self, due: float) -> None:
        """Wake the poller if it sleeps past *due*."""
        self.dispatcher.poke(due)

    def track(self, item: Item, *, known_age: bool) -> None:
        """Start checking *item*'s job."""
        self.items[item.index] = item
        self._note_status(item, item.job.status)
        deadline = self._job_deadline
        self._scheduler.add(
            item.index,
            item.submitted_at,
            known_age=known_age,
            deadline=None if deadline is None else item.submitted_at + deadline,
        )
        if (due := self._scheduler.next_due()) is not None:
            self.poke(due)

    def take_all(self) -> list[Item]:
        """Stop tracking every job in flight; returns them in input order."""
        items = sorted(self.items.values(), key=lambda item: item.index)
        self.items.clear()
        return items

    def busy(self) -> bool:
        """Whether jobs are in flight or may still come."""
        return self._more_coming() or bool(self.items)

    def more_coming(self) -> bool:
        """Whether submits may still add jobs."""
        return self._more_coming()

    async def watch_app(self) -> None:
        """Sweep the parked cohort by the app's job counters (see `AppWatcher`)."""
        watcher = AppWatcher(
            self._client,
            self._app_id,
            scheduler=self._scheduler,
            counter=self._counter,
            lane=self,
        )
        await watcher.run()

    async def _check_key(self, index: int) -> None:
        item = self.items.get(index)
        if item is not None:
            await self._check(item)

    async def _check(self, item: Item) -> None:
        scheduler, clock = self._scheduler, self._clock
        try:
            job = await self._checks.get_job(self._app_id, item.job.id)
        except NotFoundError as exc:
            await self._finish(item, OutcomeKind.FAILED, item.job, exc)
            return
        except RunGenError as exc:
            # Not retried inside the call: a worker waiting out a Retry-After would hold one
            # of the few poll workers; the scheduler tries again once it has passed.
            self._counter.poll_errors += 1
            if isinstance(exc, RateLimitError):
                self.dispatcher.throttled()
            scheduler.retry_later(item.index, clock.now(), getattr(exc, "retry_after", None))
            return
        finally:
            self._counter.status_requests += 1
        item.job = job
        now = clock.now()
        status = job.status
        self._note_status(item, status)
        if status.is_terminal:
            self.observed_done += status is not JobStatus.CANCELED
            scheduler.checked(item.index, now, finished=True)
            if scheduler.placing:
                self.poke(-math.inf)  # the poller places the released cohort
            kind = (
                OutcomeKind.COMPLETED
                if status.is_success
                else OutcomeKind.FAILED
                if status is JobStatus.FAILED
                else OutcomeKind.CANCELED
            )
            error = None if status.is_success else JobFailedError(job)
            await self._finish(item, kind, job, error)
            return
        if self._job_deadline is not None and now - item.submitted_at >= self._job_deadline:
            await self._time_out(item)
            return
        scheduler.checked(item.index, now, finished=False)
        if (due := scheduler.next_due()) is not None:
            self.poke(due)

    async def _time_out(self, item: Item) -> None:
        job = item.job
        then = "left running"
        if self._cancel_timed_out:
            try:
                job = await self._client.cancel_job(self._app_id, job.id)
                then = "cancelled"
            except ConflictError:
                then = "it had finished meanwhile"
            except RunGenError as exc:
                self._counter.poll_errors += 1
                then = f"its cancel failed ({exc}), so it may still be running"
        error = JobTimeoutError(
            f"job {job.id!r} on app {self._app_id!r} passed its job_deadline of "
            f"{self._job_deadline} s; {then}",
            app_id=self._app_id,
            job_id=job.id,
            job=job,
        )
        await self._finish(item, OutcomeKind.TIMED_OUT, job, error)

    def _note_status(self, item: Item, status: JobStatus | None) -> None:
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

    async def _finish(
        self, item: Item, kind: OutcomeKind, job: Job | None, error: BaseException | None
    ) -> None:
        if self.items.pop(item.index, None) is None:
            return
        self._note_status(item, None)
        self._scheduler.remove(item.index)
        await self._emit(
            make_outcome(kind, index=item.index, input=item.input, job=job, error=error)
        )
        if not self.items:
            self.poke(-math.inf)  # the poller may be done


async def send_soon(stream: MemoryObjectSendStream[T], item: T) -> None:
    """Hand *item* to a waiting receiver at once if one is there; else wait (a checkpoint)."""
    try:
        stream.send_nowait(item)
    except anyio.WouldBlock:
        await stream.send(item)


async def receive_soon(stream: MemoryObjectReceiveStream[T]) -> T:
    """Take an item that is already waiting without yielding first; else wait for one."""
    try:
        return stream.receive_nowait()
    except anyio.WouldBlock:
        return await stream.receive()
