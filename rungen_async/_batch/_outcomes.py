"""What a batch reports: an `Outcome` per input, `BatchStats` snapshots, a `BatchResult`."""

from __future__ import annotations

import enum
from typing import Any

from attrs import frozen

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


@frozen(kw_only=True)
class Outcome:
    """
    How one input of a batch ended.

    Attributes:
        index: The input's position (0-based) in the batch's inputs.
        input: The input itself.
        kind: How it ended.
        job: The last state of its job, when one was created.
        error: Why it did not complete, when it did not.
        resumed: Read back from the journal of an earlier run, not redone.
    """

    index: int
    input: Any
    kind: OutcomeKind
    job: Job | None = None
    error: BaseException | None = None
    resumed: bool = False

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
        self, *, now: float, in_flight: int, retries: int, submit_concurrency: int
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
        )


@frozen(kw_only=True)
class BatchResult:
    """
    Every outcome of a finished (or stopped) batch, in input order, with its stats.

    Items the batch never reached (it stopped before reading them) have no outcome.
    """

    outcomes: tuple[Outcome, ...]
    stats: BatchStats
    cancelled_job_ids: tuple[str, ...] = ()
    left_running_job_ids: tuple[str, ...] = ()

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
        return [outcome.job for outcome in self.outcomes if outcome.ok and outcome.job]
