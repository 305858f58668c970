"""
The lazy simulation of one app: a FIFO job queue served by ``active_workers`` workers.

Nothing runs in the background. Each request first calls `App.advance(now)`, which replays
what happened since the last request: workers pop off a heap ordered by the time they are
free, take the next queued job, and finish it ``duration`` seconds later. So the simulation
is equally right under real time (uvicorn) and a fake clock (`rungen_async.testing`), and
10,000 queued jobs cost only their own records.
"""

from __future__ import annotations

import enum
import heapq
from collections import deque
from typing import Any

from attrs import define, field

#: Seconds a job takes per GPU tier, as a multiple of the emulator's base job duration.
TIER_SPEED: dict[str, float] = {"BASIC": 2.0, "STANDARD": 1.0, "PERFORMANCE": 0.5}


class JobState(enum.StrEnum):
    """Where a job is in its life; `_views.py` turns it into a wire status string."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"

    @property
    def is_terminal(self) -> bool:
        """Whether the job has stopped moving."""
        return self in {JobState.COMPLETED, JobState.FAILED, JobState.CANCELED}


@define(eq=False, kw_only=True)
class Job:
    """A job and its (simulated) timeline."""

    id: str
    app_id: str
    number: int  # 1-based over the whole emulator, in creation order
    input: dict[str, Any]
    created_at: float
    duration: float
    error: str | None = None  # set when the job is to fail, with the message it reports
    result: Any = None  # a value given by input ``_result``, used instead of images
    state: JobState = JobState.QUEUED
    started_at: float | None = None
    finished_at: float | None = None


@define(eq=False)
class _Worker:
    free_at: float
    seq: int
    job: Job | None = None
    retiring: bool = False

    def __lt__(self, other: _Worker) -> bool:
        return (self.free_at, self.seq) < (other.free_at, other.seq)


@define(eq=False, kw_only=True)
class App:
    """An app's settings, its workers and its queue.

    The per-app job counters are kept up to date incrementally, so reading an app with
    10,000 queued jobs costs nothing extra.
    """

    id: str
    name: str
    description: str
    gpu_tier: str
    location: str | None
    workflow: dict[str, Any]
    owner_team_id: str | None
    owner_user_id: str | None
    created_by: str
    created_at: float
    updated_at: float
    warmup: float
    job_duration: float  # at STANDARD speed; scaled by TIER_SPEED
    active_workers: int = 0
    ready_at: float | None = None  # when the first worker of this start finished warming
    jobs: dict[str, Job] = field(factory=dict)
    completed: int = 0
    failed: int = 0
    canceled: int = 0
    in_queue: int = 0
    in_progress: int = 0
    _workers: list[_Worker] = field(factory=list)
    _queue: deque[Job] = field(factory=deque)
    _running: list[tuple[float, int, Job]] = field(factory=list)
    _seq: int = 0

    _now: float = 0.0

    @property
    def status(self) -> str:
        """``STOPPED``, ``INITIALIZING`` or ``RUNNING``, as of the last `advance()`."""
        if self.active_workers == 0:
            return "STOPPED"
        if self.ready_at is not None and self._now >= self.ready_at:
            return "RUNNING"
        return "INITIALIZING"

    def default_duration(self) -> float:
        """Seconds a job takes on this app unless its input says otherwise."""
        return self.job_duration * TIER_SPEED.get(self.gpu_tier, 1.0)

    def advance(self, now: float) -> None:
        """Replay everything that happened up to *now*."""
        self._now = max(self._now, now)
        now = self._now
        if any(worker.retiring and worker.free_at <= now for worker in self._workers):
            self._workers = [w for w in self._workers if not (w.retiring and w.free_at <= now)]
            heapq.heapify(self._workers)
        workers, queue = self._workers, self._queue
        while self.in_queue and workers and workers[0].free_at <= now:
            worker = heapq.heappop(workers)
            if worker.retiring:
                continue
            job = queue.popleft()
            while job.state is not JobState.QUEUED:  # cancelled while queued
                job = queue.popleft()
            job.state = JobState.RUNNING
            job.started_at = max(worker.free_at, job.created_at)
            job.finished_at = job.started_at + job.duration
            self.in_queue -= 1
            self.in_progress += 1
            worker.free_at, worker.job = job.finished_at, job
            heapq.heappush(workers, worker)
            heapq.heappush(self._running, (job.finished_at, job.number, job))
        running = self._running
        while running and running[0][0] <= now:
            _, _, job = heapq.heappop(running)
            if job.state is not JobState.RUNNING:
                continue
            self.in_progress -= 1
            if job.error is None:
                job.state = JobState.COMPLETED
                self.completed += 1
            else:
                job.state = JobState.FAILED
                self.failed += 1

    def enqueue(self, job: Job) -> None:
        """Queue *job* (created at the current time) and start it if a worker is free."""
        self.jobs[job.id] = job
        self._queue.append(job)
        self.in_queue += 1
        self.advance(job.created_at)

    def cancel(self, job: Job, now: float) -> bool:
        """Cancel a queued or running *job*, freeing a running job's worker at once.

        Returns whether it was canceled; a job that has finished by *now* is left alone.
        """
        self.advance(now)
        if job.state.is_terminal:
            return False
        if job.state is JobState.QUEUED:
            self.in_queue -= 1
        elif job.state is JobState.RUNNING:
            self.in_progress -= 1
            for worker in self._workers:
                if worker.job is job:
                    worker.free_at, worker.job = now, None
            heapq.heapify(self._workers)
        job.state, job.finished_at = JobState.CANCELED, now
        self.canceled += 1
        self.advance(now)
        return True

    def scale(self, active_workers: int, now: float) -> None:
        """Change the worker count; new workers warm up, removed ones finish their job first."""
        self.advance(now)
        if self.active_workers == 0 and active_workers > 0:
            self.ready_at = now + self.warmup
        elif active_workers == 0:
            self.ready_at = None
        change = active_workers - self.active_workers
        self.active_workers = active_workers
        for _ in range(change):
            self._seq += 1
            self._workers.append(_Worker(now + self.warmup, self._seq))
        if change < 0:
            # Drop idle or warming workers first; busy ones retire when their job ends.
            live = [w for w in self._workers if not w.retiring]
            live.sort(key=lambda w: (w.job is not None and w.free_at > now, w.free_at))
            for worker in live[:-change]:
                worker.retiring = True
            self._workers = [
                w for w in self._workers if not (w.retiring and (w.job is None or w.free_at <= now))
            ]
        heapq.heapify(self._workers)
        self.advance(now)

    def worker_counts(self) -> dict[str, int]:
        """The documented ``workers`` object, as of the last `advance()`."""
        now = self._now
        counts = dict.fromkeys(
            ("idle", "initializing", "ready", "running", "throttled", "unhealthy"), 0
        )
        for worker in self._workers:
            if worker.free_at > now:
                counts["initializing" if worker.job is None else "running"] += 1
            elif not worker.retiring:
                counts["ready"] += 1
        return counts

    def drain_time(self) -> float | None:
        """When every queued and running job will have finished, if workers exist."""
        ends = [end for end, _, job in self._running if job.state is JobState.RUNNING]
        if self.in_queue:
            free = sorted(w.free_at for w in self._workers if not w.retiring)
            if not free:
                return None
            heapq.heapify(free)
            for job in self._queue:
                if job.state is JobState.QUEUED:
                    end = max(heapq.heappop(free), job.created_at) + job.duration
                    heapq.heappush(free, end)
                    ends.append(end)
        return max(ends, default=self._now)
