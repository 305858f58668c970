"""
Waiting for one job or one app: adaptive polling through the client's clock.

Checks start fast, grow by *factor* with jitter up to a cap, and drop back to fast when the
status moves (queued to running), so a short job is noticed quickly and a long one costs
few requests. Each check is an ordinary GET with the client's retries, so a transient 5xx
or 429 never fails a wait.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from attrs import field, frozen

from ._exceptions import AppFailedError, AppTimeoutError, JobFailedError, JobTimeoutError
from ._models import App, AppStatus, Job, JobStatus

if TYPE_CHECKING:
    from ._client import AsyncRunGen


def _non_negative(_: object, attribute: object, value: float) -> None:
    if value < 0:
        raise ValueError(f"PollPolicy.{getattr(attribute, 'name', '?')} must be >= 0")


@frozen(kw_only=True)
class PollPolicy:
    """
    How often a single wait checks the API.

    Args:
        initial_interval: Seconds before the first check of a fresh job, and the interval
            after a status change.
        factor: Each quiet check multiplies the interval by this.
        max_interval: Cap of the interval.
        jitter: Fraction of random spread on each interval (0.1: plus or minus 10 %), so
            many waiters don't poll in lockstep.
    """

    initial_interval: float = field(default=0.5, validator=_non_negative)
    factor: float = field(default=1.5, validator=_non_negative)
    max_interval: float = field(default=10.0, validator=_non_negative)
    jitter: float = field(default=0.1, validator=_non_negative)

    def next_interval(self, interval: float) -> float:
        """The interval after a quiet check that followed *interval*."""
        return min(self.max_interval, max(interval, 1e-3) * self.factor)

    def spread(self, interval: float) -> float:
        """*interval* with jitter applied."""
        if not self.jitter or not interval:
            return interval
        return interval * random.uniform(1 - self.jitter, 1 + self.jitter)


#: Called with each new state a wait sees.
JobObserver = Callable[[Job], None]


async def wait_for_job(
    client: AsyncRunGen,
    app_id: str,
    job: str | Job,
    *,
    deadline: float | None,
    poll: PollPolicy,
    on_update: JobObserver | None = None,
) -> Job:
    """Poll *job* until it is terminal; see `AsyncRunGen.wait_for_job`."""
    clock = client.clock
    started = clock.now()
    give_up = None if deadline is None else started + deadline
    interval = poll.initial_interval
    current: Job | None
    if isinstance(job, Job):
        job_id, current = job.id, job
        if job.status.is_success and job.result is None:
            # A submit may answer COMPLETED without the result: fetch it once.
            current = None
    else:
        job_id, current = job, None
    last_status: JobStatus | None = None if current is None else current.status
    while True:
        if current is not None:
            if current.status.is_terminal:
                if current.status.is_success:
                    return current
                raise JobFailedError(current)
            delay = poll.spread(interval)
            if give_up is not None:  # the last check falls on the deadline
                delay = min(delay, max(0.0, give_up - clock.now()))
            await clock.sleep(delay)
        current = await client.get_job(app_id, job_id)
        if on_update is not None:
            on_update(current)
        if current.status is not last_status:
            interval = poll.initial_interval  # new, or it moved: look again soon
        else:
            interval = poll.next_interval(interval)
        last_status = current.status
        if give_up is not None and clock.now() >= give_up and not current.status.is_terminal:
            _raise_timeout(app_id, job_id, current, deadline)


def _raise_timeout(app_id: str, job_id: str, job: Job | None, deadline: float | None) -> None:
    state = job.status.value if job is not None else "unknown"
    raise JobTimeoutError(
        f"job {job_id!r} on app {app_id!r} is still {state} after {deadline:g} s; it keeps "
        f"running remotely: wait_for_job({app_id!r}, {job_id!r}) re-attaches",
        app_id=app_id,
        job_id=job_id,
        job=job,
    )


async def wait_for_app(
    client: AsyncRunGen, app_id: str, *, deadline: float | None, poll: PollPolicy
) -> App:
    """Poll app *app_id* until it is RUNNING; see `AsyncRunGen.wait_for_app`."""
    clock = client.clock
    give_up = None if deadline is None else clock.now() + deadline
    interval = poll.initial_interval
    last: AppStatus | None = None
    while True:
        app = await client.get_app(app_id)
        status = app.status
        if status is AppStatus.RUNNING:
            return app
        if status is not None and status.is_failed:
            raise AppFailedError(f"app {app_id!r} is {status.value}", app=app)
        if status is AppStatus.STOPPED and app.configuration.active_workers == 0:
            raise AppFailedError(
                f"app {app_id!r} is STOPPED with 0 active workers: call start_app() first",
                app=app,
            )
        if give_up is not None and clock.now() >= give_up:
            raise AppTimeoutError(
                f"app {app_id!r} is still {status.value if status else 'unknown'} after "
                f"{deadline:g} s",
                app=app,
            )
        interval = poll.initial_interval if status is not last else poll.next_interval(interval)
        last = status
        delay = poll.spread(interval)
        if give_up is not None:
            delay = min(delay, max(0.0, give_up - clock.now()))
        await clock.sleep(delay)
