"""
The jobs a `PollScheduler` parks until it knows when to check them, and their release.

A batch's first wave is submitted before any run time is known: checking it by guesswork
costs requests, so its jobs are parked (one rare safety check each). They come off the
park in two ways. The batch reads the app's job counters and *sweeps* the parked jobs
old enough to be done once enough have finished; or the model, once three scouts have
finished, *releases* them, and each is placed where the model says. A release of 10,000
jobs is placed `PLACE_CHUNK` at a time so no step of the engine holds the event loop.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import TYPE_CHECKING, Final, Generic, TypeVar

if TYPE_CHECKING:
    from ._scheduler import PollScheduler

K = TypeVar("K", bound=Hashable)

#: Jobs placed per step when the model releases a cohort (well under 1 ms of CPU each).
PLACE_CHUNK: Final = 1024


class Cohort(Generic[K]):
    """
    The parked jobs of a `PollScheduler` (its `cohort`) and the batch's handle on them.

    Args:
        scheduler: The scheduler whose jobs these are.
        sweep_threshold: See `PollScheduler`.
    """

    def __init__(self, scheduler: PollScheduler[K], sweep_threshold: float | None) -> None:
        self._scheduler = scheduler
        self._keys: set[K] = set()
        #: Hold jobs submitted before the model matured (the cohort) until `sweep()` is
        #: called; the batch sweeps when the app's job counters say enough have finished.
        self.sweeping = False
        #: Set by the batch while the app reports queued jobs: finishes then come in
        #: submission order, so every job waits for oldest-first sweeps.
        self.queueing = False
        self.sweep_threshold = sweep_threshold
        #: Set (by `wake_scouts`) once the app's counters show jobs finishing.
        self.finishing = False
        #: The latest time at which the app's counters showed no finished job the batch
        #: had not seen: every job still tracked was running then.
        self.quiet_until = -math.inf
        self._placement: _Placement[K] | None = None  # a large release, placed in chunks
        self._place_again = False

    @property
    def parked(self) -> int:
        """How many jobs wait for the model or for a sweep."""
        return len(self._keys)

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def park(self, key: K, age: float, now: float) -> float:
        """Park *key* until a sweep or the model places it; returns its rare safety check."""
        self._keys.add(key)
        scheduler = self._scheduler
        return now + scheduler._clamp(max(scheduler.max_interval, age))

    def discard(self, key: K) -> None:
        """*key* is off the park (due, finished or removed)."""
        self._keys.discard(key)

    def waits(self) -> bool:
        """Whether the first wave stays parked: too few samples yet, or a queueing app."""
        scheduler = self._scheduler
        return len(scheduler.model) < scheduler.mature_samples or (self.sweeping and self.queueing)

    def sweepable(self, now: float) -> list[K]:
        """
        The parked jobs old enough to have finished, oldest (likeliest done) first.

        Once a run time has been measured, younger jobs (refills submitted since) cannot
        be done yet: counting them would hold back the sweep of the old ones.
        """
        jobs, model = self._scheduler._jobs, self._scheduler.model
        if not len(model):
            keys = list(self._keys)
        else:
            oldest_start = now - model.minimum * 0.9
            keys = [key for key in self._keys if jobs[key].submitted_at <= oldest_start]
        keys.sort(key=lambda key: jobs[key].submitted_at)
        return keys

    def sweep(self, now: float, keys: list[K]) -> int:
        """Make the parked jobs *keys* due at *now*, in their order; returns how many."""
        push = self._scheduler._push
        for key in keys:  # same time: the heap keeps push order
            if key in self._keys:
                push(key, now)
        return len(keys)

    def stop_sweeping(self, now: float) -> None:
        """Give up on sweeps (no job counters): place parked jobs by the model instead."""
        self.sweeping = False
        self.release(now)

    def wake_scouts(self, now: float) -> None:
        """
        Jobs have started to finish (the app's counters say so): check the scouts now.

        While sweeping, scouts wait for this instead of being checked from their first
        second; from here on they are checked densely until the model has samples.
        """
        if self.finishing:
            return
        self.finishing = True
        jobs, push = self._scheduler._jobs, self._scheduler._push
        for key in [key for key in self._keys if jobs[key].scout]:
            self._keys.discard(key)
            push(key, now)

    @property
    def placing(self) -> bool:
        """Whether a large release is being placed: call `place` until this is False."""
        return self._placement is not None

    def place(self, now: float) -> None:
        """Place the next chunk of the release under way (see `placing`)."""
        placement = self._placement
        if placement is None or placement.step(now):
            return
        self._placement = None
        if self._place_again:  # released again while this one was placed
            self._place_again = False
            self.release(now)

    def release(self, now: float) -> None:
        """Place every parked job the model can place now (in chunks if there are many)."""
        if self._placement is not None:
            self._place_again = True
            return
        jobs, heap = self._scheduler._jobs, self._scheduler._heap
        waits = self.waits()
        keys = [(key, heap.seq(key)) for key in self._keys if not (jobs[key].cohort and waits)]
        if not keys:
            return
        placement = _Placement(self._scheduler, self._keys, keys)
        if len(keys) <= PLACE_CHUNK:
            while placement.step(now):
                pass
        else:
            self._placement = placement


class _Placement(Generic[K]):
    """
    The release of parked *keys* (each with its heap sequence number when released), a
    chunk of `PLACE_CHUNK` per `step`, in three phases: plan each job by the model, time
    the burst they make (`_BurstLead`), push them.

    A job rescheduled meanwhile (checked, swept or removed) keeps its new schedule.
    """

    def __init__(
        self,
        scheduler: PollScheduler[K],
        parked: set[K],
        keys: list[tuple[K, int | None]],
    ) -> None:
        self._scheduler = scheduler
        self._parked = parked
        self._keys = keys
        self._planned: list[tuple[float, K, int | None]] = []
        self._next = 0
        self._burst: _BurstLead | None = None
        self._lead: float | None = None

    def step(self, now: float) -> bool:
        """Do one chunk of the work; whether there is more."""
        if self._lead is not None:
            return self._push(now, self._lead)
        if self._burst is not None:
            self._lead = self._burst.step(now)
            if self._lead is not None:
                self._next = 0
            return True
        keys, parked = self._keys, self._parked
        scheduler = self._scheduler
        jobs, heap = scheduler._jobs, scheduler._heap
        for key, seq in keys[self._next : self._next + PLACE_CHUNK]:
            job = jobs.get(key)
            if job is None or key not in parked or heap.seq(key) != seq:
                continue  # finished, swept or checked meanwhile: that schedule stands
            parked.discard(key)  # `plan` parks it again if it must wait
            when = max(now, scheduler._plan(key, job, now))
            self._planned.append((when, key, heap.seq(key)))
        self._next += PLACE_CHUNK
        if self._next >= len(keys):  # the push order does not matter: times sorted alone
            times = sorted(when for when, _, _ in self._planned)
            self._burst = _BurstLead(times, scheduler.poll_rate)
        return True

    def _push(self, now: float, lead: float) -> bool:
        scheduler = self._scheduler
        jobs, heap = scheduler._jobs, scheduler._heap
        for when, key, seq in self._planned[self._next : self._next + PLACE_CHUNK]:
            job = jobs.get(key)
            if job is None or heap.seq(key) != seq:
                continue  # rescheduled since it was planned: that schedule stands
            job.lead = lead if not job.checks else 0.0
            scheduler._push(key, max(now, when - job.lead))
        self._next += PLACE_CHUNK
        return self._next < len(self._planned)


class _BurstLead:
    """
    How much earlier to start a burst of checks due at sorted *times* (chunk by chunk).

    Jobs submitted together come off the park due together; the poll budget (*rate*
    checks a second) drains them one by one, the last ones late. Starting the burst half
    its worst lateness early centres the drain on the planned times instead of trailing
    them.
    """

    def __init__(self, times: list[float], rate: float | None) -> None:
        self._times = times if rate and len(times) >= 2 else []
        self._gap = 1.0 / rate if rate else 0.0
        self._next = 0
        self._free = -math.inf  # when the budget can take the next check
        self._worst = 0.0

    def step(self, now: float) -> float | None:
        """Walk the next chunk of times; the lead once all are walked, else None."""
        times, gap = self._times, self._gap
        free, worst = self._free, self._worst
        for when in times[self._next : self._next + 4 * PLACE_CHUNK]:
            free = max(free, when) + gap
            worst = max(worst, free - when)
        self._free, self._worst = free, worst
        self._next += 4 * PLACE_CHUNK
        if self._next < len(times):
            return None
        return min(worst / 2, max(0.0, times[0] - now)) if times else 0.0
