"""What a batch reports: an `Outcome` per input, `BatchStats` snapshots, a `BatchResult`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from attrs import Factory, frozen

from .._exceptions import AmbiguousRequestError
from .._models import Job


class OutcomeKind(enum.StrEnum):
    """How an item of a batch ended."""

    COMPLETED = "COMPLETED"  #: the job completed; `Outcome.job` has its result
    FAILED = "FAILED"  #: the job ended FAILED (or vanished: 404 on a status check)
    CANCELED = "CANCELED"  #: the job was cancelled, remotely or by stopping the batch
    REJECTED = "REJECTED"  #: the submit was refused (bad input, 4xx, rate limit exhausted)
    TIMED_OUT = "TIMED_OUT"  #: the per-job deadline passed, or the batch stopped first
    AMBIGUOUS = "AMBIGUOUS"  #: the submit's outcome is unknown; the error has the key


@frozen(kw_only=True, repr=False)
class Outcome:
    """
    How one input of a batch ended.

    A batch yields the precise subclasses (`Completed`, `Failed`, `Canceled`, `Rejected`,
    `TimedOut`, `Ambiguous`): ``isinstance(outcome, Completed)`` makes ``outcome.job`` a
    `Job` (never None) for a type checker, and every other kind carries an ``error``.

    Attributes:
        index: The input's position (0-based) in the batch's inputs.
        input: The input itself.
        kind: How it ended.
        job: The last state of its job, when one was created.
        error: Why it did not complete, with the server's message when there is one
            (a FAILED job's ``error``; a refused submit's status and body; an ambiguous
            submit's idempotency key).
        resumed: Read back from the journal of an earlier run, not redone.
    """

    index: int
    input: Any
    kind: OutcomeKind
    job: Job | None = None
    error: BaseException | None = None
    resumed: bool = False

    def __repr__(self) -> str:
        job = "" if self.job is None else f" job={self.job.id!r}"
        error = "" if self.error is None else f" error={type(self.error).__name__}"
        resumed = " resumed" if self.resumed else ""
        return f"<{type(self).__name__} #{self.index} {self.kind.value}{job}{error}{resumed}>"

    def _repr_html_(self) -> str:
        """A notebook card: the kind, the error, and the job's status and images."""
        from .._display import outcome_html

        return outcome_html(self)

    @property
    def ok(self) -> bool:
        """Whether the job COMPLETED."""
        return self.kind is OutcomeKind.COMPLETED

    @property
    def job_id(self) -> str | None:
        """The id of the job, when one was created."""
        return self.job.id if self.job is not None else None

    @property
    def idempotency_key(self) -> str | None:
        """For an AMBIGUOUS outcome: the key to re-send the submit with."""
        error = self.error
        return error.idempotency_key if isinstance(error, AmbiguousRequestError) else None

    def to_journal(self) -> dict[str, Any]:
        """The outcome as a journal event body."""
        job = self.job
        return {
            "kind": self.kind.value,
            "job": None
            if job is None
            else {
                "id": job.id,
                "status": job.status.value,
                "result": job.result,
                "execution_time": job.execution_time,
                "error": job.error,
            },
            "error": None if self.error is None else str(self.error),
        }


@frozen(kw_only=True, repr=False)
class Completed(Outcome):
    """The job COMPLETED; `job` holds its result."""

    kind: OutcomeKind = OutcomeKind.COMPLETED
    job: Job


@frozen(kw_only=True, repr=False)
class Failed(Outcome):
    """The job ended FAILED (or vanished); `error` has the job's own error message."""

    kind: OutcomeKind = OutcomeKind.FAILED
    error: BaseException


@frozen(kw_only=True, repr=False)
class Canceled(Outcome):
    """The job was cancelled, remotely or by stopping the batch."""

    kind: OutcomeKind = OutcomeKind.CANCELED
    error: BaseException


@frozen(kw_only=True, repr=False)
class Rejected(Outcome):
    """The submit was refused (invalid input, or a 4xx/5xx: `error` has status and body)."""

    kind: OutcomeKind = OutcomeKind.REJECTED
    error: BaseException


@frozen(kw_only=True, repr=False)
class TimedOut(Outcome):
    """The per-job deadline passed, or the batch stopped first (job left running)."""

    kind: OutcomeKind = OutcomeKind.TIMED_OUT
    error: BaseException


@frozen(kw_only=True, repr=False)
class Ambiguous(Outcome):
    """The submit may or may not have created a job; `idempotency_key` is its key."""

    kind: OutcomeKind = OutcomeKind.AMBIGUOUS
    error: BaseException


_CLASSES: dict[OutcomeKind, type[Outcome]] = {
    OutcomeKind.COMPLETED: Completed,
    OutcomeKind.FAILED: Failed,
    OutcomeKind.CANCELED: Canceled,
    OutcomeKind.REJECTED: Rejected,
    OutcomeKind.TIMED_OUT: TimedOut,
    OutcomeKind.AMBIGUOUS: Ambiguous,
}


def make_outcome(
    kind: OutcomeKind,
    *,
    index: int,
    input: Any,
    job: Job | None = None,
    error: BaseException | None = None,
    resumed: bool = False,
) -> Outcome:
    """The precise `Outcome` subclass for *kind* (the base class if a field is missing)."""
    cls = _CLASSES[kind]
    if (cls is Completed and job is None) or (cls is not Completed and error is None):
        cls = Outcome
    return cls(index=index, input=input, kind=kind, job=job, error=error, resumed=resumed)


@frozen(kw_only=True)
class BatchStats:
    """
    A snapshot of a batch's progress.

    Attributes:
        submitted: Jobs created so far.
        queued: In flight, last seen queued.
        running: In flight, last seen running.
        in_flight: Submitted and not yet finished.
        completed, failed, canceled, rejected, timed_out, ambiguous: Outcomes so far.
        resumed: Outcomes read back from the journal.
        retries: Requests the client retried since the batch began.
        status_requests: Status checks sent.
        poll_errors: Status checks that failed after the client's retries.
        submit_concurrency: The AIMD limit of concurrent submits now.
        elapsed: Seconds since the batch began.
        poll_budget_bound_seconds: Seconds due status checks waited for the poll budget
            (*poll_rate*) rather than for their time; above 0, raise *poll_rate* to see
            completions sooner (see `poll_budget_binds`), or let it grow (*max_poll_rate*).
        poll_rate: The poll budget now, status checks per second (it moves only with
            *max_poll_rate*).
    """

    submitted: int
    queued: int
    running: int
    in_flight: int
    completed: int
    failed: int
    canceled: int
    rejected: int
    timed_out: int
    ambiguous: int
    resumed: int
    retries: int
    status_requests: int
    poll_errors: int
    submit_concurrency: int
    elapsed: float
    poll_budget_bound_seconds: float = 0.0
    poll_rate: float = 0.0

    @property
    def poll_budget_binds(self) -> bool:
        """Whether the poll budget delayed status checks (completions seen late)."""
        return self.poll_budget_bound_seconds > 0

    @property
    def done(self) -> int:
        """Outcomes of every kind so far."""
        return (
            self.completed
            + self.failed
            + self.canceled
            + self.rejected
            + self.timed_out
            + self.ambiguous
        )

    @property
    def rate(self) -> float:
        """Outcomes per second since the batch began."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def status_requests_per_job(self) -> float:
        """Status checks per finished job so far."""
        finished = self.done - self.rejected - self.ambiguous - self.resumed
        return self.status_requests / finished if finished > 0 else 0.0


class StatsCounter:
    """The batch's mutable counters; `snapshot()` freezes them."""

    __slots__ = (
        "ambiguous",
        "canceled",
        "completed",
        "failed",
        "poll_errors",
        "queued",
        "rejected",
        "resumed",
        "running",
        "started",
        "status_requests",
        "submitted",
        "timed_out",
    )

    def __init__(self) -> None:
        self.started = 0.0
        self.submitted = self.queued = self.running = 0
        self.completed = self.failed = self.canceled = 0
        self.rejected = self.timed_out = self.ambiguous = self.resumed = 0
        self.status_requests = self.poll_errors = 0

    def count(self, kind: OutcomeKind, *, resumed: bool = False) -> None:
        """Count one outcome of *kind*."""
        name = kind.value.lower()
        setattr(self, name, getattr(self, name) + 1)
        if resumed:
            self.resumed += 1

    def snapshot(
        self,
        *,
        now: float,
        in_flight: int,
        retries: int,
        submit_concurrency: int,
        poll_budget_bound_seconds: float = 0.0,
        poll_rate: float = 0.0,
    ) -> BatchStats:
        """Freeze the counters."""
        return BatchStats(
            submitted=self.submitted,
            queued=self.queued,
            running=self.running,
            in_flight=in_flight,
            completed=self.completed,
            failed=self.failed,
            canceled=self.canceled,
            rejected=self.rejected,
            timed_out=self.timed_out,
            ambiguous=self.ambiguous,
            resumed=self.resumed,
            retries=retries,
            status_requests=self.status_requests,
            poll_errors=self.poll_errors,
            submit_concurrency=submit_concurrency,
            elapsed=now - self.started,
            poll_budget_bound_seconds=poll_budget_bound_seconds,
            poll_rate=poll_rate,
        )


@frozen(kw_only=True, repr=False)
class BatchResult:
    """
    Every outcome of a finished (or stopped) batch, in input order, with its stats.

    Items the batch never reached (it stopped before reading them) have no outcome.
    """

    outcomes: tuple[Outcome, ...]
    stats: BatchStats
    cancelled_job_ids: tuple[str, ...] = ()
    left_running_job_ids: tuple[str, ...] = ()
    #: Jobs the batch tried to cancel that had already finished (the cancel got 409).
    already_finished_job_ids: tuple[str, ...] = ()
    #: Job id to the error of a cancel that failed (the job may still be running).
    cancel_errors: Mapping[str, BaseException] = Factory(dict)

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"<BatchResult {len(self.outcomes)} outcomes: {s.completed} completed, "
            f"{len(self.outcomes) - s.completed} not; cancelled {len(self.cancelled_job_ids)}, "
            f"left running {len(self.left_running_job_ids)}>"
        )

    def _repr_html_(self) -> str:
        """A notebook summary: counts per kind, the first failures, thumbnails of the images."""
        from .._display import batch_html

        return batch_html(self)

    @property
    def ok(self) -> bool:
        """Whether every outcome COMPLETED."""
        return all(outcome.ok for outcome in self.outcomes)

    @property
    def failures(self) -> list[Outcome]:
        """The outcomes that did not complete."""
        return [outcome for outcome in self.outcomes if not outcome.ok]

    @property
    def jobs(self) -> list[Job]:
        """The completed jobs, in input order."""
        return [outcome.job for outcome in self.outcomes if isinstance(outcome, Completed)]
