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

_IDLE = frozenset({"epoll.poll", "select.select", "poll", "kqueue.control"})


def time_summary(session: Any, top: int = 30) -> str:
    """
    The functions with the most time on the stack, as a share of the busy (not idle) time.

    Each function counts once per stack (recursion is not double-counted); time spent
    waiting in the event loop's selector is idle and left out of the whole.
    """
    total: collections.Counter[str] = collections.Counter()
    idle = 0.0

    def walk(frame: Any, seen: frozenset[str]) -> None:
        nonlocal idle
        function = str(frame.function)
        if function in _IDLE or (function == "select" and "selectors" in frame.file_path_short):
            idle += frame.time
            return
        if function.startswith("["):  # pyinstrument's synthetic [self] / [await] frames
            return
        name = f"{function} ({frame.file_path_short}:{frame.line_no})"
        if name not in seen:
            total[name] += frame.time
        for child in frame.children:
            walk(child, seen | {name})

    root = session.root_frame()
    walk(root, frozenset())
    # The whole: time in the event loop's callbacks (every task step), idle waits excluded.
    busy = total.get("_run (asyncio/events.py:78)") or (root.time - idle) or 1.0
    lines = [
        f"{busy:.2f} s in event-loop callbacks, {idle:.2f} s idle, {root.time:.2f} s sampled",
        "",
        "total %  function (share of the callback time, each function once per stack)",
    ]
    lines += [
        f"{100 * seconds / busy:7.1f}  {name}"
        for name, seconds in total.most_common(top + 6)
        if seconds <= busy
    ][:top]
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
    (args.out / f"batch-{case.name}.summary.txt").write_text(header + time_summary(session, 45))
    stem.with_suffix(".txt").write_text(profiler.output_text(unicode=True, show_all=False))
    stem.with_suffix(".html").write_text(profiler.output_html())
    print("wrote", args.out / f"batch-{case.name}.summary.txt", stem.with_suffix(".txt"))


if __name__ == "__main__":
    main()
