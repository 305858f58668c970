"""The batch progress bar (tqdm): it fits any terminal and counts what the API reports."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from attrs import frozen

from rungen_async import APIConnectionError
from rungen_async._cli import EXIT_OK, EXIT_USAGE
from rungen_async._cli._output import Console
from rungen_async._cli._progress import ProgressBar, Tally, require_tqdm, running_and_queued
from rungen_async._models import JobCounters
from rungen_async.progress import tqdm_progress
from rungen_async.testing import FakeClock, FakeRunGen

from .conftest import Cli
from .test_batch import prompts, write_inputs


@frozen
class Stats:
    """Stands in for the batch engine's BatchStats."""

    queued: int = 500
    running: int = 18
    in_flight: int = 200
    retries: int = 3
    poll_budget_bound_seconds: float = 0.0
    poll_rate: float = 100.0


def frames(stderr: str) -> list[str]:
    """Every line the bar drew: tqdm starts each redraw with \\r and ends with \\n."""
    return [frame for frame in re.split(r"[\r\n]", stderr) if frame]


def draw_a_batch(width: int, stats: Stats | None = None) -> list[str]:
    """Draw a 1,000-item batch at *width* columns: at the start, at 301 done, at the end."""
    stats = stats or Stats()
    err = io.StringIO()
    tally = Tally(1000)
    bar = ProgressBar(
        Console(io.StringIO(), err), tally, clock=FakeClock(), tty=True, width=lambda: width
    )
    bar.draw(stats)
    for _ in range(300):
        tally.add(True)
    tally.add(False)
    bar.app = JobCounters(in_progress=8, in_queue=120)
    bar.draw(stats)
    bar.finish(stats)
    assert err.getvalue().endswith("\n")
    return frames(err.getvalue())


@pytest.mark.parametrize("width", [60, 200])
def test_progress_bar_fits_the_terminal(width: int) -> None:
    """Every line fits *width* columns (no wrapping) and shows the counts a user watches."""
    lines = draw_a_batch(width)

    assert all(len(line) <= width for line in lines)
    last = lines[-1]
    for count in ("301/1000", "ok 300", "failed 1", "running 8", "queued 120", "30%"):
        assert count in last


def test_progress_bar_at_200_columns_has_the_bar_rate_eta_and_retries() -> None:
    """A wide terminal gets the bar itself and the rate, the ETA and the retries too."""
    last = draw_a_batch(200)[-1]

    assert re.search(r"30%\|#+", last)
    assert "items/s" in last
    assert "ETA " in last
    assert "retries 3" in last


@pytest.mark.parametrize("width", [60, 80, 200])
def test_progress_bar_says_when_the_poll_budget_holds_checks(width: int) -> None:
    """
    Once status checks have waited for the poll budget, the bar names it (from 80
    columns; at 60 the counts take the room), always within the width.
    """
    held = draw_a_batch(width, Stats(poll_budget_bound_seconds=2.5, poll_rate=100.0))
    free = draw_a_batch(width)

    assert all(len(line) <= width for line in held)
    assert "301/1000" in held[-1]
    assert ("polls held 100/s" in held[-1]) == (width >= 80)
    assert not any("polls held" in line for line in free)


def test_progress_bar_on_a_narrow_terminal_keeps_the_counts() -> None:
    """Even at 36 columns the counts show, in short form, within the width."""
    lines = draw_a_batch(36)

    assert all(len(line) <= 36 for line in lines)
    assert lines[-1] == "301/1000 ok 300 fail 1 run 8 q 120"


def test_running_is_the_apis_count_bounded_by_in_flight() -> None:
    """The app's counters win over the engine's last-seen statuses; neither exceeds in flight."""
    stats = Stats(running=18, queued=500, in_flight=12)

    assert running_and_queued(stats, JobCounters(in_progress=8, in_queue=120)) == (8, 4)
    assert running_and_queued(stats, None) == (12, 0)
    assert running_and_queued(None, None) == (0, 0)


async def test_progress_bar_prints_plain_lines_when_not_a_tty() -> None:
    """Off a terminal it prints a line per interval, read from the stats each time."""
    err = io.StringIO()
    clock = FakeClock()
    bar = ProgressBar(Console(io.StringIO(), err), Tally(3), clock=clock, tty=False)
    reads = 0

    def stats() -> Stats:
        nonlocal reads
        reads += 1
        if reads == 3:
            scope.cancel()
        return Stats(in_flight=3, running=2, queued=1)

    with anyio.CancelScope() as scope:
        await bar.run(stats)
    bar.finish(None)

    lines = err.getvalue().splitlines()
    assert len(lines) == 3
    assert all(line.startswith("progress:   0% | 0/3 | ok 0 failed 0") for line in lines)
    assert "\r" not in err.getvalue()
    assert clock.now() == 15.0


async def test_progress_bar_keeps_the_last_counts_when_a_read_fails() -> None:
    """A failed read of the app's counters leaves the previous counts shown."""
    clock = FakeClock()
    bar = ProgressBar(Console(io.StringIO(), io.StringIO()), Tally(3), clock=clock, tty=False)
    answers: list[JobCounters | Exception] = [
        JobCounters(in_progress=2, in_queue=1),
        APIConnectionError("connection refused", method="GET", path="/app/a"),
    ]

    async def counters() -> JobCounters | None:
        answer = answers.pop(0)
        if not answers:
            scope.cancel()
        if isinstance(answer, Exception):
            raise answer
        return answer

    with anyio.CancelScope() as scope:
        await bar.run(lambda: None, counters)

    assert bar.app == JobCounters(in_progress=2, in_queue=1)


async def test_batch_bar_never_shows_more_running_than_workers(
    cli: Cli, fake: FakeRunGen, tmp_path: Path
) -> None:
    """rungen batch at 60 columns: every frame fits, and "running" never exceeds 4 workers."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(40))

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"),
        tty=True,
        runtime_args={"progress_clock": fake.clock, "columns": 60},
    )  # fmt: skip

    drawn = frames(result.stderr)
    running = [int(match[1]) for line in drawn if (match := re.search(r"running (\d+)", line))]
    assert result.code == EXIT_OK
    assert len(drawn) > 5  # redrawn every (virtual) second of a 20-second batch
    assert all(len(line) <= 60 for line in drawn)
    assert max(running) == 4
    assert "40/40" in drawn[-1]
    assert fake.requests_to("GET", f"/app/{app_id}")  # the counts came from the API


async def test_batch_bar_width_follows_columns(
    cli: Cli, fake: FakeRunGen, env: dict[str, str], tmp_path: Path
) -> None:
    """$COLUMNS sets the width when the runtime does not."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(8))

    result = await cli(
        "batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"), tty=True,
        env_override=env | {"COLUMNS": "48"},
    )  # fmt: skip

    assert result.code == EXIT_OK
    assert all(len(line) <= 48 for line in frames(result.stderr))
    assert "8/8" in frames(result.stderr)[-1]


async def test_batch_without_tqdm_says_what_to_install(
    cli: Cli, fake: FakeRunGen, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without tqdm, rungen batch names the extra (or --no-progress) and sends nothing."""
    app_id = fake.create_app(active_workers=4)
    inputs = write_inputs(tmp_path / "in.jsonl", prompts(3))
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    require_tqdm.cache_clear()
    sent = len(fake.requests)

    try:
        result = await cli("batch", app_id, str(inputs), "-o", str(tmp_path / "o.jsonl"))
    finally:
        require_tqdm.cache_clear()

    assert result.code == EXIT_USAGE
    assert "pip install 'rungen-async[cli]', or pass --no-progress" in result.stderr
    assert fake.requests_to("POST", "*") == []
    assert len(fake.requests) == sent


# -- rungen_async.progress: the Python helper -------------------------------------------------


@pytest.mark.parametrize("width", [60, 200])
async def test_tqdm_progress_follows_a_batch(width: int) -> None:
    """As on_progress, the bar counts every outcome, fits its width, and closes at the end."""
    fake = FakeRunGen(job_duration=2.0)
    app_id = fake.create_app(active_workers=4)
    fake.fail_job(3)
    out = io.StringIO()
    inputs = [{"prompt": f"picture {n}"} for n in range(12)]

    async with fake.client() as rg:
        progress = tqdm_progress(total=len(inputs), file=out, ncols=width, desc="images")
        result = await rg.run_batch(app_id, inputs, on_progress=progress)

    drawn = frames(out.getvalue())
    assert len(result.outcomes) == 12
    assert all(len(line) <= width for line in drawn)
    assert drawn[-1].startswith("images: 100%|")
    assert "12/12" in drawn[-1]
    assert "ok 11, failed 1, in flight 0" in drawn[-1]
    assert out.getvalue().endswith("\n")  # closed by itself when the total was reached
    assert progress.stats == result.stats


async def test_tqdm_progress_as_a_context_manager_closes_a_stopped_batch() -> None:
    """Leaving the with block closes the bar even when the batch stopped early."""
    fake = FakeRunGen(job_duration=2.0)
    app_id = fake.create_app(active_workers=1)
    out = io.StringIO()

    async with fake.client() as rg:
        with tqdm_progress(total=5, file=out, ncols=80) as progress:
            async with rg.batch(app_id, [{"n": n} for n in range(5)], on_progress=progress) as b:
                async for _ in b:
                    break

    assert out.getvalue().endswith("\n")
    assert "1/5" in frames(out.getvalue())[-1]


def test_tqdm_progress_without_tqdm_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without tqdm the ImportError says which extra to install."""
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)

    with pytest.raises(ImportError, match=re.escape("pip install 'rungen-async[progress]'")):
        tqdm_progress(total=3)


def test_tqdm_progress_draws_with_the_class_tqdm_auto_picks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    In a Jupyter kernel `tqdm.auto.tqdm` is tqdm's widget class; tqdm_progress draws with
    whatever class that is (stood in for here: no kernel or ipywidgets in the tests).
    """
    import tqdm.auto
    from tqdm import tqdm as text_bar

    opened: list[dict[str, Any]] = []

    class Widget(text_bar):  # type: ignore[type-arg]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            opened.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(tqdm.auto, "tqdm", Widget)
    with tqdm_progress(total=3, file=io.StringIO(), desc="cells"):
        pass

    assert len(opened) == 1
    assert opened[0]["total"] == 3
    assert opened[0]["desc"] == "cells"
