"""
Stopping a batch early: cancel the jobs still in flight (or leave them), and say which.

`cancelled_job_ids` holds only jobs the API cancelled; a cancel answered 409 means the job
had already finished; the rest are left running, each with the reason its cancel failed,
and a warning says how many and how to cancel them later.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import anyio

from .._exceptions import ConflictError, JobTimeoutError, RunGenError
from ._outcomes import Outcome, OutcomeKind, StatsCounter, make_outcome
from ._poll import Item

if TYPE_CHECKING:
    from .._client import AsyncRunGen
    from ._engine import Batch

#: Seconds all the cancels of a stop may take together (shielded).
CANCEL_TIMEOUT = 10.0
logger = logging.getLogger("rungen_async")


async def stop_in_flight(
    batch: Batch,
    items: list[Item],
    *,
    client: AsyncRunGen,
    cancel: bool,
    counter: StatsCounter,
) -> None:
    """
    Cancel *items* through *client* (if *cancel*) and record on *batch* what became of each.

    Each becomes an unfinished outcome, counted by *counter*.
    """
    cancelled: set[str] = set()
    finished: set[str] = set()
    failed: dict[str, BaseException] = {}
    if cancel:
        limiter = anyio.CapacityLimiter(16)

        async def cancel_one(item: Item) -> None:
            async with limiter:
                try:
                    await client.cancel_job(batch.app_id, item.job.id)
                except ConflictError:
                    finished.add(item.job.id)  # already finished: nothing runs any more
                except RunGenError as exc:
                    failed[item.job.id] = exc
                else:
                    cancelled.add(item.job.id)

        with anyio.move_on_after(CANCEL_TIMEOUT, shield=True):
            async with anyio.create_task_group() as tg:
                for item in items:
                    tg.start_soon(cancel_one, item)
    for item in items:
        outcome = _report(batch, item, cancel, cancelled, finished, failed)
        batch.unfinished.append(outcome)
        counter.count(outcome.kind)
    batch.cancel_errors.update(failed)
    if batch.journal is not None:
        batch.journal.left_running(batch.left_running_job_ids)
    if batch.left_running_job_ids:
        _warn_left_running(batch, failed)


def warn_no_user_id(app_id: str) -> None:
    """Say at batch start that cancels on exit will be refused: no user id is configured."""
    logger.warning(
        "batch on app %s: no user id is configured (RUNGEN_USER_ID or "
        "AsyncRunGen(user_id=...)), so the API will refuse to cancel its jobs if the "
        "batch is left early; they would be left running and listed in "
        "left_running_job_ids",
        app_id,
    )


def left_running_note(batch: Batch) -> str:
    """A note for the exception that ended *batch*: the jobs it left running."""
    ids = batch.left_running_job_ids
    return (
        f"rungen batch {batch.batch_id}: {len(ids)} job(s) left running: "
        + " ".join(ids[:20])
        + (" ..." if len(ids) > 20 else "")
    )


def _report(
    batch: Batch,
    item: Item,
    cancel: bool,
    cancelled: set[str],
    finished: set[str],
    failed: dict[str, BaseException],
) -> Outcome:
    job_id = item.job.id
    kind = OutcomeKind.TIMED_OUT
    if job_id in cancelled:
        kind, then = OutcomeKind.CANCELED, "it was cancelled"
        batch.cancelled_job_ids.append(job_id)
        if batch.journal is not None:
            # A resumed run submits this item again, under a fresh key.
            batch.journal.record_abandoned(item.index, job_id)
    elif job_id in finished:
        then = "it had already finished (a resumed run reads its result)"
        batch.already_finished_job_ids.append(job_id)
    else:
        batch.left_running_job_ids.append(job_id)
        if job_id in failed:
            then = f"cancelling it failed ({failed[job_id]}); it may still be running"
        elif cancel:
            then = f"its cancel did not finish within {CANCEL_TIMEOUT} s; it may be running"
        else:
            then = "it was left running (cancel_on_exit=False)"
    error = JobTimeoutError(
        f"the batch stopped before job {job_id!r} finished; {then}",
        app_id=batch.app_id,
        job_id=job_id,
        job=item.job,
    )
    return make_outcome(kind, index=item.index, input=item.input, job=item.job, error=error)


def _warn_left_running(batch: Batch, failed: dict[str, BaseException]) -> None:
    reason = next(iter(failed.values()), None)
    how = (
        f"cancel them with `rungen jobs cancel --journal {batch.journal.path} --user-id U`"
        if batch.journal is not None
        else "cancel them with AsyncRunGen(user_id=...).cancel_job(app_id, job_id) "
        "for each id in left_running_job_ids"
    )
    logger.warning(
        "batch %s on app %s stopped early and left %d job(s) running%s; %s",
        batch.batch_id,
        batch.app_id,
        len(batch.left_running_job_ids),
        f" (cancel failed: {reason})" if reason is not None else "",
        how,
    )
