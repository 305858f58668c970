"""Smoke test of `benchmarks.bench_faults`: its quick path runs and reports both batches."""

from __future__ import annotations

import json

import pytest

from benchmarks import bench_faults


def test_quick_is_two_thousand_jobs_and_the_full_run_twenty_thousand() -> None:
    """``--quick`` shrinks the batch to 2,000 jobs; without it the issue's 20,000 run."""
    assert bench_faults.parse(["--quick"]).jobs == 2000
    assert bench_faults.parse([]).jobs == 20000


async def test_both_runs_are_measured_and_nothing_is_lost_or_sent_twice() -> None:
    """A small batch runs fault-free, then under the fault mix; both are reported in full."""
    args = bench_faults.parse(["--quick", "--jobs", "200"])

    with bench_faults.quiet_retries():
        scenario = await bench_faults.measure(args)

    clean, faulty = scenario["fault_free"], scenario["faulty"]
    assert clean["injected"] == {}
    assert clean["retries"] == 0
    assert clean["outcomes"] == {"COMPLETED": 200}
    assert clean["jobs_created"] == 200
    assert faulty["injected"]
    assert faulty["retries"] > 0
    assert sum(faulty["outcomes"].values()) == 200
    for run in (clean, faulty):
        assert run["lost"] == 0
        assert run["duplicates"] == 0
        assert run["requests"]["submit"] >= 200
        assert run["wall_s"] > 0
    assert scenario["ratio"] == pytest.approx(faulty["wall_s"] / clean["wall_s"], abs=1e-3)


def test_the_command_line_prints_the_table_or_json(capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m benchmarks.bench_faults`` prints both columns, or JSON with ``--json``."""
    bench_faults.main(["--quick", "--jobs", "40"])
    table = capsys.readouterr().out
    assert "| | fault-free | faulty |" in table
    assert "Ratio faulty / fault-free" in table

    bench_faults.main(["--quick", "--jobs", "40", "--json"])
    scenario = json.loads(capsys.readouterr().out)
    assert scenario["config"]["jobs"] == 40
    assert {"fault_free", "faulty", "ratio"} <= set(scenario)
