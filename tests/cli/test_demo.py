"""``rungen demo`` end to end: a real uvicorn emulator on loopback, small sizes."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from rungen_async._cli import EXIT_OK, Runtime, run
from rungen_async.emulator import read_png_header

#: Small and quick: 24 prompts, jobs of 50 ms, 50 ms of warm-up.
SMALL = ("--count", "24", "--job-duration", "0.05", "--warmup", "0.05", "--workers", "8")


async def _demo(*argv: str) -> tuple[int, str, str]:
    stdout, stderr = io.StringIO(), io.StringIO()
    runtime = Runtime(stdout=stdout, stderr=stderr, env={}, handle_signals=False, tty=False)
    code = await run(["demo", *argv], runtime)
    return code, stdout.getvalue(), stderr.getvalue()


async def test_demo_runs_a_batch_and_downloads_the_images(tmp_path: Path) -> None:
    """The demo creates an app, runs the batch through faults, and saves every image."""
    output = tmp_path / "demo"

    code, stdout, stderr = await _demo(*SMALL, "--output", str(output))

    images = sorted((output / "images").glob("*.png"))
    results = (output / "results.jsonl").read_text().splitlines()
    assert code == EXIT_OK
    assert stdout.startswith("demo finished in ")
    assert "24 of 24 images generated, 0 failed" in stdout
    assert "24 jobs created for 24 prompts" in stdout
    assert f"journal: {output / 'results.jsonl.journal'}" in stdout
    assert f"images:  {output / 'images'}/ (24 PNG files)" in stdout
    assert "emulator serving http://127.0.0.1:" in stderr
    assert len(images) == len(results) == 24
    assert read_png_header(images[0].read_bytes())[:2] == (128, 128)
    assert (output / "prompts.jsonl").read_text().count("\n") == 24


async def test_demo_json_reports_the_emulators_counters(tmp_path: Path) -> None:
    """--json gives the batch summary plus the emulator's own records: no duplicates."""
    output = tmp_path / "demo"

    code, stdout, _ = await _demo(*SMALL, "--output", str(output), "--fault-rate", "0.2", "--json")

    summary = json.loads(stdout)
    assert code == EXIT_OK
    assert (summary["completed"], summary["failed"], summary["files"]) == (24, 0, 24)
    assert summary["emulator"]["jobs_created"] == 24
    assert sum(summary["emulator"]["faults"].values()) > 0


async def test_demo_twice_in_the_same_folder_starts_over(tmp_path: Path) -> None:
    """A second demo replaces the first one's files instead of resuming a dead emulator."""
    output = tmp_path / "demo"
    await _demo(*SMALL, "--output", str(output), "--no-progress")

    code, _, _ = await _demo(*SMALL, "--output", str(output), "--no-progress")

    assert code == EXIT_OK
    assert len(list((output / "images").glob("*.png"))) == 24
    assert len((output / "results.jsonl").read_text().splitlines()) == 24


def test_readme_demo_command_runs_the_console_script(tmp_path: Path) -> None:
    """The installed ``rungen demo`` script runs end to end and exits 0 (README, line 1)."""
    script = Path(sys.executable).with_name("rungen")

    done = subprocess.run(
        [str(script), "demo", *SMALL, "--output", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == EXIT_OK, done.stderr
    assert "24 of 24 images generated" in done.stdout
