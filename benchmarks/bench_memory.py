"""
Scenario 3, memory: peak RSS of a batch, each case in a fresh child process.

``python -m benchmarks.bench_memory --case lazy-inproc --jobs 1000000`` runs one case and
prints one JSON line: ``VmHWM`` (peak resident set of that process, interpreter and
imports included; see `peak_rss_mb`), wall and CPU time. Inputs come from a generator and
the outcomes are counted, never kept, so what grows with the number of inputs is the SDK's
own state.

Cases:

* ``floor``: imports and an open client, no batch (the part of RSS no batch can save);
* ``lazy-inproc``: instant jobs through an in-process httpx transport that answers without a
  socket (1,000,000 jobs over loopback would take far longer; this measures the SDK's memory,
  not the network's);
* ``lazy-loopback``: instant jobs over loopback against `benchmarks.batch_server`;
* ``inflight-loopback``: every job in flight at once (max_in_flight = jobs, run times longer
  than the submit phase), over loopback.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio.lowlevel
import httpx

from benchmarks.bench_batch import control
from benchmarks.bench_overhead import API_KEY, APP_ID
from benchmarks.server import _job_id

#: High enough never to throttle instant jobs (the default is 100 requests/s).
_INSTANT_POLL_RATE = 1_000_000.0
_JSON = {"content-type": "application/json"}


class InstantTransport(httpx.AsyncBaseTransport):
    """Answers like `benchmarks.batch_server` in instant mode, in-process, with no per-job state."""

    def __init__(self) -> None:
        self.submitted = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await anyio.lowlevel.checkpoint()  # a real transport yields to the event loop
        parts = request.url.path.split("/")
        if request.method == "POST":
            self.submitted += 1
            job_id = _job_id(self.submitted).decode()
            body: dict[str, Any] = {"job_id": job_id, "status": "QUEUED", "app_id": parts[2]}
            return httpx.Response(201, json=body, headers=_JSON)
        if len(parts) == 5:
            data = {"id": parts[4], "status": "COMPLETED", "execution_time": "0.0"}
            data["result"] = {"images": [{"image": "http://127.0.0.1/x.png"}]}  # type: ignore[assignment]
            return httpx.Response(200, json={"data": data}, headers=_JSON)
        jobs = {"completed": self.submitted, "failed": 0, "in_progress": 0, "in_queue": 0}
        return httpx.Response(200, json={"id": parts[2], "status": "RUNNING", "jobs": jobs})


def _inputs(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"prompt": "a lighthouse at dawn, watercolor", "seed": i}


async def _child(
    case: str, jobs: int, base_url: str | None, gc_freeze: bool = False
) -> dict[str, Any]:
    from rungen_async import AsyncRunGen

    options: dict[str, Any] = {"base_url": base_url or "http://127.0.0.1:9"}
    if case == "lazy-inproc":
        options["transport"] = InstantTransport()
    max_in_flight = jobs if case == "inflight-loopback" else 1000
    poll_rate = 5000.0 if case == "inflight-loopback" else _INSTANT_POLL_RATE
    done = status_requests = 0
    lags: list[float] = []
    not_gc: list[float] = []  # each tick's lateness less the GC pauses inside it
    gc_clock = _GcClock()
    steps = _StepClock(gc_clock)
    connections = 0
    if gc_freeze:
        gc.freeze()  # what a server can do after its imports: see the README
    cpu0, wall0 = time.process_time(), time.monotonic()
    async with AsyncRunGen(API_KEY, **options) as rg:

        async def watch() -> None:
            """Every 10 ms: how late the loop woke us (a blocked loop wakes late), and
            how many connections the client's pool holds."""
            nonlocal connections
            while True:
                due = time.monotonic() + 0.01
                in_gc = gc_clock.total
                await anyio.sleep(0.01)
                late = time.monotonic() - due
                lags.append(late)
                not_gc.append(late - (gc_clock.total - in_gc))
                fast = rg._core.fast
                connections = max(connections, getattr(fast, "_open", 0))

        if case != "floor":
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch, name=_WATCHER)
                async with rg.batch(
                    APP_ID, _inputs(jobs), max_in_flight=max_in_flight, poll_rate=poll_rate
                ) as batch:
                    async for outcome in batch:
                        done += outcome.ok
                tg.cancel_scope.cancel()
            status_requests = batch.stats.status_requests
    steps.stop()
    gc_clock.stop()
    lags.sort()
    return {
        "loop_lag_p99_ms": 1000 * lags[int(0.99 * (len(lags) - 1))] if lags else None,
        "loop_lag_max_ms": 1000 * lags[-1] if lags else None,
        "loop_lag_max_not_gc_ms": 1000 * max(not_gc) if not_gc else None,
        "gc_pause_max_ms": 1000 * gc_clock.longest,
        "step_max_wall_ms": 1000 * steps.wall,
        "step_max_cpu_not_gc_ms": 1000 * steps.own,
        "step_max_callback": steps.worst,
        "gc_full_collections": gc_clock.full,
        "gc_freeze": gc_freeze,
        "connections_max": connections if case != "lazy-inproc" else None,
        "case": case,
        "jobs": jobs,
        "ok": done,
        "max_in_flight": max_in_flight if case != "floor" else 0,
        "poll_rate": poll_rate,
        "status_requests": status_requests,
        "wall_s": time.monotonic() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "maxrss_mb": peak_rss_mb(),
    }


_WATCHER = "bench-memory-watch"  # the task name of the loop-lag ticker


class _StepClock:
    """
    The longest single step of the event loop: each callback asyncio runs (a task step, an
    I/O callback) timed in wall time and in process CPU, less the GC pauses inside it.

    The loop-lag ticker sees every stall but cannot say whose it is: a GC pause, the OS
    running another process on this core, or the SDK. A step's CPU time less its GC time
    is the SDK's (and asyncio's) own work in that step.
    """

    def __init__(self, gc_clock: _GcClock) -> None:
        import asyncio.events

        self.wall = 0.0
        self.own = 0.0  # CPU less GC, of the step with the most
        self.worst = ""  # that step's callback
        self._handle = asyncio.events.Handle
        self._original = original = self._handle._run
        clock = self

        def timed(handle: Any) -> None:
            in_gc, cpu, wall = gc_clock.total, time.process_time(), time.perf_counter()
            try:
                original(handle)
            finally:
                wall = time.perf_counter() - wall
                own = time.process_time() - cpu - (gc_clock.total - in_gc)
                if (wall > clock.wall or own > clock.own) and (
                    name := _describe(handle)
                ) != _WATCHER:  # the benchmark's own ticker is not the SDK's step
                    clock.wall = max(clock.wall, wall)
                    if own > clock.own:
                        clock.own, clock.worst = own, name

        self._handle._run = timed  # type: ignore[method-assign,assignment]

    def stop(self) -> None:
        self._handle._run = self._original  # type: ignore[method-assign]


def _describe(handle: Any) -> str:
    """A callback's task name (or the callback itself), for the longest step."""
    owner = getattr(handle._callback, "__self__", None)
    name = getattr(owner, "get_name", None)
    return name() if callable(name) else repr(handle._callback)[:120]


class _GcClock:
    """
    Time spent in CPython's garbage collector (`gc.callbacks`): its pauses are the
    interpreter's, not a step of the SDK, so the loop lag is reported with and without them.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.longest = 0.0
        self.full = 0  # generation-2 collections
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.monotonic()
            return
        pause = time.monotonic() - self._started
        self.total += pause
        self.longest = max(self.longest, pause)
        self.full += info["generation"] == 2

    def stop(self) -> None:
        gc.callbacks.remove(self._callback)


def peak_rss_mb() -> float:
    """
    This process's peak resident set, in MB.

    ``VmHWM`` from /proc, where there is one: ``ru_maxrss`` survives ``execve`` on Linux, so
    a child forked from a big parent reports the parent's peak however small it stays.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


LABELS = {
    "floor": "import only (client open, no batch)",
    "lazy-inproc": "lazy inputs, instant jobs",
    "lazy-loopback": "lazy inputs, instant jobs",
    "inflight-loopback": "every job in flight at once",
}


def measure(case: str, jobs: int, base_url: str | None) -> dict[str, Any]:
    """Run one case in a fresh child process and return what it printed."""
    command = [sys.executable, "-m", "benchmarks.bench_memory", "--case", case]
    command += ["--jobs", str(jobs)]
    if base_url is not None:
        command += ["--base-url", base_url]
    load = os.getloadavg()[0]
    output = subprocess.run(
        command, check=True, capture_output=True, text=True, cwd=Path(__file__).parent.parent
    ).stdout
    row: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    row["label"] = LABELS[case]
    row["transport"] = "in-process httpx transport" if case == "lazy-inproc" else "loopback TCP"
    row["loadavg"] = load
    lag = row.get("loop_lag_max_ms")
    print(
        f"memory: {case} {jobs:,} jobs: peak RSS {row['maxrss_mb']:.1f} MB, "
        f"wall {row['wall_s']:.1f} s, CPU {row['cpu_s']:.1f} s, load {load:.2f}"
        + (
            f", loop lag p99 {row['loop_lag_p99_ms']:.1f} ms max {lag:.1f} ms, "
            f"connections {row['connections_max']}"
            if lag is not None
            else ""
        ),
        flush=True,
    )
    return row


def run(base_url: str, *, quick: bool, cpu: int | None = None) -> dict[str, Any]:
    """Every case, each in its own child process (which inherits this one's CPU pinning)."""
    small, large, in_flight = (500, 3_000, 300) if quick else (10_000, 1_000_000, 10_000)
    runs = [measure("floor", 0, None)]
    runs += [measure("lazy-inproc", jobs, None) for jobs in (small, large)]
    control(base_url, "/_bench/reset", {"instant": True})
    runs.append(measure("lazy-loopback", small, base_url))
    low, high = (1.0, 1.5) if quick else (25.0, 30.0)
    control(base_url, "/_bench/reset", {"min": low, "max": high, "seed": 6})
    runs.append(measure("inflight-loopback", in_flight, base_url))
    by_jobs = {row["jobs"]: row for row in runs if row["case"] == "lazy-inproc"}
    return {
        "runs": runs,
        "floor_mb": runs[0]["maxrss_mb"],
        "small": small,
        "large": large,
        "large_vs_small": by_jobs[large]["maxrss_mb"] / by_jobs[small]["maxrss_mb"],
        "inflight_run_time_s": [low, high],
    }


def main() -> None:
    """Run one case (in this fresh process) and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=sorted(LABELS), required=True)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--base-url")
    parser.add_argument(
        "--gc-freeze", action="store_true", help="gc.freeze() after the imports, as a server may"
    )
    args = parser.parse_args()
    print(json.dumps(anyio.run(_child, args.case, args.jobs, args.base_url, args.gc_freeze)))


if __name__ == "__main__":
    main()
