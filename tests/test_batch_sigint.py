"""Ctrl-C on a real `rungen batch` process while submits are in flight (API as documented)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rungen_async import journal_items
from rungen_async.emulator import Emulator, EmulatorServer
from rungen_async.emulator._http import EmulatorRequest

SUBMIT_SECONDS = 1.5  # every submit is answered this late, so several are always in flight


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll the emulator's state (not a fixed sleep) until *condition* holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)


def test_sigint_with_cancel_on_interrupt_cancels_every_created_job(tmp_path: Path) -> None:
    """
    Every job the emulator created, including those whose submit was still unanswered at
    the SIGINT, ends up in the journal and CANCELED: none is left running unrecorded.
    """
    emulator = Emulator(warmup=0, job_duration=1000, seed=5, idempotency_keys=False)
    demo = emulator.accounts.user_named("demo")
    key = demo.api_keys[0]
    body = {"name": "sigint", "configuration": {"gpu_tier": "STANDARD", "active_workers": 64}}
    body["workflow"] = {"model_url": "https://huggingface.co/black-forest-labs/FLUX.1-schnell"}
    created = emulator.handle(
        EmulatorRequest(
            method="POST", path="/app", headers={"x-api-key": key}, body=json.dumps(body).encode()
        ),
        internal=True,
    )
    answer = created.json()
    app_id = str(answer.get("data", answer)["id"])
    emulator.script_fault(
        "slow", count=1000, seconds=SUBMIT_SECONDS, routes=("POST /app/*/run_async",)
    )
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(200)))
    results, journal = tmp_path / "results.jsonl", tmp_path / "batch.journal"
    app = emulator.app(app_id)
    with EmulatorServer(emulator) as server:
        env = {
            **os.environ,
            "RUNGEN_API_KEY": key,
            "RUNGEN_BASE_URL": server.base_url,
            "RUNGEN_USER_ID": demo.id,
        }
        command = [
            sys.executable,
            "-c",
            "from rungen_async._cli import main; raise SystemExit(main())",
            "batch",
            app_id,
            str(inputs),
            "-o",
            str(results),
            "--journal",
            str(journal),
            "--concurrency",
            "4",
            "--cancel-on-interrupt",
            "--no-progress",
        ]
        process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            # Some submits answered, four more created but not yet answered.
            _wait_for(lambda: len(app.jobs) >= 10, "jobs to be created")
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        jobs = dict(app.jobs)

    assert process.returncode == 130, stderr.decode()
    journaled = {item.job_id for item in journal_items(journal, which="all")}
    assert jobs  # the batch did create jobs
    for job_id, job in jobs.items():
        assert job_id in journaled, f"job {job_id} was created but never journaled"
        assert job.state.value == "CANCELED", f"job {job_id} is {job.state.value}"
    assert key not in stderr.decode()
