"""
No second bill: one writer per journal, and a crash mid-submit is AMBIGUOUS, not re-sent.

Against the API as documented: the emulator's idempotency keys are OFF, so every POST that
reaches it creates a job, key or not.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rungen_async import (
    JournalLockedError,
    OutcomeKind,
    RetryPolicy,
    journal_items,
    read_journal,
)
from rungen_async._batch._journal import Journal
from rungen_async.emulator import DEMO_API_KEY, Emulator, EmulatorRequest, EmulatorServer
from rungen_async.testing import FakeRunGen

FAST_RETRY = RetryPolicy(initial_delay=0, max_delay=0, max_retry_after=0)


async def test_second_run_on_a_journal_is_refused_before_sending(tmp_path: Path) -> None:
    """Two runs of a 200-item batch on one journal: the second is refused; 200 jobs in all."""
    fake = FakeRunGen(idempotency_keys=False)
    app_id = fake.create_app(active_workers=8)
    inputs = [{"prompt": f"p{n}", "_duration": 5} for n in range(200)]
    journal = str(tmp_path / "batch.journal")
    refused: list[JournalLockedError] = []
    async with (
        fake.client(retry=FAST_RETRY) as first,
        fake.client(retry=FAST_RETRY) as second,
        first.batch(app_id, inputs, journal=journal) as batch,
    ):
        async for _ in batch:
            if not refused:  # the first run is well under way: start a second one
                requests_before = len(fake.emulator.requests)
                with pytest.raises(JournalLockedError) as caught:
                    async with second.batch(app_id, inputs, journal=journal):
                        pass
                refused.append(caught.value)
                assert len(fake.emulator.requests) == requests_before  # nothing sent

    assert refused[0].pid == os.getpid()
    assert journal in str(refused[0])
    assert fake.jobs_created == 200
    assert read_journal(journal).counts == {"COMPLETED": 200}


# -- SIGKILL during submits: a real process against a uvicorn-served emulator -------------


def _create_app(emulator: Emulator) -> str:
    body = {
        "name": "crash",
        "configuration": {"gpu_tier": "STANDARD", "active_workers": 8},
        "workflow": {"model_url": "https://huggingface.co/black-forest-labs/FLUX.1-schnell"},
    }
    request = EmulatorRequest(
        method="POST",
        path="/app",
        headers={"x-api-key": DEMO_API_KEY},
        body=json.dumps(body).encode(),
    )
    response = emulator.handle(request, internal=True)
    assert response.status == 201
    created = response.json()
    return str(created.get("data", created)["id"])


@pytest.fixture
def served() -> Iterator[EmulatorServer]:
    """The emulator over TCP, keys not honoured (the API as documented)."""
    server = EmulatorServer(Emulator(idempotency_keys=False, job_duration=0.05)).start()
    try:
        yield server
    finally:
        server.stop()


def _rungen(server: EmulatorServer, *argv: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "RUNGEN_API_KEY": DEMO_API_KEY,
        "RUNGEN_BASE_URL": server.base_url,
    }
    code = "import sys; from rungen_async._cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv, "--no-progress"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Any, *, what: str, limit: float = 60.0) -> None:
    """Watch the emulator's state until *condition* holds (bounded)."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def _prompt_index(body: bytes) -> int:
    return int(json.loads(body)["input"]["prompt"].removeprefix("p"))


def _jobs_by_index(emulator: Emulator) -> Counter[int]:
    return Counter(int(job.input["prompt"].removeprefix("p")) for job in emulator.api.jobs.values())


def test_sigkill_mid_submit_then_resume_sends_nothing_twice(
    served: EmulatorServer, tmp_path: Path
) -> None:
    """
    SIGKILL with 4 submits in flight: every answered job is journaled; --resume reports
    the 4 AMBIGUOUS with their keys and sends nothing; --resend-unconfirmed sends those 4.
    """
    emulator = served.emulator
    app_id = _create_app(emulator)
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"prompt": f"p{n}"}) + "\n" for n in range(300)))
    output, journal = tmp_path / "out.jsonl", tmp_path / "out.jsonl.journal"
    argv = ("batch", app_id, str(inputs), "-o", str(output), "--concurrency", "4")

    child = _rungen(served, *argv)
    _wait_for(lambda: emulator.api.jobs_created >= 40, what="40 jobs")
    # The next 4 submits are carried out, but answered only after the process is dead.
    emulator.script_fault("slow", count=4, seconds=4.0, routes=["POST /app/*/run_async"])
    _wait_for(lambda: emulator.stats.faults.get("slow", 0) == 4, what="4 submits in flight")
    child.send_signal(signal.SIGKILL)
    child.communicate()

    in_flight = sorted(_prompt_index(r.body) for r in emulator.requests if r.fault == "slow")
    rows = {item.index: item for item in journal_items(journal, which="all")}
    answered = {
        int(job.input["prompt"].removeprefix("p")): job_id
        for job_id, job in emulator.api.jobs.items()
        if int(job.input["prompt"].removeprefix("p")) not in in_flight
    }
    assert len(in_flight) == 4
    assert {index: rows[index].job_id for index in answered} == answered  # none lost
    assert [rows[index].state for index in in_flight] == ["submitting"] * 4  # unconfirmed
    created_before = emulator.api.jobs_created

    resumed = _rungen(served, *argv, "--resume")
    _, resumed_err = resumed.communicate(timeout=120)
    records = {r["index"]: r for r in map(json.loads, output.read_text().splitlines())}
    batch_id = read_journal(journal).batch_id

    assert resumed.returncode == 1, resumed_err
    assert emulator.api.jobs_created == created_before + (300 - len(rows))
    assert max(_jobs_by_index(emulator).values()) == 1  # no input got two jobs
    assert sorted(i for i, r in records.items() if r["status"] == "AMBIGUOUS") == in_flight
    assert [records[i]["idempotency_key"] for i in in_flight] == [
        f"{batch_id}:{i}" for i in in_flight
    ]
    assert all(r["status"] == "COMPLETED" for i, r in records.items() if i not in in_flight)
    listed = [item.index for item in journal_items(journal)]
    assert listed == in_flight

    posts_before = len([r for r in emulator.requests if r.method == "POST"])
    resent = _rungen(served, *argv, "--resume", "--resend-unconfirmed")
    _, resent_err = resent.communicate(timeout=120)
    posts = [r for r in emulator.requests if r.method == "POST"][posts_before:]

    assert resent.returncode == 0, resent_err
    assert sorted(_prompt_index(r.body) for r in posts) == in_flight
    assert sorted(r.headers.get("idempotency-key", "") for r in posts) == sorted(
        f"{batch_id}:{i}" for i in in_flight
    )
    assert read_journal(journal).counts == {"COMPLETED": 300}


async def test_resume_without_resend_reports_unconfirmed_as_ambiguous(tmp_path: Path) -> None:
    """In Python too: an unconfirmed item is an AMBIGUOUS outcome with its key, not re-sent."""
    fake = FakeRunGen(idempotency_keys=False)
    app_id = fake.create_app(active_workers=4)
    journal = str(tmp_path / "batch.journal")
    seeded = Journal(journal, app_id=app_id, batch_id="b")
    seeded.record_submitting(0, {"prompt": "p0"})
    seeded.close()

    async with fake.client(retry=FAST_RETRY) as client:
        result = await client.run_batch(
            app_id, [{"prompt": "p0"}, {"prompt": "p1"}], journal=journal
        )

    assert [o.kind for o in result.outcomes] == [OutcomeKind.AMBIGUOUS, OutcomeKind.COMPLETED]
    assert result.outcomes[0].idempotency_key == "b:0"
    assert fake.jobs_created == 1
