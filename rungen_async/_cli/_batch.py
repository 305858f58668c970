"""
``rungen batch APP INPUTS.jsonl -o RESULTS.jsonl``: the batch engine on a JSONL file.

Every input line is checked before anything is sent. Outcomes are appended to the results
file as they arrive, output files are downloaded alongside, and the journal next to the
results lets ``--resume`` continue after a crash or Ctrl-C without submitting anything twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from attrs import define, field

from .._batch._lock import JournalLock, JournalLockedError
from .._client import AsyncRunGen
from .._clock import SystemClock
from .._models import Job, JobCounters, JobStatus
from ._download import Downloader, DownloadError
from ._files import InputLine, ResultsWriter, parse_inputs, read_results
from ._parser import EXIT_FAILED, EXIT_OK, UsageError
from ._progress import ProgressBar, StatsView, Tally, require_tqdm
from ._runtime import Session
from ._summary import print_interrupted, print_summary

if TYPE_CHECKING:
    from .._batch._engine import Batch
    from .._batch._outcomes import BatchStats, Outcome


@define(kw_only=True)
class BatchPlan:
    """What to run and where its files go."""

    app_id: str
    inputs: list[InputLine]
    output: Path
    journal: Path
    download: Path | None = None
    resume: bool = False
    resend_unconfirmed: bool = False
    max_concurrency: int = 16
    max_in_flight: int = 1000
    poll_rate: float = 100.0
    max_poll_rate: float | None = None
    job_deadline: float | None = None
    cancel_on_exit: bool = False
    progress: bool = True


@define(kw_only=True)
class BatchReport:
    """What happened: counts by outcome, the engine's last statistics, the files written."""

    total: int
    tally: Tally
    kinds: Counter[str] = field(factory=Counter)
    resumed: int = 0
    stats: BatchStats | None = None
    elapsed: float = 0.0
    files: int = 0
    download_errors: list[str] = field(factory=list)

    @property
    def all_ok(self) -> bool:
        """Whether every item completed and every output file was saved."""
        return self.tally.ok == self.total and not self.download_errors


def outcome_record(outcome: Outcome, line: int) -> dict[str, Any]:
    """The results-file line for one batch outcome."""
    job: Job | None = outcome.job
    record: dict[str, Any] = {
        "index": outcome.index,
        "line": line,
        "status": outcome.kind.name,
        "job_id": None if job is None else job.id,
    }
    if outcome.ok:
        record["result"] = None if job is None else job.result
    elif outcome.error is not None:
        record["error"] = str(outcome.error)
    else:
        record["error"] = (job.error if job is not None else None) or outcome.kind.name
    if outcome.idempotency_key is not None:  # AMBIGUOUS: what to re-send it with
        record["idempotency_key"] = outcome.idempotency_key
    return record


def _missing_files(plan: BatchPlan, downloader: Downloader, record: dict[str, Any]) -> bool:
    if record.get("status") != "COMPLETED" or not isinstance(record.get("job_id"), str):
        return False
    stem = f"{record['index']:0{downloader.width}d}-{record['job_id']}"
    saved = [p for p in downloader.directory.glob(stem + "*") if p.suffix != ".part"]
    job = Job(id=record["job_id"], status=JobStatus.COMPLETED, result=record.get("result"))
    return len(saved) < len(job.image_urls)


def new_report(plan: BatchPlan) -> tuple[BatchReport, dict[int, dict[str, Any]]]:
    """An empty report, or on ``--resume`` one counting the results already written."""
    total = len(plan.inputs)
    previous = read_results(plan.output) if plan.resume else {}
    previous = {index: r for index, r in previous.items() if 0 <= index < total}
    if plan.resend_unconfirmed:  # those are sent again: their new outcome replaces the line
        previous = {i: r for i, r in previous.items() if r.get("status") != "AMBIGUOUS"}
    report = BatchReport(total=total, tally=Tally(total), resumed=len(previous))
    for record in previous.values():
        report.kinds[str(record.get("status"))] += 1
        report.tally.add(record.get("status") == "COMPLETED")
    return report, previous


async def execute(
    session: Session,
    rg: AsyncRunGen,
    plan: BatchPlan,
    report: BatchReport,
    previous: dict[int, dict[str, Any]],
) -> None:
    """Run *plan* on client *rg*, writing the results file as outcomes arrive."""
    console = session.console
    if plan.progress:
        require_tqdm()  # before anything is sent or written
    total = report.total
    writer = ResultsWriter(plan.output, previous)
    clock = rg.clock
    started = clock.now()
    downloader: Downloader | None = None
    holder: list[Batch] = []

    def current_stats() -> StatsView | None:
        return holder[0].stats if holder else None

    bar = ProgressBar(
        console, report.tally, clock=session.runtime.progress_clock or SystemClock(),
        tty=session.runtime.is_tty(), width=session.runtime.terminal_width,
    )  # fmt: skip

    async def app_counters() -> JobCounters | None:  # the API's running and queued counts
        return (await rg.get_app(plan.app_id)).jobs

    async def download(index: int, job: Job, record: dict[str, Any] | None = None) -> None:
        """Fetch a job's files; then write its results line (*record*) with their paths."""
        assert downloader is not None
        try:
            files = await downloader.fetch(index, job)
        except DownloadError as exc:
            report.download_errors.append(f"item {index}: {exc}")
            console.error(f"item {index}: {exc}")
            if record is not None:
                record["download_error"] = str(exc)
        else:
            if record is not None:
                record["files"] = files
        if record is not None:
            writer.append(record)

    try:
        async with session.download_client() as http, anyio.create_task_group() as outer:
            if plan.download is not None:
                downloader = Downloader(http, plan.download, clock=clock, width=len(str(total - 1)))
                downloader.prepare()
            if plan.progress:
                outer.start_soon(bar.run, current_stats, app_counters)
            async with anyio.create_task_group() as downloads:
                if downloader is not None:
                    for index, record in sorted(previous.items()):
                        if _missing_files(plan, downloader, record):
                            job = Job(id=record["job_id"], status=JobStatus.COMPLETED,
                                      result=record.get("result"))  # fmt: skip
                            downloads.start_soon(download, index, job)
                async with rg.batch(
                    plan.app_id,
                    [item.value for item in plan.inputs],
                    max_concurrency=plan.max_concurrency,
                    max_in_flight=plan.max_in_flight,
                    poll_rate=plan.poll_rate,
                    max_poll_rate=plan.max_poll_rate,
                    job_deadline=plan.job_deadline,
                    journal=str(plan.journal),
                    resend_unconfirmed=plan.resend_unconfirmed,
                    cancel_on_exit=plan.cancel_on_exit,
                ) as batch:
                    holder.append(batch)
                    async for outcome in batch:
                        record = outcome_record(outcome, plan.inputs[outcome.index].line)
                        if not writer.claim(outcome.index):
                            continue  # recorded by an earlier run
                        report.kinds[outcome.kind.name] += 1
                        report.tally.add(outcome.ok)
                        if downloader is not None and outcome.ok and outcome.job is not None:
                            # Its line is written once its files are saved, naming them; a
                            # crash before that leaves it to --resume (the journal has it).
                            downloads.start_soon(download, outcome.index, outcome.job, record)
                        else:
                            writer.append(record)
                    report.stats = batch.stats
            outer.cancel_scope.cancel()
    finally:
        writer.close()
        report.elapsed = clock.now() - started
        report.files = 0 if downloader is None else downloader.files
        if holder and report.stats is None:
            report.stats = holder[0].stats
        if plan.progress:
            bar.finish(current_stats())


def plan_from_args(session: Session) -> BatchPlan:
    """
    Check the command line and the input file; nothing is sent before this passes.

    Raises:
        UsageError: Bad inputs, or files of an earlier run without ``--resume``.
    """
    args = session.args
    inputs = parse_inputs(Path(args.inputs))
    for path in (Path(args.output).parent, Path(args.journal or args.output).parent):
        if not path.is_dir():
            raise UsageError(f"no such directory: {path}")
    output = Path(args.output)
    journal = Path(args.journal) if args.journal else output.with_name(output.name + ".journal")
    if args.download and Path(args.download).exists() and not Path(args.download).is_dir():
        raise UsageError(f"--download {args.download} is not a directory")
    _refuse_if_running(journal)
    if args.resend_unconfirmed and not args.resume:
        raise UsageError("--resend-unconfirmed goes with --resume")
    if not args.resume:
        for path in (journal, output):
            if path.exists():
                raise UsageError(
                    f"{path} exists from an earlier run: pass --resume to continue that "
                    "batch, or remove it (or choose another -o) to start over"
                )
    return BatchPlan(
        app_id=args.app_id,
        inputs=inputs,
        output=output,
        journal=journal,
        download=Path(args.download) if args.download else None,
        resume=args.resume,
        resend_unconfirmed=args.resend_unconfirmed,
        max_concurrency=args.concurrency,
        max_in_flight=args.max_in_flight,
        poll_rate=args.poll_rate,
        max_poll_rate=args.max_poll_rate,
        job_deadline=args.job_deadline,
        cancel_on_exit=args.cancel_on_interrupt,
        progress=not args.no_progress,
    )


def _refuse_if_running(journal: Path) -> None:
    """Another run holds *journal*: say so (and never suggest --resume to a second run)."""
    try:
        JournalLock(journal).release()
    except JournalLockedError as exc:
        raise UsageError(
            f"{exc}. Two runs on one batch would submit its items twice; "
            f"`rungen batch status --journal {journal}` shows its progress"
        ) from None


def _hold_results(output: Path) -> JournalLock:
    """Lock the results file for this run, before it is read or rewritten.

    The journal's own lock is taken only when the batch starts; without this, a second
    run started at the same moment could rewrite the first one's results file first.
    """
    try:
        return JournalLock(output)
    except JournalLockedError as exc:
        who = f"process {exc.pid}" if exc.pid else "another process"
        raise UsageError(
            f"results file {output} is in use by {who}: wait for that run to finish, or stop "
            "it, then run again"
        ) from None


async def run_batch(session: Session) -> int:
    """Run ``rungen batch``."""
    plan = plan_from_args(session)
    held = _hold_results(plan.output)
    try:
        report, previous = new_report(plan)
        async with session.client() as rg:
            finished = False
            try:
                await execute(session, rg, plan, report, previous)
                finished = True
            finally:
                if not finished:
                    print_interrupted(session.console, plan, report)
    finally:
        held.release()
    print_summary(session.console, plan, report)
    return EXIT_OK if report.all_ok else EXIT_FAILED
