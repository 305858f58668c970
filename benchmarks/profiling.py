"""
Profile one benchmark cell with pyinstrument: ``python -m benchmarks.profiling``.

    python -m benchmarks.profiling --client httpx-default --operation submit_job \
        --concurrency 256 --requests 3000

Starts the loopback server like ``python -m benchmarks`` does, warms the client up, then
samples the client process while it makes *requests* requests, and writes the result into
benchmarks/results/profiles/. ``--sampler pyinstrument`` (in-process) writes its call tree as
text and HTML; ``--sampler py-spy`` (a separate process, non-blocking, far less overhead, so
httpx's default pool does not hit its own pool timeout at concurrency 256) writes the raw
collapsed stacks and a summary of the functions with the most samples.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks import bench_overhead
from benchmarks.__main__ import RESULTS, pick_cpus, server_process


@contextmanager
def _py_spy(raw: Path, cpu: int | None, *, nonblocking: bool) -> Iterator[None]:
    """Sample this process with py-spy, running on the server's CPU, not the client's."""
    command = [
        str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
        "--rate", "500", "--format", "raw", "--output", str(raw),
    ] + (["--nonblocking"] if nonblocking else [])  # fmt: skip
    pin: Callable[[], None] | None = (lambda: os.sched_setaffinity(0, {cpu})) if cpu else None
    spy = subprocess.Popen(command, preexec_fn=pin, stdout=subprocess.DEVNULL)
    time.sleep(1.0)  # let it attach before the measured part starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        try:
            spy.wait(timeout=30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()


def summarise_raw(raw: Path, top: int = 30) -> str:
    """Share of samples per function: self (on top of the stack) and total (anywhere in it)."""
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        # Per function, not per line: "name (file:line)" -> "name (file)".
        frames = [
            frame.rsplit(":", 1)[0] + ")" if ":" in frame else frame for frame in stack.split(";")
        ]
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{samples} samples", "", "self %  function (file)"]
    lines += [f"{n / samples:6.1%}  {frame}" for frame, n in own.most_common(top)]
    lines += ["", "total %  function (file)"]
    lines += [f"{n / samples:6.1%}  {frame}" for frame, n in total.most_common(top)]
    return "\n".join(lines) + "\n"


async def _profile(
    name: str,
    operation: str,
    base_url: str,
    concurrency: int,
    requests: int,
    out: Path,
    sampler: str,
    spare_cpu: int | None,
    nonblocking: bool,
) -> Path:
    from pyinstrument import Profiler

    stem = f"{name}-{operation}-c{concurrency}"
    async with bench_overhead.CLIENTS[name].open(base_url) as ops:
        job_id = await ops.submit_job()

        async def call() -> object:
            if operation == "submit_job":
                return await ops.submit_job()
            return await ops.get_job(job_id)

        await bench_overhead._drive(call, concurrency, max(2 * concurrency, 500), 30)
        if sampler == "py-spy":
            raw = out / f"{stem}.py-spy.txt"
            with _py_spy(raw, spare_cpu, nonblocking=nonblocking):
                done, wall, cpu = await bench_overhead._drive(call, concurrency, requests, 60)
        else:
            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            done, wall, cpu = await bench_overhead._drive(call, concurrency, requests, 60)
            profiler.stop()
    header = (
        f"{name} {operation} concurrency={concurrency}: {done} requests, "
        f"{cpu / done * 1e6:.0f} us CPU/request (under {sampler}), {done / wall:.0f} req/s\n"
    )
    if sampler == "py-spy":
        path = out / f"{stem}.py-spy-summary.txt"
        path.write_text(header + summarise_raw(raw))
        return path
    path = out / f"{stem}.txt"
    path.write_text(header + profiler.output_text(unicode=True, color=False, show_all=False))
    (out / f"{stem}.html").write_text(profiler.output_html())
    return path


def main() -> None:
    """Parse arguments, start the server, profile one cell."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profiling")
    parser.add_argument("--client", default="httpx-default", choices=list(bench_overhead.CLIENTS))
    parser.add_argument("--operation", default="submit_job", choices=bench_overhead.OPERATIONS)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--sampler", choices=["pyinstrument", "py-spy"], default="pyinstrument")
    parser.add_argument(
        "--nonblocking",
        action="store_true",
        help="py-spy without pausing the process: less overhead, some torn stacks",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "profiles")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    client_cpu, server_cpu = pick_cpus()
    with server_process(server_cpu) as base_url:
        if client_cpu is not None:
            os.sched_setaffinity(0, {client_cpu})
        path = asyncio.run(
            _profile(
                args.client,
                args.operation,
                base_url,
                args.concurrency,
                args.requests,
                args.out,
                args.sampler,
                server_cpu,
                args.nonblocking,
            )
        )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
