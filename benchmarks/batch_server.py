"""
A stateful RunGen stand-in for the batch benchmarks: ``python -m benchmarks.batch_server``.

Cheaper than the emulator (a bare asyncio protocol, a few µs per request) but it behaves
like RunGen for what a batch does:

* ``POST /app/{id}/run_async`` creates a job (201, rungen-api.md 4.6 variant A); a repeated
  ``Idempotency-Key`` returns the job it created before. The job's run time is
  ``input["_duration"]`` if given, else drawn uniformly from [min, max] (seeded).
* ``GET /app/{id}/job/{job_id}`` reports ``IN_QUEUE``, ``RUNNING`` or ``COMPLETED`` (4.7)
  from the job's own start and finish times.
* ``GET /app/{id}`` returns the app (4.3) with its ``jobs`` counters
  ``{completed, failed, in_progress, in_queue, retried}``.

With *workers* set, jobs queue FIFO for that many workers; otherwise every job starts when it
is submitted. In *instant* mode every job is COMPLETED at once and nothing is stored per job
(for the memory scenario).

Times are ``time.monotonic()`` (CLOCK_MONOTONIC, one clock for every process of the machine),
so the client can compare its own readings with the finish times the server reports.

Control endpoints for the benchmark: ``POST /_bench/reset`` (JSON config: ``workers``,
``min``, ``max``, ``seed``, ``instant``) forgets every job; ``GET /_bench/jobs`` returns
``{"jobs": {id: [submitted, started, finished]}, "requests": {...}}``.

It prints ``READY <port>`` once listening and exits when its stdin closes or on SIGTERM.
"""

from __future__ import annotations

import bisect
import heapq
import json
import random
import time
from collections import Counter
from typing import Any

from benchmarks.server import _job_id, _response, run, serve_http

_CREATED_T = "2025-03-02T09:05:12"
_CREATED_S = "2025-03-02 09:05:12"
_NOT_FOUND = _response(b"404 Not Found", b'{"error": "not found"}')
_BAD_REQUEST = _response(b"400 Bad Request", b'{"error": "input is required"}')


class State:
    """Every job since the last reset, and when each one starts and finishes."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        config = config or {}
        self.workers: int | None = config.get("workers")
        self.low = float(config.get("min", 4.0))
        self.high = float(config.get("max", 6.0))
        self.instant = bool(config.get("instant", False))
        self.rng = random.Random(config.get("seed", 6))
        self.jobs: dict[str, tuple[float, float, float]] = {}
        self.by_key: dict[str, str] = {}
        self.free: list[float] = [0.0] * self.workers if self.workers else []
        self.starts: list[float] = []
        self.finishes: list[float] = []
        self.submitted = 0
        self.requests: Counter[str] = Counter()

    def submit(self, key: str | None, input: Any) -> str:
        """Create a job (or find the one this key created) and return its id."""
        if key is not None and (known := self.by_key.get(key)) is not None:
            return known
        self.submitted += 1
        job_id = _job_id(self.submitted).decode()
        if key is not None and not self.instant:
            self.by_key[key] = job_id
        if self.instant:
            return job_id
        now = time.monotonic()
        given = input.get("_duration") if isinstance(input, dict) else None
        duration = float(given) if given is not None else self.rng.uniform(self.low, self.high)
        start = now
        if self.workers:
            start = max(now, heapq.heappop(self.free))  # FIFO: the earliest free worker
            heapq.heappush(self.free, start + duration)
        self.jobs[job_id] = (now, start, start + duration)
        bisect.insort(self.starts, start)
        bisect.insort(self.finishes, start + duration)
        return job_id

    def status(self, job_id: str) -> tuple[str, float] | None:
        """The job's status now and its run time, or None if unknown."""
        if self.instant:
            return "COMPLETED", 0.0
        times = self.jobs.get(job_id)
        if times is None:
            return None
        now = time.monotonic()
        _, start, finish = times
        if now < start:
            return "IN_QUEUE", 0.0
        if now < finish:
            return "RUNNING", 0.0
        return "COMPLETED", finish - start

    def counters(self) -> dict[str, int]:
        """The app's ``jobs`` counters now."""
        if self.instant:
            return {
                "completed": self.submitted,
                "failed": 0,
                "in_progress": 0,
                "in_queue": 0,
                "retried": 0,
            }
        now = time.monotonic()
        completed = bisect.bisect_right(self.finishes, now)
        started = bisect.bisect_right(self.starts, now)
        return {
            "completed": completed,
            "failed": 0,
            "in_progress": started - completed,
            "in_queue": len(self.jobs) - started,
            "retried": 0,
        }


state = State()


def _json(status: bytes, body: object) -> bytes:
    return _response(status, json.dumps(body).encode())


def _job_body(job_id: str, status: str, run_time: float) -> bytes:
    data: dict[str, Any] = {
        "id": job_id,
        "status": status,
        "created_at": _CREATED_S,
        "request": {"prompt": "bench"},
        "result": None,
    }
    if status == "COMPLETED":
        data["execution_time"] = f"{run_time:.3f}"
        data["result"] = {"images": [{"image": "http://127.0.0.1/x.png"}]}
    return _json(b"200 OK", {"data": data})


def _app_body(app_id: str) -> bytes:
    workers = state.workers or 10_000
    return _json(
        b"200 OK",
        {
            "id": app_id,
            "name": "bench",
            "status": "RUNNING",
            "configuration": {"active_workers": workers, "gpu_tier": "STANDARD"},
            "created_at": _CREATED_T,
            "jobs": state.counters(),
            "workers": {"idle": 0, "initializing": 0, "ready": 0, "running": workers},
            "workflow": {"model_url": "https://hf.co/x", "tools": {}},
        },
    )


def handle(method: bytes, target: bytes, head: bytes, lowered: bytes, body: bytes) -> bytes:
    """Answer one request (*lowered* is *head* in lower case, for finding headers)."""
    global state
    parts = target.partition(b"?")[0].decode().split("/")
    if method == b"POST" and len(parts) == 4 and parts[1] == "app" and parts[3] == "run_async":
        state.requests["submit"] += 1
        try:
            input = json.loads(body)["input"]
        except (ValueError, KeyError, TypeError):
            return _BAD_REQUEST
        key = None
        at = lowered.find(b"\r\nidempotency-key:")
        if at >= 0:
            end = lowered.find(b"\r\n", at + 2)
            key = head[at + 18 : end if end >= 0 else None].strip().decode()
        job_id = state.submit(key, input)
        status = "COMPLETED" if state.instant else "QUEUED"
        return _json(
            b"201 Created",
            {
                "job_id": job_id,
                "status": status,
                "app_id": parts[2],
                "created_at": _CREATED_T,
                "input": {"prompt": "bench"},
            },
        )
    if method == b"GET" and len(parts) == 5 and parts[1] == "app" and parts[3] == "job":
        state.requests["get_job"] += 1
        found = state.status(parts[4])
        return _NOT_FOUND if found is None else _job_body(parts[4], *found)
    if method == b"GET" and len(parts) == 3 and parts[1] == "app":
        state.requests["get_app"] += 1
        return _app_body(parts[2])
    if method == b"POST" and parts[1:] == ["_bench", "reset"]:
        state = State(json.loads(body) if body else None)
        return _json(b"200 OK", {})
    if method == b"GET" and parts[1:] == ["_bench", "jobs"]:
        return _json(b"200 OK", {"jobs": state.jobs, "requests": state.requests})
    return _NOT_FOUND


async def serve(port: int) -> None:
    """Serve until stdin closes or SIGTERM arrives."""
    await serve_http(port, handle)


def main() -> None:
    """Parse arguments, pin to a CPU if asked, and serve."""
    run(serve, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
