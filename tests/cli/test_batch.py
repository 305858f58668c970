"""``rungen batch``: inputs checked first, results streamed, downloads, resume."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import anyio
import httpx

from rungen_async._cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from rungen_async.emulator import read_png_header
from rungen_async.testing import FakeRunGen

from .conftest import Cli


def write_inputs(path: Path, inputs: list[dict[str, Any]]) -> Path:
    """Write *inputs* as JSONL."""
    path.write_text("".join(json.dumps(item) + "\n" for item in inputs))
    return path


def read_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def prompts(count: int) -> list[dict[str, Any]]:
    """*count* distinct inputs."""
    return [{"prompt": f"picture {n}"} for n in range(count)]


async def test_batch_writes_one_result_per_input(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Every input gets one results line with its index, status, job id and result."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(12))
    output = tmp_path / "out.jsonl"

    result = await cli("batch", app_id, str(inputs), "-o", str(output))

    records = read_lines(output)
    assert result.code == EXIT_OK
    assert sorted(record["index"] for record in records) == list(range(12))
    assert {record["status"] for record in records} == {"COMPLETED"}
    assert all("/_emulator/outputs/" in json.dumps(record["result"]) for record in records)
    assert fake.jobs_created == 12
    assert f"batch of 12 on app {app_id}: 12 completed, 0 failed" in result.stdout
    assert (tmp_path / "out.jsonl.journal").exists()


async def test_batch_with_failures_exits_1(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """Failed items are recorded with their error, and the exit status is 1."""
    app_id = fake.create_app(active_workers=2)
    items = [*prompts(3), {"prompt": "bad", "_fail": "out of memory"}]
    inputs = write_inputs(tmp_path / "in.jsonl", items)
    output = tmp_path / "out.jsonl"

    result = await cli("batch", app_id, str(inputs), "-o", str(output), "--json")

    summary = json.loads(result.stdout)
    failed = [record for record in read_lines(output) if record["status"] != "COMPLETED"]
    assert result.code == EXIT_FAILED
    assert (summary["completed"], summary["failed"], summary["ok"]) == (3, 1, False)
    assert [(r["index"], r["line"], r["status"]) for r in failed] == [(3, 4, "FAILED")]
    assert "out of memory" in failed[0]["error"]


async def test_batch_reports_malformed_lines_before_submitting(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Malformed lines are listed with their numbers; nothing is sent; exit 2."""
    app_id = fake.create_app()
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"prompt": "ok"}\n{"prompt": oops}\n\n[1]\n{"prompt": "ok"}\n')

    result = await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"))

    assert result.code == EXIT_USAGE
    assert f"{inputs}:2: not valid JSON" in result.stderr
    assert f"{inputs}:4: expected a JSON object, got list" in result.stderr
    assert "2 malformed lines; nothing was submitted" in result.stderr
    assert fake.requests == []
    assert not (tmp_path / "out.jsonl").exists()


async def test_batch_names_a_trailing_comma(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """A trailing comma, the commonest hand-edit slip, is called by its name and column."""
    app_id = fake.create_app()
    inputs = tmp_path / "in.jsonl"
    inputs.write_text('{"prompt": "ok"}\n{"prompt": "a fox", "steps": 4,}\n')

    result = await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"))

    assert result.code == EXIT_USAGE
    assert f"{inputs}:2: not valid JSON: trailing comma at column 31" in result.stderr
    assert fake.requests == []


async def test_batch_refuses_to_overwrite_an_earlier_run(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Existing results without --resume are a usage error, not silently replaced."""
    app_id = fake.create_app()
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(1))
    output = tmp_path / "out.jsonl"
    output.write_text("")

    result = await cli("batch", app_id, str(inputs), "-o", str(output))

    assert result.code == EXIT_USAGE
    assert "--resume" in result.stderr
    assert fake.requests == []


class _Recording(httpx.AsyncBaseTransport):
    """Passes requests on, keeping each one's headers."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.headers: list[httpx.Headers] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.headers.append(request.headers)
        return await self.inner.handle_async_request(request)


async def test_batch_downloads_images_without_the_api_key(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """--download saves each output image, fetched with no API key header."""
    app_id = fake.create_app(active_workers=3)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(11))
    images = tmp_path / "images"
    downloads = _Recording(fake.transport)

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"),
        "--download", str(images), runtime_args={"download_transport": downloads},
    )  # fmt: skip

    saved = sorted(images.iterdir())
    jobs = {r["index"]: r["job_id"] for r in read_lines(tmp_path / "out.jsonl")}
    assert result.code == EXIT_OK
    assert [path.name for path in saved] == [f"{n:02d}-{jobs[n]}.png" for n in range(11)]
    assert read_png_header(saved[0].read_bytes())[:2] == (128, 128)
    assert len(downloads.headers) == 11
    assert all("x-api-key" not in headers for headers in downloads.headers)
    assert "(11 saved this run)" in result.stdout
    records = read_lines(tmp_path / "out.jsonl")
    assert sorted(path for r in records for path in r["files"]) == [str(p) for p in saved]


async def test_batch_download_failure_exits_1(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """A file that cannot be downloaded is reported and fails the run."""
    app_id = fake.create_app()
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(1))

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404)

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "out.jsonl"),
        "--download", str(tmp_path / "images"),
        runtime_args={"download_transport": httpx.MockTransport(refuse)},
    )  # fmt: skip

    assert result.code == EXIT_FAILED
    assert "cannot download" in result.stderr
    assert "HTTP 404" in result.stderr
    (record,) = read_lines(tmp_path / "out.jsonl")
    assert record["status"] == "COMPLETED"
    assert "HTTP 404" in record["download_error"]


class _StopAfterSubmits(httpx.AsyncBaseTransport):
    """Passes requests on; after *count* job submissions, sets *stop* (a Ctrl-C)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, count: int, stop: anyio.Event) -> None:
        self.inner, self.count, self.stop = inner, count, stop

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/run_async"):
            self.count -= 1
            if self.count == 0:
                self.stop.set()
        return response


async def test_batch_resumes_after_interrupt_without_duplicates(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """Ctrl-C exits 130; --resume finishes the rest and no input is submitted twice."""
    app_id = fake.create_app(active_workers=2)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(30))
    output = tmp_path / "out.jsonl"
    images = tmp_path / "images"
    stop = anyio.Event()
    argv = ("batch", app_id, str(inputs), "-o", str(output), "--download", str(images))

    first = await cli(
        *argv, "--concurrency", "4", stop=stop,
        runtime_args={"transport": _StopAfterSubmits(fake.transport, 10, stop)},
    )  # fmt: skip
    done_before = len(read_lines(output))
    second = await cli(*argv, "--resume")

    records = read_lines(output)
    submitted = [
        record.json["input"]["prompt"]
        for record in fake.requests_to("POST", "/app/*/run_async")
        if record.status == 201
    ]
    assert first.code == EXIT_INTERRUPTED
    assert "--resume" in first.stderr
    assert done_before < 30
    assert second.code == EXIT_OK
    assert sorted(record["index"] for record in records) == list(range(30))
    assert fake.jobs_created == 30
    assert sorted(set(submitted)) == sorted(item["prompt"] for item in prompts(30))
    assert len(list(images.glob("*.png"))) == 30


async def test_batch_job_deadline_times_out(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """--job-deadline gives up on a job that runs too long: TIMED_OUT, exit 1."""
    app_id = fake.create_app()
    inputs = write_inputs(tmp_path / "in.jsonl", [{"prompt": "slow", "_duration": 600}])
    output = tmp_path / "out.jsonl"

    result = await cli("batch", app_id, str(inputs), "-o", str(output), "--job-deadline", "5")

    assert result.code == EXIT_FAILED
    assert [record["status"] for record in read_lines(output)] == ["TIMED_OUT"]


async def test_batch_summary_says_when_the_poll_budget_held_checks(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """
    200 jobs finishing together at --poll-rate 5: the summary says checks waited for the
    budget and what to change; with --max-poll-rate the budget grows (shown in --json).
    """
    fake.emulator.api.max_workers = 200
    app_id = fake.create_app(active_workers=200)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(200))

    held = await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "a.jsonl"),
                     "--poll-rate", "5", "--no-progress")  # fmt: skip
    grown = await cli("batch", "--json", app_id, str(inputs), "-o", str(tmp_path / "b.jsonl"),
                      "--poll-rate", "5", "--max-poll-rate", "500", "--no-progress")  # fmt: skip

    assert held.code == grown.code == EXIT_OK
    assert "poll budget: status checks waited" in held.stdout
    assert "raise --poll-rate or set --max-poll-rate" in held.stdout
    summary = json.loads(grown.stdout)
    assert summary["poll_rate"] > 5
    assert summary["poll_budget_bound_seconds"] > 0


async def test_batch_progress_on_a_tty(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """On a terminal the bar is drawn with \\r and ends with a newline."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(8))

    result = await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"), tty=True)

    assert result.code == EXIT_OK
    assert "\r  0%|" in result.stderr
    assert re.search(r"\r100%\|#+\| 8/8 \| ok 8 failed 0", result.stderr)
    assert result.stderr.endswith("\n")


async def test_batch_no_progress(cli: Cli, fake: FakeRunGen, tmp_path: Path) -> None:
    """--no-progress keeps stderr quiet."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(3))

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"), "--no-progress", tty=True
    )

    assert (result.code, result.stderr) == (EXIT_OK, "")
