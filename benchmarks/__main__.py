"""
Run every benchmark scenario: ``python -m benchmarks [--quick]``.

Starts `benchmarks.server` in a separate process pinned to one CPU, pins this (client)
process to another, runs the scenarios, and writes ``results.json``, ``results.md`` and PNG
plots into the output directory. The server is always stopped, whatever happens.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio

from benchmarks import (
    bench_batch,
    bench_faults,
    bench_memory,
    bench_overhead,
    bench_rate_limit,
    report,
)
from benchmarks.machine import describe_machine

RESULTS = Path(__file__).parent / "results"
SCENARIOS = ("overhead", "batch", "memory", "rate_limit", "faults")


SERVERS = {
    "h1": "benchmarks.server",
    "h2": "benchmarks.server_h2",
    "batch": "benchmarks.batch_server",
}


@contextmanager
def server_process(cpu: int | None, kind: str = "h1") -> Iterator[str]:
    """Start a loopback server in its own process and yield its base URL; always stop it."""
    command = [sys.executable, "-m", SERVERS[kind]]
    if cpu is not None:
        command += ["--cpu", str(cpu)]
    process = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,  # the server exits when this closes, even if we are killed
        stdout=subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"benchmark server failed to start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rate_limit_scenario(quick: bool) -> dict[str, Any]:
    """`bench_rate_limit`: 200 jobs with 5 % 429s on submits against the fault-free batch."""
    runs: list[dict[str, Any]] = []
    with bench_faults.quiet_retries():
        for seed in range(1 if quick else 5):
            clean = anyio.run(bench_rate_limit.run_batch, 200, seed, 0.0, 0.05)
            faulty = anyio.run(bench_rate_limit.run_batch, 200, seed, 0.05, 0.05)
            ratio = round(faulty["wall"] / clean["wall"], 3)
            runs.append({"seed": seed, "fault_free": clean, "faulty": faulty, "ratio": ratio})
    ratios = sorted(run["ratio"] for run in runs)
    return {
        "runs": runs,
        "median_ratio": ratios[len(ratios) // 2],
        "worst_ratio": ratios[-1],
        "target_ratio": 1.5,
    }


def pick_cpus() -> tuple[int | None, int | None]:
    """One CPU for the client and another for the server, if this machine lets us pin."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, run the scenarios and write the results."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, a few seconds (CI)")
    parser.add_argument("--out", type=Path, help="output directory (default benchmarks/results)")
    parser.add_argument("--repeats", type=int, help="full runs of each scenario (default 3)")
    parser.add_argument("--requests", type=int, help="requests per measured cell")
    parser.add_argument("--max-seconds", type=float, help="time cap per measured cell")
    parser.add_argument("--concurrency", type=int, nargs="+", help="default 1 16 64 256")
    parser.add_argument("--clients", nargs="+", help="subset of clients, by name")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=SCENARIOS,
        help="which scenarios to run (default: all, or only overhead when an overhead option "
        "such as --clients is given); the others keep their figures in results.json",
    )
    args = parser.parse_args(argv)
    if args.scenarios is None:
        overhead_only = any(
            getattr(args, name) is not None
            for name in ("repeats", "requests", "max_seconds", "concurrency", "clients")
        )
        args.scenarios = ["overhead"] if overhead_only else list(SCENARIOS)

    if args.quick:
        out = args.out or RESULTS / "quick"
        repeats, requests, max_seconds = args.repeats or 1, args.requests or 60, 1.0
        concurrencies = args.concurrency or [1, 16]
    else:
        out = args.out or RESULTS
        repeats, requests, max_seconds = args.repeats or 3, args.requests or 4000, 5.0
        concurrencies = args.concurrency or [1, 16, 64, 256]
    max_seconds = args.max_seconds or max_seconds
    clients = args.clients or bench_overhead.available_clients()
    unknown = set(clients) - set(bench_overhead.CLIENTS)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}; known: {list(bench_overhead.CLIENTS)}")

    client_cpu, server_cpu = pick_cpus()
    command = "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    results: dict[str, Any] = {"scenarios": {}}
    if set(args.scenarios) != set(SCENARIOS) and path.exists():
        results = json.loads(path.read_text())  # keep the scenarios not run now
    started = time.time()
    if "overhead" in args.scenarios:
        machine = describe_machine(client_cpu=client_cpu, server_cpu=server_cpu)
        config = {
            "quick": args.quick,
            "repeats": repeats,
            "requests_per_cell": requests,
            "max_seconds_per_cell": max_seconds,
            "concurrencies": concurrencies,
            "clients": clients,
            "command": command,
        }
        with ExitStack() as servers:
            kinds = sorted({bench_overhead.CLIENTS[name].server for name in clients})
            base_urls = {
                kind: servers.enter_context(server_process(server_cpu, kind)) for kind in kinds
            }
            if client_cpu is not None:
                os.sched_setaffinity(0, {client_cpu})
            samples = bench_overhead.run(
                base_urls,
                clients=clients,
                concurrencies=concurrencies,
                requests=requests,
                max_seconds=max_seconds,
                repeats=repeats,
            )
        machine["loadavg_after"] = os.getloadavg()
        machine["duration_s"] = round(time.time() - started, 1)
        results["machine"], results["config"] = machine, config
        results["scenarios"]["overhead"] = {
            "summary": bench_overhead.summarise(samples),
            "samples": [sample.as_dict() for sample in samples],
        }
    for name in ("batch", "memory"):
        if name not in args.scenarios:
            continue
        began = time.time()
        machine = describe_machine(client_cpu=client_cpu, server_cpu=server_cpu)
        with server_process(server_cpu, "batch") as base_url:
            if client_cpu is not None:
                os.sched_setaffinity(0, {client_cpu})
            if name == "batch":
                scenario = bench_batch.run(base_url, quick=args.quick)
            else:
                scenario = bench_memory.run(base_url, quick=args.quick, cpu=client_cpu)
        machine["loadavg_after"] = os.getloadavg()
        machine["duration_s"] = round(time.time() - began, 1)
        results["scenarios"][name] = {"machine": machine, "command": command, **scenario}

    # On the emulator's virtual clock, in this process: no server, no pinning needed.
    virtual = {"rate_limit": rate_limit_scenario, "faults": bench_faults.run}
    for name, scenario_of in virtual.items():
        if name in args.scenarios:
            began = time.time()
            machine = describe_machine(client_cpu=None, server_cpu=None)
            scenario = scenario_of(args.quick)
            machine["duration_s"] = round(time.time() - began, 1)
            results["scenarios"][name] = {"machine": machine, "command": command, **scenario}

    path.write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.markdown(results))
    plots = report.plots(results, out)
    print(f"wrote {path}, {out / 'results.md'}, " + ", ".join(map(str, plots)))


if __name__ == "__main__":
    main()
