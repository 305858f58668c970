"""``rungen batch status|export`` and ``rungen jobs cancel --journal``; one run per journal."""

from __future__ import annotations

import json
import os
from pathlib import Path

import anyio

from rungen_async._batch._journal import Journal
from rungen_async._cli import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from rungen_async.testing import FakeRunGen

from .conftest import Cli
from .test_batch import _StopAfterSubmits, prompts, write_inputs


async def _interrupted_batch(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> tuple[str, Path]:
    """A 12-item batch stopped (Ctrl-C) after 6 submits, its jobs left running."""
    app_id = fake.create_app(active_workers=2)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(12))
    stop = anyio.Event()
    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"), "--concurrency", "2",
        stop=stop, runtime_args={"transport": _StopAfterSubmits(fake.transport, 6, stop)},
    )  # fmt: skip
    assert result.code == EXIT_INTERRUPTED
    return app_id, tmp_path / "out.jsonl.journal"


async def test_status_lists_what_is_left_and_how_to_cancel_it(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """batch status counts the journal's items and lists the running jobs by id."""
    _, journal = await _interrupted_batch(cli, fake, tmp_path)

    shown = await cli("batch", "status", "--journal", str(journal))
    as_json = await cli("batch", "status", "--journal", str(journal), "--json")

    data = json.loads(as_json.stdout)
    running = [item for item in data["left"] if item["state"] == "running"]
    assert shown.code == as_json.code == EXIT_OK
    assert running
    assert data["counts"]["running"] == len(running)
    assert {job.id for job in fake.emulator.api.jobs.values()} >= {
        item["job_id"] for item in running
    }
    for item in running:
        assert item["job_id"] in shown.stdout
    assert f"rungen jobs cancel --journal {journal} --user-id USER_ID" in shown.stdout


async def test_jobs_cancel_from_a_journal_cancels_each_running_job(
    cli: Cli, fake: FakeRunGen, tmp_path: Path, env: dict[str, str]
) -> None:
    """jobs cancel --journal cancels every job left running; without a user id it says how."""
    _, journal = await _interrupted_batch(cli, fake, tmp_path)
    no_user = {name: value for name, value in env.items() if name != "RUNGEN_USER_ID"}

    refused = await cli("jobs", "cancel", "--journal", str(journal), env_override=no_user)
    cancelled = await cli("jobs", "cancel", "--journal", str(journal))

    assert refused.code == EXIT_USAGE
    assert "--user-id USER_ID or set RUNGEN_USER_ID" in refused.stderr
    assert cancelled.code == EXIT_OK
    states = {job.state for job in fake.emulator.api.jobs.values()}
    assert "RUNNING" not in states
    assert "QUEUED" not in states
    assert " cancelled" in cancelled.stderr


async def test_export_writes_the_finished_items(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """batch export writes one JSON line per finished item of the journal."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(5))
    await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"))
    exported = tmp_path / "export.jsonl"

    result = await cli(
        "batch", "export", "--journal", str(tmp_path / "out.jsonl.journal"), "-o", str(exported)
    )

    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert result.code == EXIT_OK
    assert [line["index"] for line in lines] == [0, 1, 2, 3, 4]
    assert {line["kind"] for line in lines} == {"COMPLETED"}
    assert "wrote 5 results" in result.stderr


async def test_a_second_run_on_a_running_journal_is_refused_without_suggesting_resume(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """While another run holds the journal, rungen batch names it and sends nothing."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(3))
    output = tmp_path / "out.jsonl"
    holder = Journal(tmp_path / "out.jsonl.journal", app_id=app_id, batch_id=None)
    try:
        plain = await cli("batch", app_id, str(inputs), "-o", str(output))
        resumed = await cli("batch", app_id, str(inputs), "-o", str(output), "--resume")
    finally:
        holder.close()

    for result in (plain, resumed):
        assert result.code == EXIT_USAGE
        assert f"process {os.getpid()}" in result.stderr
        assert "wait for that run to finish" in result.stderr
        assert "pass --resume" not in result.stderr
    assert fake.requests == []


async def test_resend_unconfirmed_needs_resume(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """--resend-unconfirmed alone is a usage error, before anything is sent."""
    app_id = fake.create_app()
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(1))

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"), "--resend-unconfirmed"
    )

    assert result.code == EXIT_USAGE
    assert "--resend-unconfirmed goes with --resume" in result.stderr


async def test_a_results_file_in_use_is_refused_before_it_is_touched(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Two runs started at once: the one that finds the results file locked changes nothing."""
    from rungen_async._batch._lock import JournalLock

    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(3))
    output = tmp_path / "out.jsonl"
    output.write_text('{"index": 0, "line": 1, "status": "COMPLETED", "job_id": "j0"}\n')
    held = JournalLock(output)
    try:
        result = await cli("batch", app_id, str(inputs), "-o", str(output), "--resume")
    finally:
        held.release()

    assert result.code == EXIT_USAGE
    assert f"results file {output} is in use by process {os.getpid()}" in result.stderr
    assert output.read_text().count("\n") == 1
    assert fake.requests == []
