"""
The feed: inputs pulled one at a time as in-flight slots free, sent by the submitters.

`Feeder.feed` pulls the next input only once a slot of *max_in_flight* is free (a lazy
input of a million items costs what the jobs in flight cost); with a journal, an input an
earlier run finished is restored as its outcome, one it submitted is re-attached by job id,
and the rest go to the submitters, which send them through the `SubmitLane` and hand each
new job to the `PollLane`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from .._exceptions import AmbiguousRequestError, RunGenError
from .._models import Job, JobStatus
from .._serde import structure_job
from ._journal import Journal, JournalItem
from ._outcomes import Outcome, OutcomeKind, StatsCounter, make_outcome
from ._poll import Item, PollLane, receive_soon, send_soon
from ._submit import Refused, SubmitLane

if TYPE_CHECKING:
    from .._clock import Clock


class Feeder:
    """
    Pulls a batch's inputs and submits them; see the module docstring.

    *restore* takes an outcome an earlier run journaled (it holds no slot), *emit* a new
    one (it holds its slot until the caller takes it).
    """

    def __init__(
        self,
        app_id: str,
        inputs: Iterable[Any] | AsyncIterable[Any],
        *,
        submits: SubmitLane,
        polls: PollLane,
        counter: StatsCounter,
        clock: Clock,
        slots: anyio.Semaphore,
        restore: Callable[[Outcome], Awaitable[None]],
        emit: Callable[[Outcome], Awaitable[None]],
        resend_unconfirmed: bool,
    ) -> None:
        self._app_id = app_id
        self._inputs = inputs
        self._submits = submits
        self._polls = polls
        self._counter = counter
        self._clock = clock
        self._slots = slots
        self._restore = restore
        self._emit = emit
        self._resend_unconfirmed = resend_unconfirmed
        #: The batch's journal, if it has one (set once it is open).
        self.journal: Journal | None = None
        #: The batch id the idempotency keys derive from (without a journal).
        self.batch_id = ""
        self._feeding = True
        self._pending = 0  # inputs handed to the submitters and not yet submitted
        #: Outcomes of submits cut short by a stop (their answers outlasted the grace).
        self.unfinished: list[Outcome] = []

    @property
    def more_coming(self) -> bool:
        """Whether more jobs may still be submitted (inputs left, or submits pending)."""
        return self._feeding or bool(self._pending)

    async def feed(self, send: MemoryObjectSendStream[tuple[int, Any]]) -> None:
        """Pull every input, handing those to submit to the submitters through *send*."""
        journal = self.journal
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
                        restored = _restored(self._app_id, value, known)
                        self._counter.count(restored.kind, resumed=True)
                        await self._restore(restored)
                        continue
                    try:
                        self._slots.acquire_nowait()
                    except anyio.WouldBlock:
                        await self._slots.acquire()
                    if known is not None and known.state == "submitted" and known.job_id:
                        # Submitted by an earlier run: re-attach by id, never submit again.
                        job = Job(id=known.job_id, status=JobStatus.QUEUED)
                        self._polls.track(
                            Item(index, value, job, self._clock.now()), known_age=False
                        )
                        continue
                    self._pending += 1
                    await send_soon(send, (index, value))
        self._feeding = False
        self._polls.poke(-math.inf)

    async def submitter(self, receive: MemoryObjectReceiveStream[tuple[int, Any]]) -> None:
        """Submit the inputs *receive* brings, one at a time, until the feed ends."""
        async with receive:
            while True:
                try:
                    index, value = await receive_soon(receive)
                except anyio.EndOfStream:
                    return
                try:
                    await self._submit(index, value)
                finally:
                    self._pending -= 1
                    if not self.more_coming:
                        self._polls.poke(-math.inf)

    async def _submit(self, index: int, value: Any) -> None:
        journal = self.journal
        key = journal.key(index) if journal else f"{self.batch_id}:{index}"

        def before_send() -> None:
            if journal is not None:
                journal.record_submitting(index, value)

        job = await self._submits.submit(
            value, key, wait_turn=self._polls.dispatcher.polls_first, before_send=before_send
        )
        if isinstance(job, Refused) and job.stopped:
            # Stopped, and the answer outlasted the grace: journaled as unconfirmed.
            outcome = make_outcome(job.kind, index=index, input=value, error=job.error)
            if journal is not None:
                journal.record_finished(index, outcome.to_journal())
            self._counter.count(outcome.kind)
            self.unfinished.append(outcome)
            return
        if isinstance(job, Refused):
            await self._emit(make_outcome(job.kind, index=index, input=value, error=job.error))
            self._polls.poke(-math.inf)  # the poller may be done, or may take the next input
            return
        if journal is not None:
            journal.record_submitted(index, job.id)
        self._counter.submitted += 1
        self._polls.track(Item(index, value, job, self._clock.now()), known_age=True)


def _restored(app_id: str, value: Any, known: JournalItem) -> Outcome:
    """The outcome an earlier run journaled for an item (AMBIGUOUS if never confirmed)."""
    job = structure_job(known.job, app_id) if known.job is not None else None
    error: BaseException | None
    if known.unconfirmed:
        cause = f" ({known.error})" if known.error else ""
        error = AmbiguousRequestError(
            f"the submit of input {known.index} was never confirmed{cause}: the API may or may "
            f"not have created its job; its idempotency key is {known.key!r}. Pass "
            "resend_unconfirmed=True (CLI: --resend-unconfirmed) to send it again under that "
            "key, safe only where the API honours keys",
            method="POST",
            path=f"/app/{app_id}/run_async",
            idempotency_key=known.key,
        )
        kind = OutcomeKind.AMBIGUOUS
    else:
        error = RunGenError(known.error) if known.error else None
        kind = OutcomeKind(known.kind or "FAILED")
    return make_outcome(kind, index=known.index, input=value, job=job, error=error, resumed=True)


async def _aiter(values: Iterable[Any] | AsyncIterable[Any]) -> AsyncGenerator[Any]:
    if isinstance(values, AsyncIterable):
        async for value in values:
            yield value
    else:
        for value in values:
            yield value
