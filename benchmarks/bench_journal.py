"""
The SQLite batch journal: resume memory against batch size, time to open, commit cost.

``python -m benchmarks.bench_journal`` builds finished journals of each size (default
10,000 and 100,000 items; ``--items 10000,1000000`` for the issue's target), then, in a
fresh child process per size, opens each one as a resuming batch would and walks every
item in order (restoring its outcome). It prints one JSON line per size, with the peak RSS
of that child (``VmHWM``, interpreter and imports included), the time to open and the time
to walk, then the RSS ratio of each size to the smallest. It also times the commits a
submit costs on the event loop (submitting, submitted, finished: one transaction each).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rungen_async._batch._journal import SCHEMA_VERSION, Journal, connect

_JOB = {
    "id": "00000000-0000-4000-8000-000000000000",
    "status": "COMPLETED",
    "result": {"images": ["https://storage.example/outputs/0000000000000000.png"]},
    "execution_time": 4.2,
    "error": None,
}


def build(path: Path, items: int) -> None:
    """A journal of *items* COMPLETED items, written in one transaction."""
    db = connect(path)
    job = json.dumps(_JOB, separators=(",", ":"))
    db.execute("BEGIN")
    db.executemany(
        "INSERT INTO meta VALUES (?, ?)",
        [("version", str(SCHEMA_VERSION)), ("app_id", "app"), ("batch_id", "bench")],
    )
    db.executemany(
        "INSERT INTO items (batch, idx, state, key, digest, job_id, kind, job)"
        " VALUES ('bench', ?, 'finished', ?, '0000000000000000', ?, 'COMPLETED', ?)",
        ((i, f"bench:{i}", f"job-{i}", job) for i in range(items)),
    )
    db.execute("COMMIT")
    db.close()


def peak_rss_mb() -> float:
    """This process's peak resident set (``VmHWM``), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(path: Path, items: int) -> dict[str, float]:
    """Open *path* as a resume does and restore every item; report time and memory."""
    started = time.perf_counter()
    journal = Journal(path, app_id="app", batch_id=None)
    opened = time.perf_counter()
    restored = 0
    for index in range(items):
        item = journal.state(index)
        if item is not None and item.state == "finished":
            restored += item.job is not None
    walked = time.perf_counter()
    journal.close()
    assert restored == items
    return {
        "items": items,
        "open_s": round(opened - started, 4),
        "walk_s": round(walked - opened, 3),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


def commit_cost(path: Path, items: int) -> float:
    """Microseconds per journal commit, over the three commits of *items* submits."""
    journal = Journal(path, app_id="app", batch_id=None)
    finished = {"kind": "COMPLETED", "job": _JOB, "error": None}
    started = time.perf_counter()
    for index in range(items):
        journal.record_submitting(index, {"prompt": f"p{index}"})
        journal.record_submitted(index, f"job-{index}")
        journal.record_finished(index, finished)
    elapsed = time.perf_counter() - started
    journal.close()
    return elapsed / (3 * items) * 1e6


def main() -> None:
    """Run the benchmark and print its JSON lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", default="10000,100000", help="comma-separated sizes")
    parser.add_argument("--child", nargs=2, metavar=("PATH", "ITEMS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), int(args.child[1]))))
        return
    sizes = sorted(int(size) for size in args.items.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for size in sizes:
            path = Path(tmp) / f"j{size}"
            build(path, size)
            out = subprocess.run(
                [sys.executable, "-m", "benchmarks.bench_journal", "--child", str(path), str(size)],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            rows.append(json.loads(out))
            print(json.dumps(rows[-1]))
        base = rows[0]["peak_rss_mb"]
        ratios = {str(row["items"]): round(row["peak_rss_mb"] / base, 3) for row in rows}
        cost = commit_cost(Path(tmp) / "commits", 5000)
    print(json.dumps({"rss_ratio_to_smallest": ratios, "commit_us": round(cost, 1)}))


if __name__ == "__main__":
    main()
