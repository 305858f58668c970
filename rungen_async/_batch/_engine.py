"""
The batch engine: lazy inputs, bounded submitters, one poll scheduler, nothing lost.

Tasks inside one task group:

* a feeder pulls inputs one at a time, only when a slot of *max_in_flight* is free;
* *max_concurrency* submitters send them through the `SubmitLane` (an AIMD limiter halves
  their number on a 429 and adds one back per window of successes);
* the `PollLane`'s poller pops due checks off the `PollScheduler` heap, within a
  poll-rate budget, and hands them to a few poll workers;
* finished items become `Outcome`s on a stream the caller iterates.

A failed item is an outcome, never an exception; a bug (in here or in a caller's callback)
cancels the batch and surfaces as an exception group.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import anyio
from anyio.abc import TaskGroup

from .._exceptions import InvalidInputError
from .._validation import check_id
from ._feed import Feeder
from ._journal import Journal
from ._outcomes import BatchResult, BatchStats, Outcome, StatsCounter
from ._poll import PollLane
from ._queue import OutcomeQueue
from ._scheduler import PollScheduler
from ._stop import left_running_note, stop_in_flight, warn_no_user_id
from ._submit import SubmitLane

if TYPE_CHECKING:
    from .._client import AsyncRunGen

#: Called with a fresh stats snapshot after each outcome.
ProgressCallback = Callable[[BatchStats], None]


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
        max_poll_rate: float | None = None,
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
        _check_options(
            app_id, max_concurrency, max_in_flight, poll_rate, max_poll_rate, job_deadline, deadline
        )
        self._client = client
        self._clock = client.clock
        self.app_id = app_id
        self.max_concurrency = max_concurrency
        self._deadline = deadline
        self._journal_path = journal
        self._resend_unconfirmed = resend_unconfirmed
        self._journal: Journal | None = None
        self._batch_id = batch_id
        self._cancel_on_exit = cancel_on_exit
        self._on_progress = on_progress
        self._scheduler = scheduler if scheduler is not None else PollScheduler[int]()
        self._counter = StatsCounter()
        self._submits = SubmitLane(client, app_id, max_concurrency=max_concurrency)
        self._polls = PollLane(
            client,
            app_id,
            scheduler=self._scheduler,
            poll_rate=poll_rate,
            max_poll_rate=max_poll_rate,
            job_deadline=job_deadline,
            cancel_timed_out=cancel_timed_out,
            counter=self._counter,
            emit=self._emit,
            more_coming=lambda: self._feeder.more_coming,
        )
        self._outcomes = OutcomeQueue(max_in_flight)
        self._feeder = Feeder(
            app_id,
            inputs,
            submits=self._submits,
            polls=self._polls,
            counter=self._counter,
            clock=self._clock,
            slots=self._outcomes.slots,
            restore=self._outcomes.restore,
            emit=self._emit,
            resend_unconfirmed=resend_unconfirmed,
        )
        self._tg: TaskGroup | None = None
        self._scopes: list[anyio.CancelScope] = []
        self._finished = False
        #: Job ids cancelled remotely when the batch was left early.
        self.cancelled_job_ids: list[str] = []
        #: Job ids left running remotely when the batch was left early.
        self.left_running_job_ids: list[str] = []
        #: Jobs it tried to cancel that had already finished (the cancel got 409).
        self.already_finished_job_ids: list[str] = []
        #: Job id to the error of a cancel that failed.
        self.cancel_errors: dict[str, BaseException] = {}
        #: Outcomes (CANCELED or TIMED_OUT) of items still in flight when the batch stopped.
        self.unfinished: list[Outcome] = self._feeder.unfinished
        self._retries_at_start = 0
        self._stop_listening: Callable[[], None] = lambda: None

    @property
    def journal(self) -> Journal | None:
        """The open journal, while the batch runs with one."""
        return self._journal

    @property
    def batch_id(self) -> str:
        """The batch's id; item *i* is submitted with idempotency key ``f"{batch_id}:{i}"``."""
        return self._journal.batch_id if self._journal else (self._batch_id or "")

    @property
    def stats(self) -> BatchStats:
        """A snapshot of the batch's progress; cheap enough to read every second."""
        return self._counter.snapshot(
            now=self._clock.now(),
            in_flight=len(self._polls.items),
            retries=self._client.retry_count - self._retries_at_start,
            submit_concurrency=self._submits.concurrency,
            poll_budget_bound_seconds=self._polls.dispatcher.budget_bound_seconds,
            poll_rate=self._polls.dispatcher.budget.rate,
        )

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._journal = _open_journal(
                self._journal_path, self.app_id, self._batch_id, self._resend_unconfirmed
            )
        except BaseException:
            self._outcomes.close()
            raise
        if self._journal is None and self._batch_id is None:
            self._batch_id = uuid.uuid4().hex
        self._feeder.journal, self._feeder.batch_id = self._journal, self.batch_id
        self._counter.started = self._clock.now()
        self._retries_at_start = self._client.retry_count
        self._stop_listening = self._client.add_rate_limit_listener(self._submits.on_rate_limit)
        if self._cancel_on_exit and self._client.user_id is None:
            warn_no_user_id(self.app_id)
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
                self._submits.stop()  # submits in flight still get their answers
                self._tg.cancel_scope.cancel()
            try:
                return bool(await self._tg.__aexit__(exc_type, exc, tb))
            finally:
                if not self._finished:
                    # Cancel (or leave running) what is in flight; shielded, time-boxed.
                    if items := self._polls.take_all():
                        await stop_in_flight(
                            self,
                            items,
                            client=self._client,
                            cancel=self._cancel_on_exit,
                            counter=self._counter,
                        )
                    if exc is not None and self.left_running_job_ids:
                        exc.add_note(left_running_note(self))
        finally:
            self._stop_listening()
            self._outcomes.close()
            if self._journal is not None:
                self._journal.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Outcome:
        # A plain iterator, not an async generator: breaking out leaves nothing to finalise.
        return await self._outcomes.take()

    async def _run(self) -> None:
        polls = self._polls
        try:
            async with anyio.create_task_group() as tg:
                send_items, receive_items = anyio.create_memory_object_stream[tuple[int, Any]]()
                send_polls, receive_polls = anyio.create_memory_object_stream[int]()
                async with send_polls:
                    async with receive_items:
                        for _ in range(self.max_concurrency):
                            tg.start_soon(self._feeder.submitter, receive_items.clone())
                    async with receive_polls:
                        for _ in range(polls.dispatcher.workers):
                            tg.start_soon(polls.dispatcher.worker, receive_polls.clone())
                    if self._deadline is not None:
                        tg.start_soon(self._until_cancelled, self._watchdog)
                    if self._scheduler.cohort.sweep_threshold:
                        tg.start_soon(self._until_cancelled, polls.watch_app)
                    poller = anyio.create_task_group()
                    async with poller:
                        poller.start_soon(polls.dispatcher.poller, send_polls)
                        await self._feeder.feed(send_items)
                for scope in self._scopes:
                    scope.cancel()
        finally:
            self._outcomes.end()  # the caller's iteration ends after the last outcome
        self._finished = True

    async def _until_cancelled(self, task: Callable[[], Any]) -> None:
        """Run *task* until it returns or the batch has nothing more in flight."""
        with anyio.CancelScope() as scope:
            self._scopes.append(scope)
            await task()

    async def _watchdog(self) -> None:
        assert self._deadline is not None
        await self._clock.sleep(self._deadline)
        assert self._tg is not None
        # Ends the caller's `async with` too; __aexit__ then stops what is in flight.
        self._tg.cancel_scope.cancel()

    # -- outcomes ----------------------------------------------------------------------------

    async def _emit(self, outcome: Outcome) -> None:
        if self._journal is not None:
            self._journal.record_finished(outcome.index, outcome.to_journal())
        self._counter.count(outcome.kind)
        await self._outcomes.put(outcome)  # its slot is freed when it is taken
        if self._on_progress is not None:
            self._on_progress(self.stats)


def _open_journal(
    path: str | None, app_id: str, batch_id: str | None, resend_unconfirmed: bool
) -> Journal | None:
    """The batch's journal at *path* (locked for this process), or None without one."""
    if path is None:
        return None
    return Journal(path, app_id=app_id, batch_id=batch_id, resend_unconfirmed=resend_unconfirmed)


def _check_options(
    app_id: str,
    max_concurrency: int,
    max_in_flight: int,
    poll_rate: float,
    max_poll_rate: float | None,
    job_deadline: float | None,
    deadline: float | None,
) -> None:
    """Refuse bad batch options with what to fix, before anything is sent."""
    check_id("app_id", app_id)
    for name, value in (("max_concurrency", max_concurrency), ("max_in_flight", max_in_flight)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"{name} must be a whole number >= 1, got {value!r}")
    if not poll_rate > 0:
        raise InvalidInputError(f"poll_rate must be > 0 requests per second, got {poll_rate!r}")
    if max_poll_rate is not None and not max_poll_rate >= poll_rate:
        raise InvalidInputError(
            f"max_poll_rate must be >= poll_rate ({poll_rate!r}) or None, got {max_poll_rate!r}"
        )
    for name, limit in (("job_deadline", job_deadline), ("deadline", deadline)):
        if limit is not None and not limit > 0:
            raise InvalidInputError(f"{name} must be > 0 seconds, got {limit!r}")


async def collect(batch: Batch) -> BatchResult:
    """Run *batch* to the end; every outcome in input order, with its stats (`run_batch`)."""
    outcomes: list[Outcome] = []
    async with batch:
        # Appended one by one, so a batch deadline keeps what arrived before it.
        async for outcome in batch:
            outcomes.append(outcome)  # noqa: PERF401
    outcomes.extend(batch.unfinished)
    outcomes.sort(key=lambda outcome: outcome.index)
    return BatchResult(
        outcomes=tuple(outcomes),
        stats=batch.stats,
        cancelled_job_ids=tuple(batch.cancelled_job_ids),
        left_running_job_ids=tuple(batch.left_running_job_ids),
        already_finished_job_ids=tuple(batch.already_finished_job_ids),
        cancel_errors=dict(batch.cancel_errors),
    )
