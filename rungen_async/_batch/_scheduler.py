"""
The batch's one poll scheduler: a heap of next-check times, placed by learned run times.

Jobs of one batch on one app take similar times. A few "scout" jobs are checked densely,
so their run times are measured precisely; from those samples a small dynamic programme
picks the ages at which every other job is checked, trading status requests against the
delay between a job finishing and the batch noticing. Until the first scout finishes, the
other jobs are parked (checked rarely); once a model exists they are placed by it. Beyond
the slowest run time seen, checks back off geometrically.

Pure logic, no I/O: the batch engine feeds it clock readings and statuses.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable, Sequence
from typing import Final, Generic, TypeVar

from ._cohort import Cohort

K = TypeVar("K", bound=Hashable)

_GRID = 32  # points of the check-age grid the plan is chosen from
_SQRT2: Final = math.sqrt(2.0)


class DurationModel:
    """
    Recent run times (seconds from submit to finish) and the check plan they imply.

    A run time is known to lie in an interval: between the last check that found the job
    running and the one that found it done. Each sample is kept as that interval's middle
    and width, and the model smooths them (a kernel estimate), so a plan made from a handful
    of samples does not overfit them.

    Args:
        capacity: How many recent samples to keep (older ones are forgotten, so the model
            follows a queue that grows or drains).
        target_delay: Wanted mean delay between a job finishing and its detection, as a
            fraction of the mean run time.
    """

    def __init__(self, *, capacity: int = 256, target_delay: float = 0.065) -> None:
        self._recent: deque[tuple[float, float]] = deque()
        self._sorted: list[float] = []
        self.capacity = capacity
        self.target_delay = target_delay
        self.plan: tuple[float, ...] = ()
        #: Bumped by every re-plan: checks placed by an older plan are revised when due.
        self.version = 0
        #: Whether the plan counted sampled jobs still running (so it is provisional).
        self.provisional = False
        self._since_plan = 0

    def __len__(self) -> int:
        return len(self._sorted)

    @property
    def minimum(self) -> float:
        """The shortest run time kept."""
        return self._sorted[0]

    @property
    def maximum(self) -> float:
        """The longest run time kept."""
        return self._sorted[-1]

    def add(
        self,
        duration: float,
        width: float = 0.0,
        censored: Sequence[float] = (),
        *,
        replan: bool = True,
    ) -> None:
        """
        Record a run time known to within *width* seconds; re-plan when it is worth it.

        *censored*: the ages of the sampled jobs still running. With *replan* false the
        sample is only recorded (the caller re-plans soon, on its own schedule).
        """
        duration = max(duration, 0.0)
        if len(self._recent) >= self.capacity:
            old, _ = self._recent.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        self._recent.append((duration, max(width, 0.0)))
        bisect.insort(self._sorted, duration)
        self._since_plan += 1
        # Every sample counts while the model is young; then re-plan now and then.
        n = len(self._sorted)
        if replan and (n <= 32 or self._since_plan >= min(64, n // 4) or self.provisional):
            self.replan(censored)

    def replan(self, censored: Sequence[float] = ()) -> None:
        """Choose the check ages again from the samples and the *censored* ages."""
        samples = [d for d, _ in self._recent]
        if samples:
            estimate = _kaplan_meier(samples, censored)
            self.plan = _plan_checks(
                samples, self.target_delay, [w for _, w in self._recent], estimate
            )
            # Provisional while a material share of the sampled jobs is older than every
            # run time seen (early in a batch); afterwards the running ones hardly move it.
            self.provisional = bool(censored) and estimate[1] > 0.02
        else:
            self.plan, self.provisional = (), False
        self.version += 1
        self._since_plan = 0

    def next_age(self, age: float) -> float | None:
        """The first planned check age after *age*, or None past the plan's end."""
        index = bisect.bisect_right(self.plan, age + 1e-9)
        return self.plan[index] if index < len(self.plan) else None


def plan_checks(
    samples: Sequence[float],
    target_delay: float,
    widths: Sequence[float] | None = None,
    censored: Sequence[float] = (),
) -> tuple[float, ...]:
    """
    Choose the ages at which to check a job, given run-time *samples* (and their *widths*).

    The run-time distribution is estimated by smoothing the samples (a Gaussian kernel,
    wider for few samples and for imprecise ones). For check ages t1 < ... < tk, a job is
    checked at t_m only if it was still running at t_(m-1), and one finishing at T is
    noticed at the first t_m >= T. A dynamic programme over a grid of ages minimises
    expected checks + lambda * expected delay; lambda is searched for the cheapest plan
    whose expected delay is within *target_delay* of the mean run time. The plan ends past
    the slowest sample, where the estimate says nearly every job is done.

    *censored* are the ages of sampled jobs still running (they were last seen running at
    those ages). The first jobs to finish are the fast ones, so samples alone would say
    every job is done soon after them; with the running ones counted (a Kaplan-Meier
    estimate), the share not yet seen to finish is placed just past the oldest of them,
    and the plan there is provisional: the scheduler revises it as the samples come in.
    """
    if not samples:
        return ()
    return _plan_checks(samples, target_delay, widths, _kaplan_meier(samples, censored))


def _plan_checks(
    samples: Sequence[float],
    target_delay: float,
    widths: Sequence[float] | None,
    estimate: tuple[list[float], float, float],
) -> tuple[float, ...]:
    """`plan_checks` given the samples' Kaplan-Meier *estimate* (see `_kaplan_meier`)."""
    n = len(samples)
    widths = widths or [0.0] * n
    weights, tail_mass, tail_at = estimate
    mean = sum(w * x for w, x in zip(weights, samples, strict=True)) + tail_mass * tail_at
    if mean <= 0:
        return (max(samples) or 1e-3,)
    plain = sum(samples) / n
    spread = math.sqrt(sum((x - plain) ** 2 for x in samples) / (n - 1)) if n > 1 else 0.0
    # Silverman's rule, with a floor that says "about 15 % either way" while samples are few.
    bandwidth = max(1.06 * spread * n**-0.2, 0.15 * plain / math.sqrt(n), 1e-3)
    centres = list(samples)
    sigmas = [math.sqrt(bandwidth**2 + w * w / 12) for w in widths]
    if tail_mass > 1e-9:
        weights.append(tail_mass)
        centres.append(tail_at + bandwidth)
        sigmas.append(bandwidth)
    low = max(0.0, min(x - 2.5 * s for x, s in zip(centres, sigmas, strict=True)))
    high = max(x + 2.5 * s for x, s in zip(centres, sigmas, strict=True))
    grid = [low + (high - low) * k / _GRID for k in range(_GRID + 1)]
    erf = math.erf
    scaled = [
        (x, 1 / (s * _SQRT2), w / 2) for x, s, w in zip(centres, sigmas, weights, strict=True)
    ]
    cdf = [sum(half * erf((t - x) * inv) for x, inv, half in scaled) + 0.5 for t in grid]
    cdf[0], cdf[-1] = 0.0, 1.0
    # integral[k]: the integral of the CDF from grid[0] to grid[k] (trapezoids).
    integral = [0.0, *itertools.accumulate(
        (cdf[k] + cdf[k - 1]) / 2 * (grid[k] - grid[k - 1]) for k in range(1, _GRID + 1)
    )]  # fmt: skip
    size = _GRID + 1

    # delays[j][i]: expected delay of the jobs finishing between grid[i] and grid[j] when
    # they are checked at grid[j]. Computed once; every solve below reuses it.
    delays = [
        [integral[j] - integral[i] - cdf[i] * (grid[j] - grid[i]) for i in range(j)]
        for j in range(size)
    ]
    survival = [1.0 - c for c in cdf]

    def solve(weight: float) -> tuple[list[int], float]:
        cost = [0.0] * size
        back = [0] * size
        for j in range(1, size):
            values = [
                c + s + weight * d
                for c, s, d in zip(cost[:j], survival[:j], delays[j], strict=True)
            ]
            best = min(values)
            cost[j], back[j] = best, values.index(best)
        path: list[int] = []
        j = size - 1
        while j:
            path.append(j)
            j = back[j]
        path.reverse()
        return path, sum(delays[b][a] for a, b in zip([0, *path], path, strict=False))

    wanted = target_delay * mean
    low_w, high_w = -4.0, 12.0  # log2 of lambda / mean
    path, expected = solve(2.0**high_w / mean)
    if expected <= wanted:
        for _ in range(8):  # the cheapest plan within the target
            middle = (low_w + high_w) / 2
            candidate, expected = solve(2.0**middle / mean)
            if expected <= wanted:
                path, high_w = candidate, middle
            else:
                low_w = middle
    return tuple(grid[k] for k in path)


def _kaplan_meier(
    samples: Sequence[float], censored: Sequence[float]
) -> tuple[list[float], float, float]:
    """
    Each sample's share of the run-time distribution, given jobs still running at *censored*.

    Returns the weights (in the order of *samples*), the share not yet seen to finish, and
    the age of the oldest job still running. Without censored ages every weight is 1/n.
    """
    n = len(samples)
    if not censored:
        return [1.0 / n] * n, 0.0, 0.0
    # Finishes before running jobs of the same age (the usual tie rule).
    events = sorted([(x, 0, i) for i, x in enumerate(samples)] + [(c, 1, -1) for c in censored])
    at_risk = len(events)
    survival = 1.0
    weights = [0.0] * n
    for _, running, index in events:
        if not running:
            share = survival / at_risk
            weights[index] = share
            survival -= share
        at_risk -= 1
    return weights, max(survival, 0.0), max(censored)


class PollScheduler(Generic[K]):
    """
    When to check each in-flight job next: one heap for the whole batch.

    Args:
        min_interval: Shortest gap between two checks of one job.
        max_interval: Longest gap between two checks of one job.
        first_check: Age of a scout's first check while nothing is known.
        scout_every: Every n-th job is a scout, checked densely to measure its run time
            (the first *cold_scouts* jobs are scouts too).
        target_delay: See `DurationModel`.
        sweep_threshold: While no run time is known, a batch reads the app's job counters
            and checks every parked job once the finished-but-unseen jobs reach this
            fraction of them (None: never; parked jobs then wait for the first scout).
    """

    def __init__(
        self,
        *,
        min_interval: float = 0.05,
        max_interval: float = 30.0,
        first_check: float = 0.5,
        scout_every: int = 100,
        cold_scouts: int = 6,
        scout_step: float = 0.05,
        target_delay: float = 0.065,
        sweep_threshold: float | None = 0.5,
    ) -> None:
        if min_interval <= 0:
            raise ValueError("min_interval must be > 0, or a job could be checked forever")
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.first_check = first_check
        self.scout_every = scout_every
        self.cold_scouts = cold_scouts
        self.scout_step = scout_step
        self.model = DurationModel(target_delay=target_delay)
        self.mature_samples = 3
        #: Status requests per second the batch may send (set by the batch): bursts of
        #: checks are started early enough that draining them at this rate is centred on
        #: their planned times. None: no budget is known.
        self.poll_rate: float | None = None
        self._heap = _DueHeap[K]()
        self._jobs: dict[K, _Tracked] = {}
        self._scouts = _Scouts(self.model, self._jobs)
        #: The parked jobs and the batch's handle on them (sweeps, app counters).
        self.cohort = Cohort(self, sweep_threshold)
        self._added = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def add(
        self,
        key: K,
        submitted_at: float,
        *,
        known_age: bool = True,
        deadline: float | None = None,
    ) -> None:
        """
        Track a job submitted at *submitted_at*.

        A job of unknown age (re-attached after a crash) is checked at once. No check is
        placed after *deadline*, so a per-job deadline is noticed on time.
        """
        self._added += 1
        # Scouts cost a dozen checks each: a few while nothing is known, then one in
        # *scout_every* to keep the model current.
        scout = known_age and (
            self._added <= self.cold_scouts or self._added % self.scout_every == 0
        )
        job = _Tracked(submitted_at, scout, math.inf if deadline is None else deadline)
        job.cohort = not scout and (len(self.model) < self.mature_samples or self.cohort.queueing)
        self._jobs[key] = job
        if scout:
            self._scouts.keys.add(key)
        self._push(key, self._plan(key, job, submitted_at) if known_age else submitted_at)

    def remove(self, key: K) -> None:
        """Stop tracking *key* (finished, timed out or cancelled)."""
        self._jobs.pop(key, None)
        self._heap.discard(key)
        self.cohort.discard(key)
        self._scouts.keys.discard(key)

    def next_due(self) -> float | None:
        """
        The earliest time a check is due, or None when nothing is tracked.

        While a cohort is being placed (see `placing`), -inf: `pop_due` has work to do now.
        """
        return -math.inf if self.cohort.placing else self._heap.peek()

    def pop_due(self, now: float) -> K | None:
        """
        Take the key of one job whose check is due at *now*, if any.

        A check placed by an older plan is first revised by the current one: if that one
        says later, the job is put back (no request), so provisional plans cost nothing.
        While a cohort is being placed, each call first places a chunk of it.
        """
        cohort, heap, model = self.cohort, self._heap, self.model
        if cohort.placing:
            self.place(now)
        self._scouts.tick(now)
        while (due := heap.peek()) is not None and due <= now:
            key = heap.pop()
            job = self._jobs[key]
            if (
                job.version != model.version
                and job.version >= 0  # placed by a plan (not a job to check at once)
                and not job.scout
                and key not in cohort
                and model.plan
            ):
                revised = self._plan(key, job, job.last_check)
                if revised > now:
                    self._push(key, revised)
                    continue
            cohort.discard(key)
            return key
        return None

    def checked(self, key: K, now: float, *, finished: bool) -> None:
        """Record a check of *key* at *now*; schedule the next one unless it *finished*."""
        job = self._jobs.get(key)
        if job is None:
            return
        if finished:
            if job.scout:
                # The finish lies between the last sign of the job running (a check, or
                # counters with nothing unseen) and this check.
                running = max(job.last_check, self.cohort.quiet_until)
                if self._scouts.finished(key, running, now, self.mature_samples):
                    self.cohort.release(now)
            self.remove(key)
            return
        job.last_check = now
        job.checks += 1
        self._push(key, max(self._plan(key, job, now), now + self.min_interval))

    def retry_later(self, key: K, now: float, after: float | None = None) -> None:
        """A check of *key* failed: try again after *after* seconds (a Retry-After), or a while."""
        if key in self._jobs:
            wait = min(self.max_interval, max(1.0, self.min_interval))
            self._push(key, now + (wait if after is None else max(after, self.min_interval)))

    @property
    def placing(self) -> bool:
        """
        Whether a large cohort is being placed: call `place` until this is False.

        A cohort released by the model (often the whole first wave, 10,000 jobs and more)
        is placed `PLACE_CHUNK` jobs per `place` call, so no step holds the event loop
        for long; the batch's poller does this between checks. A loop of `next_due` and
        `pop_due` alone also gets there: `next_due` says -inf meanwhile, and each
        `pop_due` places a chunk. Until placed, a job keeps the rare safety check it was
        parked with.
        """
        return self.cohort.placing

    def place(self, now: float) -> None:
        """Place the next chunk of the cohort being released (see `placing`)."""
        self.cohort.place(now)

    def _plan(self, key: K, job: _Tracked, now: float) -> float:
        age = now - job.submitted_at
        model, cohort = self.model, self.cohort
        if job.scout:
            if model.plan:
                if age < model.minimum * 0.9:
                    return job.submitted_at + model.minimum * 0.9
                return now + self._clamp(age * self.scout_step)
            if cohort.sweeping and not cohort.finishing:
                # The app's counters will tell when jobs start to finish: wait for it.
                return cohort.park(key, age, now)
            if not job.checks and not cohort.finishing:
                return now + max(self.first_check - age, self.min_interval)
            # Coarser while nothing is known to have finished.
            step = self.scout_step if cohort.finishing else self.scout_step * 2
            return now + self._clamp(age * step)
        if not model.plan or (job.cohort and cohort.waits()):
            # Nothing is known yet (or the cohort waits for a sweep).
            return cohort.park(key, age, now)
        job.version = model.version
        planned = model.next_age(age)
        if planned is not None:
            if not job.checks:
                planned -= job.lead  # part of a burst started early (see _BurstLead)
            return job.submitted_at + max(planned, age + self.min_interval)
        # Slower than any job seen: back off geometrically.
        return now + self._clamp(age * 0.15)

    def _clamp(self, interval: float) -> float:
        return min(self.max_interval, max(self.min_interval, interval))

    def _push(self, key: K, when: float) -> None:
        """Make *key* due at *when* (at its deadline at the latest)."""
        job = self._jobs.get(key)
        self._heap.push(key, when if job is None else min(when, job.deadline))


class _Scouts(Generic[K]):
    """
    The scouts still running, and what their finishes teach the run-time model.

    A provisional plan (one made while scouts still run) is re-made at most every 2 % of
    the shortest run time, by a finish or by the passing of time: scouts finish by the
    hundred at once.
    """

    def __init__(self, model: DurationModel, jobs: dict[K, _Tracked]) -> None:
        self._model = model
        self._jobs = jobs
        self.keys: set[K] = set()
        self._planned_at = -math.inf  # when the model last re-planned

    def tick(self, now: float) -> None:
        """Time passes without finishes: the still-running scouts say something too."""
        if self._model.provisional and self._replan_due(now):
            self._planned_at = now
            self._model.replan(self.censored(now))

    def finished(self, key: K, running: float, now: float, mature: int) -> bool:
        """
        Learn from scout *key*, last seen running at *running* and finished at *now*.

        Returns whether parked jobs can now be placed: the first sample, or the *mature*-th.
        """
        model = self._model
        was_empty = not model.plan
        self.keys.discard(key)
        replan = not model.provisional or len(model) < mature or self._replan_due(now)
        if replan:
            self._planned_at = now
        model.add(
            (running + now) / 2 - self._jobs[key].submitted_at,
            now - running,
            self.censored(now) if replan else (),
            replan=replan,
        )
        return was_empty or len(model) == mature

    def censored(self, now: float) -> list[float]:
        """
        The ages of the scouts not yet seen to finish, at *now*.

        Counted as running until now: a scout is checked every few per cent of its age, so
        this overstates a run time by at most that, while its last check's age would leave
        out the scouts just behind the newest sample (they were checked just before it).
        """
        jobs = self._jobs
        ages = [now - jobs[key].submitted_at for key in self.keys]
        if len(self._model):
            # A scout far slower than every sample is stuck, not informative: left out, it
            # cannot keep the plan provisional (and pushing checks later) for ever.
            limit = 3 * self._model.maximum
            ages = [age for age in ages if age <= limit]
        return ages

    def _replan_due(self, now: float) -> bool:
        return now - self._planned_at >= max(0.02 * self._model.minimum, 0.05)


class _DueHeap(Generic[K]):
    """
    Keys by due time: a binary heap with lazy deletion, ties in push order.

    Rescheduling a key pushes a new entry; the old one stays until it surfaces (skipped)
    or a compaction drops it. Stale entries are mostly the safety checks of parked jobs,
    one per job; the bound leaves room for those, so releasing a cohort of 10,000 does not
    also cost a rebuild of the heap (about 9 ms) in one step.
    """

    __slots__ = ("_entries", "_live", "_seq")

    def __init__(self) -> None:
        self._entries: list[tuple[float, int, K]] = []
        self._live: dict[K, int] = {}  # key -> sequence number of its live entry
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._live)

    def seq(self, key: K) -> int | None:
        """The sequence number of *key*'s live entry: it changes whenever *key* is pushed."""
        return self._live.get(key)

    def push(self, key: K, when: float) -> None:
        """Make *key* due at *when*, instead of any earlier time."""
        seq = next(self._seq)
        self._live[key] = seq
        entries = self._entries
        heapq.heappush(entries, (when, seq, key))
        if len(entries) > 4 * len(self._live) + 1024:
            live = self._live
            entries[:] = [entry for entry in entries if live.get(entry[2]) == entry[1]]
            heapq.heapify(entries)

    def discard(self, key: K) -> None:
        """Forget *key* (its entry becomes stale)."""
        self._live.pop(key, None)

    def peek(self) -> float | None:
        """The earliest due time, or None when empty."""
        entries, live = self._entries, self._live
        while entries and live.get(entries[0][2]) != entries[0][1]:
            heapq.heappop(entries)  # a stale entry of a removed or rescheduled key
        return entries[0][0] if entries else None

    def pop(self) -> K:
        """Take the earliest key; call `peek` first (it drops the stale entries on top)."""
        _, _, key = heapq.heappop(self._entries)
        del self._live[key]
        return key

    def schedule(self) -> dict[K, float]:
        """Every key with its due time (a copy, for inspection)."""
        live = self._live
        return {key: when for when, seq, key in self._entries if live.get(key) == seq}


class _Tracked:
    __slots__ = (
        "checks",
        "cohort",
        "deadline",
        "last_check",
        "lead",
        "scout",
        "submitted_at",
        "version",
    )

    def __init__(self, submitted_at: float, scout: bool, deadline: float) -> None:
        self.submitted_at = submitted_at
        self.version = -1  # the model's version that placed its next check
        self.lead = 0.0  # how much earlier its first check comes (a burst, centred)
        self.deadline = deadline
        self.last_check = submitted_at
        self.scout = scout
        self.checks = 0
        self.cohort = False
