"""
Sweeps by the app's job counters: one ``GET /app`` a tick instead of a guess per job.

Before any run time is known, checking each job of the first wave on a guess costs several
requests per job. The app's counters (completed + failed, against a baseline taken at the
start) tell how many jobs have finished; the parked jobs are all checked once enough of
them are done. Other traffic on the app only makes sweeps come early, never late.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import anyio.lowlevel

from .._exceptions import RunGenError
from ._cohort import PLACE_CHUNK
from ._outcomes import StatsCounter
from ._scheduler import PollScheduler

if TYPE_CHECKING:
    from .._client import AsyncRunGen
    from ._poll import PollLane

#: Parked jobs that make a GET /app a tick worth it (below: they are checked one by one).
_WORTH_SWEEPING = 2


class AppWatcher:
    """Reads the app's job counters every tick and sweeps the *lane*'s parked jobs."""

    def __init__(
        self,
        client: AsyncRunGen,
        app_id: str,
        *,
        scheduler: PollScheduler[int],
        counter: StatsCounter,
        lane: PollLane,
    ) -> None:
        self._client = client
        self._clock = client.clock
        self._app_id = app_id
        self._scheduler = scheduler
        self._cohort = scheduler.cohort
        self._counter = counter
        self._lane = lane

    async def run(self) -> None:
        """Watch until nothing is parked or in flight (or the app has no counters)."""
        client, clock, cohort, lane = self._client, self._clock, self._cohort, self._lane
        model = self._scheduler.model
        try:
            app = await client.get_app(self._app_id)
        except RunGenError:
            return
        if app.jobs is None:
            return
        baseline = app.jobs.completed + app.jobs.failed
        started = clock.now()
        cohort.sweeping = True
        while True:
            # A tick of 4 % of the run time (or of the time so far, before one is known).
            span = model.minimum if len(model) else clock.now() - started
            await clock.sleep(min(2.0, max(0.1, 0.04 * span)))
            if not lane.busy():
                return
            if not lane.more_coming() and cohort.parked <= _WORTH_SWEEPING:
                # So few jobs left to sweep that checking them one by one costs no more
                # than a GET /app a tick: stop asking for the app (once per batch, then).
                self._stop()
                return
            if not cohort.parked:
                continue
            asked = clock.now()
            try:
                app = await client.get_app(self._app_id)
            except RunGenError:
                continue
            finally:
                self._counter.status_requests += 1
            counters = app.jobs
            if counters is None:
                self._stop()
                return
            cohort.queueing = counters.in_queue > 0
            unseen = counters.completed + counters.failed - baseline - lane.observed_done
            if unseen <= 0:
                cohort.quiet_until = asked  # every tracked job was running then
                continue
            await self._sweep(unseen, counters.in_progress)

    async def _sweep(self, unseen: int, in_progress: int) -> None:
        """*unseen* jobs have finished: sweep the parked ones if enough of them may be done."""
        cohort, lane = self._cohort, self._lane
        now = self._clock.now()
        if not cohort.finishing:
            cohort.wake_scouts(now)
            lane.poke(now)
        candidates = cohort.sweepable(now)
        if cohort.queueing:
            # Jobs start in submission order, so the unseen finished ones are among the
            # oldest (running + finished) of them.
            candidates = candidates[: in_progress + unseen]
        threshold = cohort.sweep_threshold or 1.0
        if candidates and unseen >= threshold * len(candidates):
            # In chunks, oldest first: 10,000 jobs made due in one step hold the loop.
            for start in range(0, len(candidates), PLACE_CHUNK):
                cohort.sweep(now, candidates[start : start + PLACE_CHUNK])
                lane.poke(-math.inf)
                await anyio.lowlevel.checkpoint()

    def _stop(self) -> None:
        """Sweep no more: the parked jobs are placed by the model from now on."""
        self._cohort.stop_sweeping(self._clock.now())
        self._lane.poke(-math.inf)
