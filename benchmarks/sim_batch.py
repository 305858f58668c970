"""
Scenario 2 on a virtual clock: ``python -m benchmarks.sim_batch``.

    python -m benchmarks.sim_batch --jobs 1000 --cpu-us 300
    python -m benchmarks.sim_batch --jobs 2000 --workers 200 --in-flight 1000

Runs `AsyncRunGen.batch()` against `rungen_async.testing.FakeRunGen` (the emulator, in
process) on a `FakeClock`, so a 4-6 s batch of 10,000 jobs takes seconds, not minutes, and is
the same on every run. Client CPU is modelled: every request holds one shared "CPU" for
*cpu_us* microseconds of virtual time, so a client that sends too much falls behind as a real
one would. This is for tuning the poll scheduler (requests per job against detection delay);
the real figures come from ``python -m benchmarks --scenarios batch``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

import anyio
import httpx

from rungen_async import PollScheduler
from rungen_async.testing import FakeRunGen


class CpuTransport(httpx.AsyncBaseTransport):
    """Hands requests to *inner*, each one holding a shared lock for *cost* virtual seconds."""

    def __init__(self, inner: httpx.AsyncBaseTransport, fake: FakeRunGen, cost: float) -> None:
        self.inner, self.fake, self.cost = inner, fake, cost
        self.cpu = anyio.Lock()
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Spend the request's CPU, then let the emulator answer."""
        self.requests += 1
        async with self.cpu:
            await self.fake.clock.sleep(self.cost)
        return await self.inner.handle_async_request(request)


def inputs(jobs: int, low: float, high: float, seed: int) -> Iterator[dict[str, Any]]:
    """Job inputs whose run times are drawn uniformly from [low, high]."""
    rng = random.Random(seed)
    for _ in range(jobs):
        yield {"_duration": rng.uniform(low, high)}


async def simulate(args: argparse.Namespace) -> dict[str, float]:
    """Run one batch on the fake; return requests per job and the delay figures."""
    fake = FakeRunGen()
    fake.emulator.api.max_workers = max(64, args.jobs)  # one worker per job unless --workers
    app_id = fake.create_app("sim", active_workers=args.workers or args.jobs)
    transport = CpuTransport(fake.transport, fake, args.cpu_us * 1e-6)
    emulator = fake.emulator
    delays: list[float] = []
    runs: list[float] = []
    async with fake.client(transport=transport) as rg:
        await rg.get_app(app_id)  # sets the emulator's time origin
        origin = emulator._origin or 0.0
        start = fake.clock.now()
        async with rg.batch(
            app_id,
            inputs(args.jobs, args.low, args.high, args.seed),
            max_in_flight=args.in_flight or args.jobs,
            poll_rate=args.poll_rate,
            scheduler=PollScheduler(target_delay=args.target_delay, scout_every=args.scout_every),
        ) as batch:
            async for outcome in batch:
                assert outcome.job is not None
                job = emulator.job(outcome.job.id)
                assert job.finished_at is not None
                assert job.started_at is not None
                delays.append(fake.clock.now() - origin - job.finished_at)
                runs.append(job.finished_at - job.started_at)
        stats = batch.stats
    ratios = sorted(d / r for d, r in zip(delays, runs, strict=True))
    return {
        "jobs": len(delays),
        "status_per_job": stats.status_requests / len(delays),
        "mean_delay_pct": 100 * statistics.fmean(delays) / statistics.fmean(runs),
        "p95_delay_pct": 100 * ratios[int(0.95 * (len(ratios) - 1))],
        "wall": fake.clock.now() - start,
    }


def main() -> None:
    """Parse the arguments, simulate, print one line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--low", type=float, default=4.0)
    parser.add_argument("--high", type=float, default=6.0)
    parser.add_argument("--workers", type=int, default=0, help="0: one per job")
    parser.add_argument("--in-flight", type=int, default=0, help="0: every job")
    parser.add_argument("--poll-rate", type=float, default=5000.0)
    parser.add_argument("--cpu-us", type=float, default=300.0, help="client CPU per request")
    parser.add_argument("--seed", type=int, default=1)
    defaults = PollScheduler[int]()
    parser.add_argument("--scout-every", type=int, default=defaults.scout_every)
    parser.add_argument("--target-delay", type=float, default=defaults.model.target_delay)
    args = parser.parse_args()
    began = time.perf_counter()
    result = anyio.run(simulate, args)
    print(
        f"{result['jobs']} jobs: {result['status_per_job']:.2f} status req/job, "
        f"delay mean {result['mean_delay_pct']:.1f} % p95 {result['p95_delay_pct']:.1f} %, "
        f"virtual wall {result['wall']:.1f} s (simulated in {time.perf_counter() - began:.1f} s)"
    )


if __name__ == "__main__":
    main()
