"""
Profile the SDK's batch (scenario 2) with pyinstrument: ``python -m benchmarks.profile_batch``.

    python -m benchmarks.profile_batch --case batch-1k

Starts `benchmarks.batch_server` pinned to one CPU, pins itself to the other, runs the
case's SDK batch under pyinstrument, and writes the call tree (text, and HTML) into
benchmarks/results/profiles/, plus a summary of the functions with the most self time.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
from pathlib import Path
from typing import Any

from benchmarks import bench_batch
from benchmarks.__main__ import RESULTS, pick_cpus, server_process


def self_time_summary(session: Any, top: int = 25) -> str:
    """Share of the sampled time per function: self, and total (anywhere on the stack)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()

    def walk(frame: Any, seen: frozenset[str]) -> None:
        name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
        own[name] += frame.total_self_time
        if name not in seen:
            total[name] += frame.time
        for child in frame.children:
            walk(child, seen | {name})

    root = session.root_frame()
    walk(root, frozenset())
    whole = root.time or 1.0
    lines = [f"{'self %':>7} {'total %':>8}  function"]
    for name, seconds in own.most_common(top):
        lines.append(f"{100 * seconds / whole:7.1f} {100 * total[name] / whole:8.1f}  {name}")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run the case under pyinstrument, write the profile."""
    from pyinstrument import Profiler

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    names = [case.name for quick in (False, True) for case in bench_batch.cases(quick)]
    parser.add_argument("--case", choices=names, default="batch-1k")
    parser.add_argument("--out", type=Path, default=RESULTS / "profiles")
    args = parser.parse_args()
    case = next(c for q in (False, True) for c in bench_batch.cases(q) if c.name == args.case)

    client_cpu, server_cpu = pick_cpus()
    with server_process(server_cpu, "batch") as base_url:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        bench_batch.control(
            base_url, "/_bench/reset", {"workers": case.workers, "min": case.low, "max": case.high}
        )
        profiler = Profiler(interval=0.001, async_mode="disabled")
        with profiler:
            run = asyncio.run(bench_batch.run_sdk(base_url, case))
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"batch-{case.name}.pyinstrument"
    session = profiler.last_session
    assert session is not None
    header = (
        f"{case.label}: {run.jobs} jobs, {run.status_requests} status requests, "
        f"CPU {run.cpu_s:.2f} s, wall {run.wall_s:.2f} s (under the profiler)\n\n"
    )
    (args.out / f"batch-{case.name}.summary.txt").write_text(header + self_time_summary(session))
    stem.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
    stem.with_suffix(".html").write_text(profiler.output_html())
    print("wrote", args.out / f"batch-{case.name}.summary.txt", stem.with_suffix(".txt"))


if __name__ == "__main__":
    main()
