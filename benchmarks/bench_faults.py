"""
A big batch under the full fault mix: ``python -m benchmarks.bench_faults [--quick]``.

    python -m benchmarks.bench_faults                # 20,000 jobs, faulty and fault-free
    python -m benchmarks.bench_faults --quick        # 2,000 jobs (CI)

The same batch runs twice in the same process, once without faults (the baseline) and once
under the mix issue #13 measured (20,000 jobs in 41 minutes then, about 2,400 one-second
pauses back to back), on every API route:

* 5 % of requests answered 503 with ``Retry-After: 1`` (so a submit may be re-sent);
* 5 % answered 429 with ``Retry-After: 1``;
* 2 % dropped connections: 1 % before the request is handled and 1 % after it was handled
  (the response is lost, the job exists). A drop before handling can never create a second
  job, so half the drops are of the kind where a blind re-send of a submit would bill twice.

The model (every figure is a flag):

* API: `rungen_async.testing.FakeRunGen` (the emulator in process) on its virtual clock, so a
  batch of many virtual minutes takes seconds of real time and is the same on every run.
  The emulator's idempotency keys are OFF (``idempotency_keys=False``, the API as
  documented), so a submit sent twice creates a second job and shows up in the count.
* Jobs: run times drawn uniformly from 4-6 s (seeded, the same in both runs); one app with
  1,000 workers, as many as jobs in flight, so the API never queues.
* Network: every request takes a 50 ms round trip of virtual time before the emulator answers,
  so submit concurrency matters as over a real network.
* Client: `AsyncRunGen.run_batch()` with the SDK's defaults: ``max_concurrency=16`` submits,
  ``max_in_flight=1000`` jobs, ``poll_rate=100`` status requests/s, the default
  `RetryPolicy` (5 attempts, ``max_rate_limit_wait=60``, ambiguous POSTs not re-sent).

Measured for each run: the wall time (virtual seconds from the first request to the last
outcome), requests by kind, faults injected, the client's retries, outcomes by kind, and the
real CPU seconds the run took (`time.process_time()`, client and emulator together). Checked
at the emulator, from every job it created (each input carries its index): **lost** = inputs
without a COMPLETED outcome for a job of their own or an AMBIGUOUS outcome naming their key;
**duplicates** = inputs the emulator created more than one job for. AMBIGUOUS outcomes are
the submits whose connection dropped: the SDK cannot know whether the job exists, and says so
(with the key) rather than re-send; for each, the emulator tells whether it does.

Target (issue #13.4): the faulty batch finishes within 2x of the fault-free one, 0 lost,
0 duplicates.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatchcase
from typing import Any

import anyio

from benchmarks.bench_rate_limit import Latency
from rungen_async import OutcomeKind
from rungen_async.testing import FakeRunGen

TARGET_RATIO = 2.0
REQUEST_KINDS = (
    ("submit", "POST", "/app/*/run_async"),
    ("status", "GET", "/app/*/job/*"),
    ("cancel", "*", "/app/*/job/*/cancel*"),
    ("app", "GET", "/app/*"),
)


def inputs(jobs: int, low: float, high: float, seed: int) -> Iterator[dict[str, Any]]:
    """Job inputs tagged with their index, run times drawn uniformly from [low, high]."""
    rng = random.Random(seed)
    for index in range(jobs):
        yield {"item": index, "_duration": rng.uniform(low, high)}


def request_kind(method: str, path: str) -> str:
    """Which kind of request ``method path`` is, for the counts."""
    for kind, want_method, pattern in REQUEST_KINDS:
        if fnmatchcase(method, want_method) and fnmatchcase(path, pattern):
            return kind
    return "other"


async def run_batch(args: argparse.Namespace, *, faults: bool) -> dict[str, Any]:
    """Run the batch once on a fresh fake, with or without faults; return its figures."""
    random.seed(args.seed)  # the client's back-off jitter, so runs repeat
    fake = FakeRunGen(seed=args.seed, idempotency_keys=False)
    fake.emulator.api.max_workers = max(64, args.workers)
    app_id = fake.create_app("bench-faults", active_workers=args.workers)
    if faults:
        fake.set_faults(
            rate_5xx=args.rate_503,
            status_5xx=503,
            rate_429=args.rate_429,
            retry_after=args.retry_after,
            rate_drop=args.rate_drop,
            rate_drop_after=args.rate_drop_after,
            seed=args.seed,
        )
    transport = Latency(fake.transport, fake, args.latency, pause_all=False)
    cpu = time.process_time()
    async with fake.client(transport=transport) as rg:
        start = fake.clock.now()
        result = await rg.run_batch(
            app_id,
            inputs(args.jobs, args.low, args.high, args.seed),
            max_concurrency=args.concurrency,
            max_in_flight=args.in_flight,
            poll_rate=args.poll_rate,
        )
        wall = fake.clock.now() - start
    cpu = time.process_time() - cpu
    submits = fake.requests_to("POST", "/app/*/run_async")

    jobs_of: dict[int, list[str]] = {}
    for job_id, job in fake.emulator.api.jobs.items():
        jobs_of.setdefault(int(job.input["item"]), []).append(job_id)
    lost = duplicates = ambiguous_with_job = 0
    outcomes: Counter[str] = Counter()
    for outcome in result.outcomes:
        outcomes[outcome.kind.value] += 1
        created = jobs_of.get(outcome.index, [])
        duplicates += len(created) > 1
        if outcome.kind is OutcomeKind.AMBIGUOUS:
            ambiguous_with_job += bool(created)
            lost += outcome.idempotency_key is None
        elif outcome.kind is OutcomeKind.COMPLETED:
            lost += outcome.job is None or created != [outcome.job.id]
        else:
            lost += 1
    lost += args.jobs - len(result.outcomes)
    stats = result.stats
    return {
        "faults": faults,
        "wall_s": round(wall, 2),
        "last_submit_s": round(max(r.time for r in submits) - start, 2),
        "cpu_s": round(cpu, 2),
        "requests": dict(Counter(request_kind(r.method, r.path) for r in fake.requests)),
        "injected": dict(fake.stats.faults),
        "retries": stats.retries,
        "status_requests": stats.status_requests,
        "poll_errors": stats.poll_errors,
        "outcomes": dict(outcomes),
        "ambiguous": stats.ambiguous,
        "ambiguous_with_job": ambiguous_with_job,
        "jobs_created": fake.jobs_created,
        "lost": lost,
        "duplicates": duplicates,
    }


@contextmanager
def quiet_retries() -> Iterator[None]:
    """Silence the client's one warning per retried request (thousands here) for a while."""
    logger = logging.getLogger("rungen_async")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run(quick: bool = False, **overrides: Any) -> dict[str, Any]:
    """The scenario for ``python -m benchmarks``: both runs and their ratio, as JSON."""
    args = parse(["--quick"] if quick else [])
    for name, value in overrides.items():
        setattr(args, name, value)
    with quiet_retries():
        return anyio.run(measure, args)


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    """The fault-free run, then the faulty one; their figures and the wall-time ratio."""
    clean = await run_batch(args, faults=False)
    faulty = await run_batch(args, faults=True)
    ratio = faulty["wall_s"] / clean["wall_s"]
    return {
        "config": {
            name: getattr(args, name)
            for name in (
                "jobs",
                "low",
                "high",
                "workers",
                "latency",
                "concurrency",
                "in_flight",
                "poll_rate",
                "rate_503",
                "rate_429",
                "retry_after",
                "rate_drop",
                "rate_drop_after",
                "seed",
            )
        },
        "fault_free": clean,
        "faulty": faulty,
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO and faulty["lost"] == 0 and faulty["duplicates"] == 0,
    }


def markdown(scenario: dict[str, Any]) -> list[str]:
    """The scenario as a Markdown table (for the report)."""
    clean, faulty = scenario["fault_free"], scenario["faulty"]
    kinds = sorted(set(clean["requests"]) | set(faulty["requests"]))
    config = scenario["config"]
    lines = [
        f"### {config['jobs']:,} jobs under the full fault mix (`bench_faults.py`)",
        "",
        "| | fault-free | faulty |",
        "|---|---:|---:|",
        f"| wall (virtual s) | {clean['wall_s']:,.1f} | {faulty['wall_s']:,.1f} |",
    ]
    lines += [
        f"| {kind} requests | {clean['requests'].get(kind, 0):,} | "
        f"{faulty['requests'].get(kind, 0):,} |"
        for kind in kinds
    ]
    for key, label in (
        ("retries", "client retries"),
        ("ambiguous", "AMBIGUOUS outcomes"),
        ("ambiguous_with_job", "... of which the job exists"),
        ("jobs_created", "jobs created"),
        ("lost", "lost"),
        ("duplicates", "inputs submitted twice"),
        ("cpu_s", "real CPU s"),
    ):
        lines.append(f"| {label} | {clean[key]:,} | {faulty[key]:,} |")
    injected = ", ".join(f"{n} {name}" for name, n in sorted(faulty["injected"].items()))
    lines += [
        "",
        f"Faults injected: {injected}. Ratio faulty / fault-free: **{scenario['ratio']:.2f}x** "
        f"(target <= {scenario['target_ratio']:g}x, 0 lost, 0 submitted twice: "
        f"{'met' if scenario['target_met'] else 'NOT met'}).",
        "",
    ]
    return lines


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1] if __doc__ else None)
    add = parser.add_argument
    add("--quick", action="store_true", help="2,000 jobs instead of 20,000")
    add("--jobs", type=int, help="inputs in the batch (default 20,000; 2,000 with --quick)")
    add("--low", type=float, default=4.0, help="shortest job run time, seconds")
    add("--high", type=float, default=6.0, help="longest job run time, seconds")
    add("--workers", type=int, default=1000, help="the app's workers")
    add("--latency", type=float, default=0.05, help="round trip of every request, seconds")
    add("--concurrency", type=int, default=16, help="max_concurrency (submits in flight)")
    add("--in-flight", type=int, default=1000, help="max_in_flight (jobs in flight)")
    add("--poll-rate", type=float, default=100.0, help="poll_rate (status requests/s)")
    add("--rate-503", type=float, default=0.05, help="share of requests answered 503")
    add("--rate-429", type=float, default=0.05, help="share of requests answered 429")
    add("--retry-after", type=float, default=1.0, help="Retry-After of 429s and 503s, s")
    add("--rate-drop", type=float, default=0.01, help="share dropped before handling")
    add("--rate-drop-after", type=float, default=0.01, help="share dropped after handling")
    add("--seed", type=int, default=0)
    add("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.jobs is None:
        args.jobs = 2000 if args.quick else 20000
    return args


def main(argv: list[str] | None = None) -> None:
    """Run both batches and print the table (or JSON)."""
    args = parse(argv)
    with quiet_retries():
        scenario = anyio.run(measure, args)
    print(json.dumps(scenario, indent=2) if args.json else "\n".join(markdown(scenario)))


if __name__ == "__main__":
    main()
