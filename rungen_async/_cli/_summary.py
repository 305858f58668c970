"""The end-of-batch summary: a few lines for people, or one JSON object with ``--json``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._output import Console
from ._progress import format_duration

if TYPE_CHECKING:
    from ._batch import BatchPlan, BatchReport


def _stat(report: BatchReport, name: str) -> Any:
    return getattr(report.stats, name, None) if report.stats is not None else None


def summary_json(plan: BatchPlan, report: BatchReport) -> dict[str, Any]:
    """The summary as JSON for ``--json``."""
    return {
        "app_id": plan.app_id,
        "total": report.total,
        "completed": report.tally.ok,
        "failed": report.tally.failed,
        "unfinished": report.total - report.tally.done,
        "by_status": dict(sorted(report.kinds.items())),
        "resumed": report.resumed,
        "elapsed": round(report.elapsed, 3),
        "retries": _stat(report, "retries"),
        "status_requests": _stat(report, "status_requests"),
        "poll_rate": _stat(report, "poll_rate"),
        "poll_budget_bound_seconds": _stat(report, "poll_budget_bound_seconds"),
        "results": str(plan.output),
        "journal": str(plan.journal),
        "download_dir": None if plan.download is None else str(plan.download),
        "files": report.files,
        "download_errors": report.download_errors,
        "ok": report.all_ok,
    }


def summary_lines(plan: BatchPlan, report: BatchReport) -> list[str]:
    """The summary for people, one line per fact."""
    tally = report.tally
    failures = {kind: n for kind, n in sorted(report.kinds.items()) if kind != "COMPLETED"}
    failed = f"{tally.failed} failed"
    if failures:
        failed += " (" + ", ".join(f"{n} {kind}" for kind, n in failures.items()) + ")"
    elapsed = report.elapsed
    rate = f", {tally.done / elapsed:.1f} items/s" if elapsed > 0 and tally.done else ""
    lines = [
        f"batch of {report.total} on app {plan.app_id}: {tally.ok} completed, {failed} "
        f"in {format_duration(elapsed)}{rate}"
    ]
    if report.resumed:
        lines.append(f"  resumed: {report.resumed} items had results from an earlier run")
    retries, polls = _stat(report, "retries"), _stat(report, "status_requests")
    if retries is not None and polls is not None:
        per_job = f" ({polls / tally.done:.1f} per job)" if tally.done else ""
        lines.append(f"  retries absorbed: {retries}   status requests: {polls}{per_job}")
    bound, budget = _stat(report, "poll_budget_bound_seconds"), _stat(report, "poll_rate")
    if bound and budget:
        lines.append(
            f"  poll budget: status checks waited {bound:.1f} s for it ({budget:g}/s at the "
            "end), so completions were seen late; raise --poll-rate or set --max-poll-rate"
        )
    lines.append(f"  results: {plan.output}")
    lines.append(f"  journal: {plan.journal}")
    if plan.download is not None:
        lines.append(f"  files:   {plan.download} ({report.files} saved this run)")
    lines.extend(f"  download failed: {problem}" for problem in report.download_errors[:5])
    return lines


def print_summary(console: Console, plan: BatchPlan, report: BatchReport) -> None:
    """Print the summary on stdout."""
    if console.json_mode:
        console.json(summary_json(plan, report))
    else:
        for line in summary_lines(plan, report):
            console.out(line)


def print_interrupted(console: Console, plan: BatchPlan, report: BatchReport) -> None:
    """Say how far a stopped batch got, and how to go on, on stderr."""
    console.err(
        f"rungen: stopped with {report.tally.done} of {report.total} items in {plan.output}; "
        f"run the same command with --resume to continue (journal: {plan.journal})"
    )
