"""Markdown tables and PNG plots of scenarios 2 (a full batch) and 3 (memory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.bench_batch import CLIENT_LABELS


def _machine_line(machine: dict[str, Any]) -> str:
    return (
        f"Machine: {machine['cpu_model']}, {machine['nproc']} CPUs (client pinned to CPU "
        f"{machine['client_cpu']}, server to CPU {machine['server_cpu']}), Python "
        f"{machine['python']}. Load average before/after: "
        f"{machine['loadavg_before'][0]:.2f} / {machine['loadavg_after'][0]:.2f}."
    )


def batch_markdown(scenario: dict[str, Any]) -> list[str]:
    """Scenario 2's table: one row per case and client."""
    lines = [
        "## Scenario 2: a full batch",
        "",
        f"Command: `{scenario['command']}`. " + _machine_line(scenario["machine"]),
        "",
        "Status requests are GET job + GET app, as the client counted them (the server's count "
        "agrees). Delay: the client's `time.monotonic()` when it learned a job's outcome minus "
        "the job's finish on the server (same clock), as a % of the job's run time (mean: mean "
        "delay over mean run time; p95: 95th percentile of delay / run time per job). Ideal: "
        "the last job's finish on the server, from the batch's start. Ratios are against the "
        "aiohttp loop (every job polled once a second) on the same case in the same run.",
        "",
        "| case | client | in flight / poll rate | status req/job | mean delay | p95 delay "
        "| wall / ideal | CPU ms/job | CPU vs baseline | load |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in scenario["runs"]:
        rate = f" / {row['poll_rate']:g}/s" if row["poll_rate"] else ""
        if row.get("max_poll_rate"):
            rate += f" (grew to {row['poll_rate_end']:g}/s)"
        lines.append(
            f"| {row['label']} | {CLIENT_LABELS[row['client']]} | {row['max_in_flight']:,}{rate}"
            f" | {row['status_requests_per_job']:.2f}"
            f" | {row['mean_delay_pct']:.1f} % ({row['mean_delay_s']:.2f} s)"
            f" | {row['p95_delay_pct']:.1f} %"
            f" | {row['wall_s']:.1f} s / {row['ideal_s']:.1f} s"
            f" | {row['cpu_ms_per_job']:.2f} | {row['cpu_vs_baseline']:.2f}x"
            f" | {row['loadavg']:.2f} |"
        )
    lines += ["", "![detection delay against submit time](batch_delay.png)", ""]
    return lines


def memory_markdown(scenario: dict[str, Any]) -> list[str]:
    """Scenario 3's table: peak RSS per case, and the 1,000,000-vs-10,000 ratio."""
    lines = [
        "## Scenario 3: memory",
        "",
        f"Command: `{scenario['command']}`. " + _machine_line(scenario["machine"]),
        "",
        "Peak RSS is `VmHWM` (/proc/self/status) of a fresh child process per case "
        "(interpreter and imports included; `import only` is that floor, without aiohttp). "
        "Inputs come from a generator and outcomes are not kept.",
        "",
        "| case | transport | jobs | max in flight | peak RSS | over import floor | wall | "
        "CPU µs/job | event-loop lag p99 / max | connections |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {row['label']} | {row['transport'] if row['jobs'] else '-'} | {row['jobs']:,} | "
        f"{row['max_in_flight']:,} | {row['maxrss_mb']:.1f} MB | "
        f"{row['maxrss_mb'] - scenario['floor_mb']:.1f} MB | {row['wall_s']:.1f} s | "
        + (f"{1e6 * row['cpu_s'] / row['jobs']:.0f} | " if row["jobs"] else "- | ")
        + (
            f"{row['loop_lag_p99_ms']:.1f} / {row['loop_lag_max_ms']:.1f} ms | "
            if row.get("loop_lag_max_ms") is not None
            else "- | "
        )
        + (f"{row['connections_max']} |" if row.get("connections_max") else "- |")
        for row in scenario["runs"]
    ]
    lines += [
        "",
        "Event-loop lag: how late a task sleeping 10 ms at a time woke up during the batch (a "
        "loop blocked by the client wakes it late). Connections: the most the client's pool "
        "held open at once (sampled every 10 ms).",
    ]
    ratio = scenario.get("large_vs_small")
    if ratio is not None:
        lines += [
            "",
            f"Peak RSS, {scenario['large']:,} lazy inputs vs {scenario['small']:,}: "
            f"**{ratio:.3f}x** (target: at most 1.10x).",
        ]
    lines.append("")
    return lines


def rate_limit_markdown(scenario: dict[str, Any]) -> list[str]:
    """Scenario 4's table: 5 % 429s on submits against the fault-free batch, per seed."""
    lines = [
        "## Scenario 4: 429s on submits",
        "",
        f"Command: `{scenario['command']}`. On the emulator's virtual clock: 200 jobs, 5 % of "
        "submits answered 429 (Retry-After 1 s), against the fault-free batch of the same seed.",
        "",
        "| seed | fault-free wall | with 429s | 429s | ratio |",
        "|---:|---:|---:|---:|---:|",
    ]
    lines.extend(
        f"| {run['seed']} | {run['fault_free']['wall']:.2f} s | {run['faulty']['wall']:.2f} s"
        f" | {run['faulty']['429s']:.0f} | {run['ratio']:.3f}x |"
        for run in scenario["runs"]
    )
    lines += [
        "",
        f"Median {scenario['median_ratio']:.3f}x, worst {scenario['worst_ratio']:.3f}x "
        f"(target at most {scenario['target_ratio']}x).",
        "",
    ]
    return lines


def faults_markdown(scenario: dict[str, Any]) -> list[str]:
    """Scenario 5: the full fault mix against the fault-free batch, nothing lost."""
    config, clean, faulty = scenario["config"], scenario["fault_free"], scenario["faulty"]
    lines = [
        "## Scenario 5: the full fault mix",
        "",
        f"Command: `{scenario['command']}`. On the emulator's virtual clock: "
        f"{config['jobs']:,} jobs of {config['low']:g}-{config['high']:g} s, "
        f"{config['workers']:,} workers, poll budget {config['poll_rate']:g}/s; faults: "
        f"{config['rate_503']:.0%} 503, {config['rate_429']:.0%} 429, "
        f"{config['rate_drop']:.0%} dropped before and {config['rate_drop_after']:.0%} after "
        "handling. Idempotency keys off (the API as documented).",
        "",
        "| run | wall | submits | status requests | outcomes | lost | submitted twice |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for name, run in (("fault-free", clean), ("with faults", faulty)):
        outcomes = ", ".join(f"{n:,} {kind}" for kind, n in sorted(run["outcomes"].items()))
        lines.append(
            f"| {name} | {run['wall_s']:.1f} s | {run['requests']['submit']:,} "
            f"| {run['status_requests']:,} | {outcomes} | {run['lost']} | {run['duplicates']} |"
        )
    lines += [
        "",
        f"Ratio {scenario['ratio']:.3f}x (target at most {scenario['target_ratio']}x). "
        f"{faulty['ambiguous']} AMBIGUOUS outcomes: a submit whose answer was lost; "
        f"{faulty['ambiguous_with_job']} of them did create a job (reported, never re-sent).",
        "",
    ]
    return lines


def batch_plot(scenario: dict[str, Any], out: Path) -> Path:
    """Detection delay against submit order for each run of the largest target case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = scenario.get("traces", {})
    fig, axes = plt.subplots(
        1, max(1, len(traces)), figsize=(12, 4.6), sharey=True, layout="constrained"
    )
    axes = axes if hasattr(axes, "__len__") else [axes]
    for ax, (name, trace) in zip(axes, traces.items(), strict=False):
        for client, points in trace.items():
            xs = [p[0] for p in points]
            ys = [p[1] for p in points]
            ax.scatter(xs, ys, s=2, alpha=0.4, label=CLIENT_LABELS[client])
        ax.set_title(name)
        ax.set_xlabel("job submitted at (s from the batch's start)")
        ax.grid(True, alpha=0.3)
        ax.legend(markerscale=5, fontsize=8)
    axes[0].set_ylabel("detection delay (s)")
    path = out / "batch_delay.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
