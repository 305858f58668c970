"""
429 pacing: ``python -m benchmarks.bench_rate_limit``.

    python -m benchmarks.bench_rate_limit --jobs 200 --seeds 5

A batch of *jobs* jobs of 6-8 s each, with 5 % of submits answered 429 (``Retry-After: 1``),
against the same batch without faults, in the same run. Both run on
`rungen_async.testing.FakeRunGen` (the emulator in process) on its virtual clock, so a 10 s
batch takes well under a second of real time and is the same on every run; every request
takes a round trip of *latency* virtual seconds, so submit concurrency matters as it does
over a network. The wall time is the virtual time from the first submit to the last outcome.

Target (issue #13.4): the faulty batch takes at most 1.5x the fault-free one. Before the
client paced 429s per route class, each 429 paused every request of the client for its
Retry-After (1.84x to 2.04x measured over real time).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Iterator
from typing import Any

import anyio
import httpx

from rungen_async.testing import FakeRunGen


class Latency(httpx.AsyncBaseTransport):
    """
    Hands requests to *inner* after *seconds* of virtual time, as a network would.

    With *pause_all*, it also replays the client's old rule for comparison: every 429 holds
    back every request for its Retry-After.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, fake: FakeRunGen, seconds: float, pause_all: bool
    ) -> None:
        self.inner, self.fake, self.seconds, self.pause_all = inner, fake, seconds, pause_all
        self.paused_until = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Wait the round trip (and the old pause), then let the emulator answer."""
        clock = self.fake.clock
        while self.pause_all and clock.now() < self.paused_until:
            await clock.sleep(self.paused_until - clock.now())
        await clock.sleep(self.seconds)
        response = await self.inner.handle_async_request(request)
        if self.pause_all and response.status_code == 429:
            retry_after = float(response.headers.get("retry-after", 0))
            self.paused_until = max(self.paused_until, clock.now() + retry_after)
        return response


def inputs(jobs: int, seed: int) -> Iterator[dict[str, Any]]:
    """Job inputs whose run times are drawn uniformly from [6, 8] seconds."""
    rng = random.Random(seed)
    for _ in range(jobs):
        yield {"_duration": rng.uniform(6.0, 8.0)}


async def run_batch(
    jobs: int, seed: int, rate_429: float, latency: float, *, pause_all: bool = False
) -> dict[str, float]:
    """One batch on a fresh fake; return its wall time (virtual s) and request counts."""
    fake = FakeRunGen(seed=seed)
    fake.emulator.api.max_workers = max(64, jobs)  # one worker per job: the API never queues
    app_id = fake.create_app("bench", active_workers=jobs)
    if rate_429:
        fake.set_faults(
            rate_429=rate_429, retry_after=1.0, routes=["POST /app/*/run_async"], seed=seed
        )
    transport = Latency(fake.transport, fake, latency, pause_all)
    async with fake.client(transport=transport) as rg:
        start = fake.clock.now()
        result = await rg.run_batch(app_id, inputs(jobs, seed), max_concurrency=16)
        wall = fake.clock.now() - start
    if not result.ok:
        raise RuntimeError(f"the batch did not complete: {result.stats}")
    return {
        "wall": wall,
        "429s": float(fake.stats.faults.get("429", 0)),
        "submits": float(len(fake.requests_to("POST", "/app/*/run_async"))),
    }


async def main(args: argparse.Namespace) -> None:
    """Run the fault-free and the faulty batch for each seed; print the ratios."""
    ratios: list[float] = []
    old_ratios: list[float] = []
    print(f"{args.jobs} jobs of 6-8 s, {args.rate:.0%} 429s on submits (Retry-After 1 s)")
    print("seed  fault-free s  with 429s s  429s  ratio | old rule (pause all) s  ratio")
    for seed in range(args.seeds):
        clean = await run_batch(args.jobs, seed, 0.0, args.latency)
        faulty = await run_batch(args.jobs, seed, args.rate, args.latency)
        old = await run_batch(args.jobs, seed, args.rate, args.latency, pause_all=True)
        ratio = faulty["wall"] / clean["wall"]
        old_ratio = old["wall"] / clean["wall"]
        ratios.append(ratio)
        old_ratios.append(old_ratio)
        print(
            f"{seed:4d}  {clean['wall']:12.2f}  {faulty['wall']:11.2f}  "
            f"{faulty['429s']:4.0f}  {ratio:5.2f}x | {old['wall']:22.2f}  {old_ratio:5.2f}x"
        )
    print(
        f"ratio: median {statistics.median(ratios):.2f}x, worst {max(ratios):.2f}x "
        f"(target <= 1.5x); old rule: median {statistics.median(old_ratios):.2f}x"
    )


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rate", type=float, default=0.05, help="share of submits refused")
    parser.add_argument("--latency", type=float, default=0.05, help="round trip, seconds")
    return parser.parse_args(argv)


if __name__ == "__main__":
    anyio.run(main, parse())
