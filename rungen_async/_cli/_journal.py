"""``rungen batch status|export --journal J`` and ``rungen jobs cancel --journal J``."""

from __future__ import annotations

from pathlib import Path

import anyio

from .._batch._journal import JournalItem
from .._batch._status import export_results, journal_items, read_journal
from .._client import AsyncRunGen
from .._exceptions import ConflictError, RunGenError
from ._parser import EXIT_FAILED, EXIT_OK, UsageError
from ._runtime import Session

_LEFT_HEADERS = ("INDEX", "STATE", "JOB", "IDEMPOTENCY KEY")
_STATE_TEXT = {
    "submitted": "running",
    "submitting": "unconfirmed",
    "abandoned": "to redo",
}


def _journal(session: Session) -> Path:
    path = Path(session.args.journal)
    if not path.exists():
        raise UsageError(f"no journal at {path}")
    return path


async def run_batch_status(session: Session) -> int:
    """``rungen batch status --journal J``: counts, then every item not finished."""
    path = _journal(session)
    try:
        status = read_journal(path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    left = list(journal_items(path)) if not session.args.counts_only else []
    console = session.console
    if console.json_mode:
        console.json(
            {
                "journal": status.path,
                "app_id": status.app_id,
                "batch_id": status.batch_id,
                "counts": dict(status.counts),
                "journaled": status.journaled,
                "left": [
                    {
                        "index": i.index,
                        "state": _STATE_TEXT.get(i.state, i.state),
                        "job_id": i.job_id,
                        "key": i.key,
                    }
                    for i in left
                ],
            }
        )
        return EXIT_OK
    counts = ", ".join(f"{count} {name}" for name, count in sorted(status.counts.items()))
    console.out(f"journal {status.path}: batch {status.batch_id} on app {status.app_id}")
    console.out(f"  {status.journaled} items journaled: {counts or 'none'}")
    if left:
        console.table(
            _LEFT_HEADERS,
            [(i.index, _STATE_TEXT.get(i.state, i.state), i.job_id, i.key) for i in left],
        )
    if status.counts.get("unconfirmed"):
        console.out(
            "  unconfirmed: sent when the last run stopped, no job id came back; the API may "
            "have created them. --resume reports them AMBIGUOUS; --resume "
            "--resend-unconfirmed sends them again under their keys."
        )
    if status.counts.get("running"):
        console.out(
            "  running: jobs not finished when last seen; --resume waits for them, or cancel "
            f"them with: rungen jobs cancel --journal {status.path} --user-id USER_ID"
        )
    return EXIT_OK


def _left_json(item: JournalItem) -> dict[str, object]:
    state = _STATE_TEXT.get(item.state, item.state)
    return {"index": item.index, "state": state, "job_id": item.job_id, "key": item.key}


def _export_to(path: Path, out_path: str) -> int:
    with Path(out_path).open("w", encoding="utf-8") as out:
        return export_results(path, out)


async def run_batch_export(session: Session) -> int:
    """``rungen batch export --journal J [-o F]``: finished items as JSON lines."""
    path = _journal(session)
    out_path = session.args.output
    try:
        if out_path in (None, "-"):
            written = export_results(path, session.runtime.stdout)
        else:
            written = await anyio.to_thread.run_sync(_export_to, path, out_path)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if out_path not in (None, "-"):
        session.console.err(f"wrote {written} results to {out_path}")
    return EXIT_OK


async def cancel_from_journal(session: Session, rg: AsyncRunGen) -> int:
    """``rungen jobs cancel --journal J``: cancel each job the journal lists as running."""
    path = _journal(session)
    user_id = session.args.user_id or rg.user_id
    if not user_id:
        raise UsageError(
            "cancelling needs your user id (the API's X-Authenticated-User-Id): pass "
            "--user-id USER_ID or set RUNGEN_USER_ID"
        )
    try:
        app_id = read_journal(path).app_id
        running = [item for item in journal_items(path) if item.state == "submitted"]
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    results: dict[str, str] = {}
    limiter = anyio.CapacityLimiter(16)

    async def cancel(job_id: str) -> None:
        async with limiter:
            try:
                await rg.cancel_job(app_id, job_id, user_id=user_id)
            except ConflictError:
                results[job_id] = "already finished"
            except RunGenError as exc:
                results[job_id] = f"failed: {exc}"
            else:
                results[job_id] = "cancelled"

    async with anyio.create_task_group() as tg:
        for item in running:
            if item.job_id:
                tg.start_soon(cancel, item.job_id)
    rows = [(i.index, i.job_id, results.get(i.job_id or "", "no job id")) for i in running]
    console = session.console
    if console.json_mode:
        console.json([{"index": i, "job_id": j, "result": r} for i, j, r in rows])
    else:
        if rows:
            console.table(("INDEX", "JOB", "RESULT"), rows)
        console.err(f"{sum(r == 'cancelled' for _, _, r in rows)} of {len(rows)} jobs cancelled")
    failed = any(r.startswith("failed") for _, _, r in rows)
    return EXIT_FAILED if failed else EXIT_OK
