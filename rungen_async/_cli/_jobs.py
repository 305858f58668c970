"""``rungen jobs ...``: submit one job, show it, wait for several, cancel one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from .._client import AsyncRunGen
from .._exceptions import JobFailedError, RunGenError
from .._models import Job
from ._output import dumps
from ._parser import EXIT_FAILED, EXIT_OK, UsageError
from ._runtime import Session

_HEADERS = ("JOB", "STATUS", "SECONDS", "RESULT")
_RESULT_WIDTH = 80


def result_summary(job: Job) -> str | None:
    """A one-line summary of a job's result or error, for tables."""
    if job.error:
        return job.error
    urls = job.image_urls
    if urls:
        return " ".join(urls)
    if job.result is None:
        return None
    text = dumps(job.result)
    return text if len(text) <= _RESULT_WIDTH else text[: _RESULT_WIDTH - 1] + "…"


def job_row(job: Job) -> tuple[object, ...]:
    """One table row for *job*."""
    return (job.id, job.status, job.execution_time, result_summary(job))


def read_input(session: Session, text: str) -> dict[str, Any]:
    """
    Decode ``--input``: a JSON object, ``@FILE`` holding one, or ``-`` for stdin.

    Raises:
        UsageError: It cannot be read, or is not a JSON object.
    """
    source = "--input"
    if text == "-":
        text, source = session.runtime.stdin.read(), "stdin"
    elif text.startswith("@"):
        source = text[1:]
        try:
            text = Path(source).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def show_jobs(session: Session, jobs: list[Job]) -> None:
    """Print jobs as a table, or as JSON (one object, or a list when several)."""
    console = session.console
    if console.json_mode:
        console.json(jobs[0] if len(jobs) == 1 else jobs)
    else:
        console.table(_HEADERS, [job_row(job) for job in jobs])


async def run_jobs(session: Session) -> int:
    """Run ``rungen jobs VERB``."""
    args = session.args
    if args.verb == "submit":
        job_input = read_input(session, args.input)
    if args.verb == "cancel" and (args.journal is None) == (args.job_id is None):
        raise UsageError("rungen jobs cancel takes APP JOB, or --journal JOURNAL (not both)")
    async with session.client() as rg:
        if args.verb == "cancel" and args.journal is not None:
            from ._journal import cancel_from_journal

            return await cancel_from_journal(session, rg)
        if args.verb == "wait":
            return await _wait(session, rg, args.app_id, args.job_ids)
        if args.verb == "submit":
            job = await rg.submit_job(args.app_id, job_input)
            if args.wait:
                session.console.err(f"submitted job {job.id}; waiting for it")
                return await _wait(session, rg, args.app_id, [job.id])
        elif args.verb == "cancel":
            job = await rg.cancel_job(args.app_id, args.job_id, user_id=args.user_id)
        else:  # "get"
            job = await rg.get_job(args.app_id, args.job_id)
    show_jobs(session, [job])
    return EXIT_OK


async def _wait(session: Session, rg: AsyncRunGen, app_id: str, job_ids: list[str]) -> int:
    """Wait for every job at once; exit 1 if any did not complete."""
    deadline: float | None = getattr(session.args, "deadline", None)
    finals: dict[str, Job] = {}
    errors: dict[str, str] = {}

    async def wait_one(job_id: str) -> None:
        try:
            finals[job_id] = await rg.wait_for_job(app_id, job_id, deadline=deadline)
        except JobFailedError as exc:
            finals[job_id] = exc.job
        except RunGenError as exc:  # JobTimeoutError says the job keeps running remotely
            errors[job_id] = str(exc)

    async with anyio.create_task_group() as tg:
        for job_id in dict.fromkeys(job_ids):
            tg.start_soon(wait_one, job_id)

    jobs = [finals[job_id] for job_id in dict.fromkeys(job_ids) if job_id in finals]
    console = session.console
    if console.json_mode:
        console.json(
            {
                "jobs": jobs,
                "errors": [{"id": job_id, "error": text} for job_id, text in errors.items()],
            }
        )
    else:
        if jobs:
            console.table(_HEADERS, [job_row(job) for job in jobs])
        for job_id, text in errors.items():
            console.error(f"job {job_id}: {text}")
    failed = errors or any(not job.status.is_success for job in jobs)
    return EXIT_FAILED if failed else EXIT_OK
