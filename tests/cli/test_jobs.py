"""``rungen jobs ...`` against the in-process emulator."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from rungen_async._cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from rungen_async.testing import FakeRunGen

from .conftest import Cli


async def test_jobs_submit_prints_the_queued_job(cli: Cli, fake: FakeRunGen) -> None:
    """jobs submit queues one job with the given input."""
    app_id = fake.create_app()

    result = await cli("jobs", "submit", app_id, "--input", '{"prompt": "a fox"}', "--json")

    job = json.loads(result.stdout)
    assert result.code == EXIT_OK
    assert fake.job_input(job["id"]) == {"prompt": "a fox"}
    assert fake.jobs_created == 1


async def test_jobs_submit_reads_a_file_or_stdin(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """--input @FILE and --input - read the object from a file and from stdin."""
    app_id = fake.create_app()
    path = tmp_path / "input.json"
    path.write_text('{"prompt": "from a file"}')

    from_file = await cli("jobs", "submit", app_id, "--input", f"@{path}", "--json")
    from_stdin = await cli("jobs", "submit", app_id, "--input", "-", "--json",
                           stdin='{"prompt": "from stdin"}')  # fmt: skip

    assert fake.job_input(json.loads(from_file.stdout)["id"]) == {"prompt": "from a file"}
    assert fake.job_input(json.loads(from_stdin.stdout)["id"]) == {"prompt": "from stdin"}


async def test_jobs_submit_rejects_bad_input_before_sending(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Input that is not a JSON object, or a missing file, exits 2 and sends nothing."""
    app_id = fake.create_app()

    not_json = await cli("jobs", "submit", app_id, "--input", "{prompt")
    not_object = await cli("jobs", "submit", app_id, "--input", "[1, 2]")
    missing = await cli("jobs", "submit", app_id, "--input", f"@{tmp_path / 'nope.json'}")

    assert [not_json.code, not_object.code, missing.code] == [EXIT_USAGE] * 3
    assert "--input is not valid JSON" in not_json.stderr
    assert "must be a JSON object, got list" in not_object.stderr
    assert "cannot read" in missing.stderr
    assert fake.requests == []


async def test_jobs_submit_and_wait(cli: Cli, fake: FakeRunGen) -> None:
    """jobs submit --wait prints the finished job, with its image URL."""
    app_id = fake.create_app()

    result = await cli("jobs", "submit", app_id, "--input", '{"prompt": "a fox"}', "--wait")

    assert result.code == EXIT_OK
    assert "COMPLETED" in result.stdout
    assert "/_emulator/outputs/" in result.stdout


async def test_jobs_get_shows_a_table(cli: Cli, fake: FakeRunGen) -> None:
    """jobs get shows the job's current status."""
    app_id = fake.create_app()
    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a fox"})

    result = await cli("jobs", "get", app_id, job.id)

    header, row = result.stdout.splitlines()
    assert header.split() == ["JOB", "STATUS", "SECONDS", "RESULT"]
    assert row.split()[:2] == [job.id, "RUNNING"]


async def test_jobs_wait_several_exits_1_when_one_failed(cli: Cli, fake: FakeRunGen) -> None:
    """jobs wait on several jobs prints each and exits 1 if any failed."""
    app_id = fake.create_app(active_workers=2)
    async with fake.client() as rg:
        good = await rg.submit_job(app_id, {"prompt": "ok"})
        bad = await rg.submit_job(app_id, {"prompt": "no", "_fail": "out of memory"})

    result = await cli("jobs", "wait", app_id, good.id, bad.id, "--json")

    body = json.loads(result.stdout)
    assert result.code == EXIT_FAILED
    assert {job["id"]: job["status"] for job in body["jobs"]} == {
        good.id: "COMPLETED",
        bad.id: "FAILED",
    }
    assert body["errors"] == []


async def test_jobs_wait_all_completed_exits_0(cli: Cli, fake: FakeRunGen) -> None:
    """jobs wait exits 0 when every job completed."""
    app_id = fake.create_app(active_workers=2)
    async with fake.client() as rg:
        jobs = [await rg.submit_job(app_id, {"prompt": str(n)}) for n in range(2)]

    result = await cli("jobs", "wait", app_id, *(job.id for job in jobs))

    assert result.code == EXIT_OK
    assert result.stdout.count("COMPLETED") == 2


async def test_jobs_wait_unknown_job_is_reported(cli: Cli, fake: FakeRunGen) -> None:
    """A job that cannot be found is reported per job and fails the command."""
    app_id = fake.create_app()

    result = await cli("jobs", "wait", app_id, "no-such-job")

    assert result.code == EXIT_FAILED
    assert "job no-such-job: 404" in result.stderr


async def test_jobs_cancel(cli: Cli, fake: FakeRunGen) -> None:
    """jobs cancel cancels a queued job (the user id comes from $RUNGEN_USER_ID)."""
    app_id = fake.create_app(active_workers=0)
    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a fox"})

    result = await cli("jobs", "cancel", app_id, job.id)

    assert result.code == EXIT_OK
    assert "CANCELED" in result.stdout
    assert fake.job_status(job.id) == "CANCELED"


async def test_jobs_cancel_finished_job_exits_1(cli: Cli, fake: FakeRunGen) -> None:
    """Cancelling a finished job is the API's 409: exit 1."""
    app_id = fake.create_app()
    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a fox"})
    fake.finish_all_jobs()

    result = await cli("jobs", "cancel", app_id, job.id)

    assert result.code == EXIT_FAILED
    assert "409" in result.stderr


class _SignalAfterPolls(httpx.AsyncBaseTransport):
    """Passes requests on; on the *count*-th job status request, raises SIGINT for real."""

    def __init__(self, inner: httpx.AsyncBaseTransport, count: int) -> None:
        self.inner, self.count = inner, count

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and "/job/" in request.url.path:
            self.count -= 1
            if self.count == 0:
                signal.raise_signal(signal.SIGINT)
        return await self.inner.handle_async_request(request)


async def test_ctrl_c_exits_130(cli: Cli, fake: FakeRunGen) -> None:
    """A real SIGINT while waiting stops the command cleanly with exit status 130."""
    app_id = fake.create_app(active_workers=0)  # the job can never finish
    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a fox"})

    result = await cli(
        "jobs", "wait", app_id, job.id,
        runtime_args={"transport": _SignalAfterPolls(fake.transport, 3), "handle_signals": True},
    )  # fmt: skip

    assert result.code == EXIT_INTERRUPTED
    assert result.stderr.endswith("rungen: interrupted\n")
