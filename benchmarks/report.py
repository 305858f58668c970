"""Turn results.json into the markdown table and the PNG plots.

Re-render without re-measuring: ``python -m benchmarks.report benchmarks/results/results.json``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from benchmarks import report_batch
from benchmarks.bench_overhead import BASELINES, CLIENTS, OPERATIONS


def _rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = results["scenarios"]["overhead"]["summary"]
    return rows


def _grid(
    rows: Iterable[dict[str, Any]], operation: str
) -> tuple[list[str], list[int], dict[tuple[str, int], dict[str, Any]]]:
    cells = {(r["client"], r["concurrency"]): r for r in rows if r["operation"] == operation}
    clients = list(dict.fromkeys(name for name, _ in cells))
    concurrencies = sorted({c for _, c in cells})
    return clients, concurrencies, cells


def _range(row: dict[str, Any], key: str, fmt: str) -> str:
    if row["samples"] == 1:
        return format(row[key], fmt)
    low, high = format(row[f"{key}_min"], fmt), format(row[f"{key}_max"], fmt)
    return f"{format(row[key], fmt)} ({low}-{high})"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def markdown(results: dict[str, Any]) -> str:
    """The whole report: every scenario present in *results*."""
    scenarios = results["scenarios"]
    lines = ["# Benchmark results", ""]
    if "overhead" in scenarios:
        lines += _overhead_markdown(results)
    if "batch" in scenarios:
        lines += report_batch.batch_markdown(scenarios["batch"])
    if "memory" in scenarios:
        lines += report_batch.memory_markdown(scenarios["memory"])
    if "rate_limit" in scenarios:
        lines += report_batch.rate_limit_markdown(scenarios["rate_limit"])
    if "faults" in scenarios:
        lines += report_batch.faults_markdown(scenarios["faults"])
    return "\n".join(lines)


def _overhead_markdown(results: dict[str, Any]) -> list[str]:
    """Scenario 1: machine, command, and one set of tables per operation."""
    machine, config = results["machine"], results["config"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        "## Scenario 1: per-request overhead",
        "",
        f"Command: `{config['command'].strip()}` ({config['repeats']} repeat(s), "
        f"up to {config['requests_per_cell']} requests or {config['max_seconds_per_cell']} s "
        "per cell; figures are medians, ranges in brackets are min-max over repeats).",
        "",
        f"Machine: {machine['cpu_model']}, {machine['nproc']} CPUs (client pinned to CPU "
        f"{machine['client_cpu']}, server to CPU {machine['server_cpu']}), "
        f"Python {machine['python']}, {packages}. Load average before/after: "
        f"{machine['loadavg_before'][0]:.2f} / {machine['loadavg_after'][0]:.2f}.",
        "",
    ]
    rows = _rows(results)
    for operation in OPERATIONS:
        clients, concurrencies, cells = _grid(rows, operation)
        if not clients:
            continue
        header = "| client | " + " | ".join(f"c={c}" for c in concurrencies) + " |"
        rule = "|---|" + "---:|" * len(concurrencies)
        lines += [f"### `{operation}`: client CPU µs per request", "", header, rule]
        for name in clients:
            values = [
                _range(cells[(name, c)], "cpu_us", ".0f") if (name, c) in cells else "-"
                for c in concurrencies
            ]
            lines.append(f"| {CLIENTS[name].label} | " + " | ".join(values) + " |")
        lines += ["", f"### `{operation}`: requests/s", "", header, rule]
        for name in clients:
            values = [
                _range(cells[(name, c)], "per_s", ".0f") if (name, c) in cells else "-"
                for c in concurrencies
            ]
            lines.append(f"| {CLIENTS[name].label} | " + " | ".join(values) + " |")
        lines += [
            "",
            f"### `{operation}`: CPU per request relative to the baselines (lower is better)",
            "",
            "Each cell: vs httpx defaults / vs hand-written aiohttp"
            " / vs the raw httpx loop on the same transport (SDK rows only).",
            "",
            header,
            rule,
        ]
        for name in clients:
            values = []
            for c in concurrencies:
                row = cells.get((name, c))
                if row is None:
                    values.append("-")
                    continue
                parts = [_ratio(row[f"vs_{b}"]) for b in BASELINES]
                if row["vs_same_transport"] is not None:
                    parts.append(_ratio(row["vs_same_transport"]))
                values.append(" / ".join(parts))
            lines.append(f"| {CLIENTS[name].label} | " + " | ".join(values) + " |")
        lines.append("")
    lines += [
        "![client CPU per request](overhead_cpu.png)",
        "",
        "![requests per second](overhead_rps.png)",
        "",
    ]
    return lines


def plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Write the PNG plots of every scenario present in *results*."""
    written = _overhead_plots(results, out) if "overhead" in results["scenarios"] else []
    if "batch" in results["scenarios"]:
        written.append(report_batch.batch_plot(results["scenarios"]["batch"], out))
    return written


def _overhead_plots(results: dict[str, Any], out: Path) -> list[Path]:
    """Write CPU-per-request and requests/s against concurrency, one panel per operation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _rows(results)
    written = []
    for key, ylabel, filename, log in (
        ("cpu_us", "client CPU per request (µs, log scale)", "overhead_cpu.png", True),
        ("per_s", "requests per second", "overhead_rps.png", False),
    ):
        fig, axes = plt.subplots(
            1, len(OPERATIONS), figsize=(12, 5.4), sharey=True, layout="constrained"
        )
        for ax, operation in zip(axes, OPERATIONS, strict=True):
            clients, concurrencies, cells = _grid(rows, operation)
            for name in clients:
                xs = [c for c in concurrencies if (name, c) in cells]
                ys = [cells[(name, c)][key] for c in xs]
                lows = [cells[(name, c)][f"{key}_min"] for c in xs]
                highs = [cells[(name, c)][f"{key}_max"] for c in xs]
                (line,) = ax.plot(xs, ys, marker="o", label=CLIENTS[name].label)
                ax.fill_between(xs, lows, highs, color=line.get_color(), alpha=0.15)
            ax.set_xscale("log", base=2)
            ax.set_xticks(concurrencies, [str(c) for c in concurrencies])
            if log:
                ax.set_yscale("log")
            ax.set_title(operation)
            ax.set_xlabel("concurrency (requests in flight)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_ylabel(ylabel)
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=4, fontsize=8)
        machine = results["machine"]
        fig.suptitle(
            f"{machine['cpu_model']}, client on 1 CPU, Python {machine['python']}", fontsize=9
        )
        path = out / filename
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main() -> None:
    """Rewrite results.md and the plots next to the results.json given."""
    path = (
        Path(sys.argv[1])
        if len(sys.argv) > 1
        else Path(__file__).parent / "results" / "results.json"
    )
    results = json.loads(path.read_text())
    (path.parent / "results.md").write_text(markdown(results))
    print("wrote", path.parent / "results.md", *plots(results, path.parent))


if __name__ == "__main__":
    main()
