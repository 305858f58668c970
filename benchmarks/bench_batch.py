"""
Scenario 2, a full batch: jobs through `AsyncRunGen.batch()` against `benchmarks.batch_server`.

Each case runs the SDK's batch and, on the same server in the same run, the baseline: a
hand-written aiohttp loop that submits every job and polls each one once a second (what peer
SDKs do), with the same bound on jobs in flight. Both record ``time.monotonic()`` when they
learn a job's outcome; the server (another process, same CLOCK_MONOTONIC) reports when each
job started and finished, so the detection delay is exact to the clock's resolution.

Reported per run: status requests per job (GET job + GET app), mean and p95 detection delay as
a % of the job's run time, wall time against the ideal (the last job's finish on the server,
counted from the batch's start), and client CPU per job (`time.process_time`).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import statistics
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from benchmarks.bench_overhead import API_KEY, APP_ID, HEADERS, SUBMIT_PATH

_TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "CANCELLED"})
#: The baseline's connection limit: the SDK's default pool size.
_CONNECTIONS = 64


@dataclass(frozen=True)
class Case:
    """One batch configuration, run by the SDK and by the baseline."""

    name: str
    label: str
    jobs: int
    low: float  #: shortest run time (s)
    high: float  #: longest run time (s)
    workers: int | None  #: None: every job starts at once
    max_in_flight: int
    poll_rate: float
    target: bool  #: whether issue 6's targets apply
    max_poll_rate: float | None = None  #: the SDK's budget may grow to this (None: fixed)


def cases(quick: bool) -> list[Case]:
    """The cases of a full run, or tiny ones for ``--quick``."""
    if quick:
        return [
            Case("batch-200", "200 jobs, 0.5-0.75 s", 200, 0.5, 0.75, None, 200, 2000, True),
            Case("queue-120", "120 jobs, 40 workers", 120, 0.5, 0.75, 40, 80, 1000, False),
        ]
    default_budget = Case(
        "batch-1k-100", "1,000 jobs, 4-6 s, 100/s budget", 1_000, 4.0, 6.0, None, 1_000, 100, False
    )
    return [
        # The baseline polls every job once a second: up to 10,000 requests/s here. The SDK
        # gets the same budget; at 5,000/s (the next case) the budget, not the client, sets
        # the delay: these jobs finish up to 5,000 a second, more than it can check.
        Case("batch-10k", "10,000 jobs, 4-6 s", 10_000, 4.0, 6.0, None, 10_000, 10_000, True),
        Case(
            "batch-10k-5k",
            "10,000 jobs, 4-6 s, 5,000/s budget",
            10_000,
            4.0,
            6.0,
            None,
            10_000,
            5000,
            False,
        ),
        Case("batch-1k", "1,000 jobs, 4-6 s", 1_000, 4.0, 6.0, None, 1_000, 1000, False),
        # The default budget, fixed and allowed to grow (issue 13: 100/s binds on this case).
        default_budget,
        replace(
            default_budget,
            name="batch-1k-100-grow",
            label="1,000 jobs, 4-6 s, 100/s growing to 1,000/s",
            max_poll_rate=1000,
        ),
        Case("queue-2k", "2,000 jobs, 200 workers", 2_000, 4.0, 6.0, 200, 1_000, 1000, False),
    ]


@dataclass
class Run:
    """What one client did on one case."""

    case: str
    client: str
    jobs: int
    ok: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0
    status_requests: int = 0  #: as the client counted them
    server_requests: dict[str, int] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)  #: job id -> monotonic detection
    started: float = 0.0  #: monotonic
    poll_rate_end: float | None = None  #: the SDK's poll budget when the batch ended

    def summary(self, jobs: dict[str, list[float]], case: Case) -> dict[str, Any]:
        """Figures of this run, given the server's [submitted, started, finished] per job."""
        delays, fractions, runs = [], [], []
        for job_id, seen in self.seen.items():
            _, start, finish = jobs[job_id]
            delays.append(seen - finish)
            runs.append(finish - start)
            fractions.append((seen - finish) / (finish - start))
        last_finish = max(finish for _, _, finish in jobs.values())
        last_submit = max(submitted for submitted, _, _ in jobs.values())
        ideal = last_finish - self.started
        status = self.server_requests.get("get_job", 0) + self.server_requests.get("get_app", 0)
        mean_run = statistics.fmean(runs)
        return {
            "case": case.name,
            "label": case.label,
            "client": self.client,
            "jobs": self.jobs,
            "ok": self.ok,
            "workers": case.workers,
            "max_in_flight": case.max_in_flight,
            "poll_rate": case.poll_rate if self.client == "sdk" else None,
            "max_poll_rate": case.max_poll_rate if self.client == "sdk" else None,
            "poll_rate_end": self.poll_rate_end,
            "status_requests_per_job": self.status_requests / self.jobs,
            "server_status_requests_per_job": status / self.jobs,
            "server_requests": dict(self.server_requests),
            "mean_run_s": mean_run,
            "mean_delay_s": statistics.fmean(delays),
            "p95_delay_s": _quantile(delays, 0.95),
            "max_delay_s": max(delays),
            "mean_delay_pct": 100 * statistics.fmean(delays) / mean_run,
            "p95_delay_pct": 100 * _quantile(fractions, 0.95),
            "min_delay_s": min(delays),
            "wall_s": self.wall_s,
            "submit_s": last_submit - self.started,
            "ideal_s": ideal,
            "wall_vs_ideal": self.wall_s / ideal,
            "cpu_s": self.cpu_s,
            "cpu_ms_per_job": 1000 * self.cpu_s / self.jobs,
        }

    def trace(self, jobs: dict[str, list[float]], points: int = 2500) -> list[list[float]]:
        """(submitted at, detection delay) for up to *points* jobs, for the plot."""
        step = max(1, len(self.seen) // points)
        return [
            [round(jobs[job_id][0] - self.started, 3), round(seen - jobs[job_id][2], 3)]
            for job_id, seen in list(self.seen.items())[::step]
        ]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _inputs(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"prompt": "a lighthouse at dawn, watercolor", "seed": i}


def control(base_url: str, path: str, body: object = None) -> Any:
    """Call one of the server's ``/_bench`` endpoints (outside any measured section)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


async def run_sdk(base_url: str, case: Case, *, transport: str = "default") -> Run:
    """The SDK's batch engine, iterated without keeping outcomes."""
    from rungen_async import AsyncRunGen

    run = Run(case.name, "sdk" if transport == "default" else f"sdk-{transport}", case.jobs)
    options: dict[str, Any] = {}
    if transport == "httpx":
        import httpx

        options["transport"] = httpx.AsyncHTTPTransport(
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)
        )
    seen = run.seen
    monotonic = time.monotonic
    cpu0, run.started = time.process_time(), monotonic()
    async with AsyncRunGen(API_KEY, base_url=base_url, **options) as rg:
        async with rg.batch(
            APP_ID,
            _inputs(case.jobs),
            max_in_flight=case.max_in_flight,
            poll_rate=case.poll_rate,
            max_poll_rate=case.max_poll_rate,
        ) as batch:
            async for outcome in batch:
                if outcome.ok and outcome.job is not None:
                    seen[outcome.job.id] = monotonic()
        run.wall_s = monotonic() - run.started
        run.cpu_s = time.process_time() - cpu0
        run.status_requests = batch.stats.status_requests
        run.poll_rate_end = batch.stats.poll_rate
    run.ok = len(seen)
    return run


async def run_baseline(base_url: str, case: Case) -> Run:
    """A hand-written aiohttp loop: submit every job, poll each once a second."""
    import aiohttp

    run = Run(case.name, "aiohttp-1s", case.jobs)
    seen = run.seen
    monotonic = time.monotonic
    batch_id = uuid.uuid4().hex
    submit_url = base_url + SUBMIT_PATH
    job_url = f"{base_url}/app/{APP_ID}/job/"
    slots = asyncio.Semaphore(case.max_in_flight)
    polls = 0

    async def one(session: aiohttp.ClientSession, index: int, value: Any) -> None:
        nonlocal polls
        try:
            headers = {"idempotency-key": f"{batch_id}:{index}"}
            async with session.post(submit_url, json={"input": value}, headers=headers) as r:
                r.raise_for_status()
                job_id = (await r.json())["job_id"]
            while True:
                await asyncio.sleep(1.0)
                async with session.get(job_url + job_id) as r:
                    r.raise_for_status()
                    data = (await r.json())["data"]
                polls += 1
                if data["status"] in _TERMINAL:
                    if data["status"] == "COMPLETED":
                        seen[job_id] = monotonic()
                    return
        finally:
            slots.release()

    cpu0, run.started = time.process_time(), monotonic()
    connector = aiohttp.TCPConnector(limit=_CONNECTIONS)
    async with (
        aiohttp.ClientSession(connector=connector, headers=HEADERS) as session,
        asyncio.TaskGroup() as tg,
    ):
        for index, value in enumerate(_inputs(case.jobs)):
            await slots.acquire()
            tg.create_task(one(session, index, value))
    run.wall_s = monotonic() - run.started
    run.cpu_s = time.process_time() - cpu0
    run.status_requests = polls
    run.ok = len(seen)
    return run


CLIENT_LABELS = {
    "sdk": "AsyncRunGen.batch()",
    "sdk-httpx": "AsyncRunGen.batch(), httpx transport",
    "aiohttp-1s": "aiohttp loop, polls every 1 s",
}


def measure(base_url: str, case: Case, client: str) -> tuple[dict[str, Any], list[list[float]]]:
    """Reset the server for *case*, run *client* on it; its summary and delay trace."""
    control(
        base_url,
        "/_bench/reset",
        {"workers": case.workers, "min": case.low, "max": case.high, "seed": 6},
    )
    gc.collect()
    load = os.getloadavg()[0]
    if client == "aiohttp-1s":
        run = asyncio.run(run_baseline(base_url, case))
    else:
        transport = "httpx" if client == "sdk-httpx" else "default"
        run = asyncio.run(run_sdk(base_url, case, transport=transport))
    server = control(base_url, "/_bench/jobs")
    run.server_requests = server["requests"]
    summary = run.summary(server["jobs"], case)
    summary["loadavg"] = load
    print(
        f"batch: {case.name} {client}: {summary['status_requests_per_job']:.2f} req/job, "
        f"delay mean {summary['mean_delay_pct']:.1f} % p95 {summary['p95_delay_pct']:.1f} %, "
        f"wall {summary['wall_s']:.1f} s (ideal {summary['ideal_s']:.1f}), "
        f"CPU {summary['cpu_ms_per_job']:.2f} ms/job, load {load:.2f}",
        flush=True,
    )
    return summary, run.trace(server["jobs"])


def run(
    base_url: str, *, quick: bool, clients: tuple[str, ...] = ("sdk", "aiohttp-1s")
) -> dict[str, Any]:
    """Every case, each client once, in the same run."""
    rows = []
    traces: dict[str, dict[str, list[list[float]]]] = {}
    all_cases = cases(quick)
    for case in all_cases:
        # The SDK over httpx's own transport (what trio uses), once, on the 1,000-job case.
        extra = ("sdk-httpx",) if case.name == "batch-1k" else ()
        for client in (*clients, *extra):
            row, trace = measure(base_url, case, client)
            rows.append(row)
            traces.setdefault(case.label, {})[client] = trace
    for row in rows:
        base = next(r for r in rows if r["case"] == row["case"] and r["client"] == "aiohttp-1s")
        row["cpu_vs_baseline"] = row["cpu_s"] / base["cpu_s"]
        row["requests_vs_baseline"] = (
            row["status_requests_per_job"] / base["status_requests_per_job"]
        )
    return {"cases": [asdict(case) for case in all_cases], "runs": rows, "traces": traces}
