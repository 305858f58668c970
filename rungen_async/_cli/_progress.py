"""
The batch progress bar, drawn by tqdm: redrawn in place on a terminal, a plain line now and
then otherwise.

It fits the terminal's width whatever it is: the counts always show, and the bar, the rate,
the ETA and the retries come and go with the room left. Its "running" and "queued" counts are
the API's own (the app's ``jobs`` counters, read every few seconds), never more than the
batch has in flight. It reads the batch engine's statistics about once a second, through the
progress clock, so it never slows the batch down.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio

from .._clock import Clock
from .._exceptions import RunGenError
from .._models import JobCounters
from ._output import Console
from ._parser import UsageError

if TYPE_CHECKING:
    from tqdm import tqdm

TTY_INTERVAL = 1.0
PLAIN_INTERVAL = 5.0
#: Seconds between reads of the app's job counters (one GET /app each).
APP_INTERVAL = 2.0
#: The bar is shown only when it can be at least this wide.
MIN_BAR = 10
_SEPARATOR = " | "
_UNIT = " items"

FetchCounters = Callable[[], Awaitable[JobCounters | None]]


class StatsView(Protocol):
    """The parts of the batch engine's ``BatchStats`` the bar shows."""

    @property
    def queued(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def in_flight(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def poll_budget_bound_seconds(self) -> float: ...
    @property
    def poll_rate(self) -> float: ...


class Tally:
    """Outcomes seen so far, counted by the CLI itself (earlier runs' included on resume)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.ok = 0
        self.failed = 0

    @property
    def done(self) -> int:
        """Items with a final outcome."""
        return self.ok + self.failed

    def add(self, ok: bool) -> None:
        """Count one outcome."""
        if ok:
            self.ok += 1
        else:
            self.failed += 1


def format_duration(seconds: float) -> str:
    """``1:05`` for 65 seconds, ``1:01:05`` past an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def running_and_queued(stats: StatsView | None, app: JobCounters | None) -> tuple[int, int]:
    """
    Jobs running and queued: the API's counts, bounded by what the batch has in flight.

    The app's counters are the API's word; before the first read, the engine's last-seen
    statuses stand in. Either way neither count exceeds the jobs in flight, since the API
    cannot run more of this batch's jobs than it has submitted and not seen finish.
    """
    if stats is None:
        return 0, 0
    in_flight = max(0, stats.in_flight)
    running, queued = (
        (stats.running, stats.queued) if app is None else (app.in_progress, app.in_queue)
    )
    running = min(max(0, running), in_flight)
    return running, min(max(0, queued), in_flight - running)


def bar_format(
    tally: Tally,
    stats: StatsView | None,
    app: JobCounters | None,
    *,
    width: int | None,
    measure: Callable[[str], int],
) -> str:
    """
    The tqdm ``bar_format`` that fits *width* columns (None: no limit, and no bar).

    The counts always show; a note that the poll budget delays status checks (when it
    has), the percentage, the bar, the ETA, the rate and the retries are added in that
    order while they fit. *measure* renders a format without its bar and returns the
    length.
    """
    running, queued = running_and_queued(stats, app)
    core = [
        "{n_fmt}/{total_fmt}",
        f"ok {tally.ok} failed {tally.failed}",
        f"running {running} queued {queued}",
    ]
    optional: dict[str, str] = {}
    if stats is not None and stats.poll_budget_bound_seconds > 0:
        # Completions are seen late: say so, with the budget that binds.
        optional["budget"] = f"polls held {stats.poll_rate:g}/s"
    optional |= {"percentage": "{percentage:3.0f}%", "bar": "|{bar}|", "eta": "ETA {remaining}",
                 "rate": "{rate_fmt}"}  # fmt: skip
    if stats is not None and stats.retries:
        optional["retries"] = f"retries {stats.retries}"
    if width is None:
        del optional["bar"]

    def layout(names: set[str]) -> str:
        tail = [optional[name] for name in ("budget", "rate", "eta", "retries") if name in names]
        text = _SEPARATOR.join([*core, *tail])
        if "bar" in names:
            return "{percentage:3.0f}%|{bar}| " + text
        return ("{percentage:3.0f}% | " if "percentage" in names else "") + text

    def fits(fmt: str, reserve: int = 0) -> bool:
        # What is left beside the text must hold the bar at MIN_BAR columns.
        return width is None or measure(fmt.replace("|{bar}|", "||")) + reserve <= width

    if not fits(layout(set())):  # a narrow terminal: the counts in as few columns as can be
        return f"{{n_fmt}}/{{total_fmt}} ok {tally.ok} fail {tally.failed} run {running} q {queued}"
    chosen: set[str] = set()
    for name in optional:
        trial = chosen | {name}
        if fits(layout(trial), MIN_BAR if name == "bar" else 0):
            chosen = trial
    return layout(chosen)


class _NullFile:
    """Where a bar that is never drawn writes (off a terminal, lines go out plainly)."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        """Nothing to flush."""


class _ConsoleFile:
    """A file for tqdm that writes through the console, so secrets stay masked."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.encoding = getattr(console.stderr, "encoding", None)

    def write(self, text: str) -> int:
        self.console.raw_err(text)
        return len(text)

    def flush(self) -> None:
        """Nothing to do: every write is flushed by the console."""


@functools.cache
def require_tqdm() -> type[tqdm[NoReturn]]:
    """
    The tqdm class the bar draws with.

    Raises:
        UsageError: tqdm is not installed (it comes with the ``cli`` extra).
    """
    try:
        from tqdm import tqdm
    except ImportError:
        raise UsageError(
            "the progress bar needs tqdm: pip install 'rungen-async[cli]', or pass --no-progress"
        ) from None

    base = tqdm[NoReturn] if TYPE_CHECKING else tqdm  # generic only in its type stubs

    class Bar(base):  # type: ignore[valid-type,misc]
        # No monitor thread: the bar is redrawn by the progress task, never from a thread.
        monitor_interval = 0

    return Bar


class ProgressBar:
    """
    Draws a batch's progress on stderr until cancelled.

    Args:
        tty: Redraw one line in place (a terminal), or print a plain line every
            *interval* seconds (a log file, CI).
        interval: Seconds between updates; defaults to 1 on a terminal, 5 otherwise.
        width: The terminal's width now (called before each draw, so resizing works).
    """

    def __init__(
        self,
        console: Console,
        tally: Tally,
        *,
        clock: Clock,
        tty: bool,
        interval: float | None = None,
        width: Callable[[], int] = lambda: 80,
    ) -> None:
        self.console = console
        self.tally = tally
        self.clock = clock
        self.tty = tty
        self.interval = interval or (TTY_INTERVAL if tty else PLAIN_INTERVAL)
        self.width = width
        #: The app's job counters as last read (None: not read yet, or not reported).
        self.app: JobCounters | None = None
        self.draws = 0
        self._bar: tqdm[NoReturn] | None = None

    def line(self, stats: StatsView | None) -> str:
        """Bring the bar up to date (drawing it on a terminal); return its line."""
        width = max(1, self.width()) if self.tty else None
        done = self.tally.done
        bar = self._bar
        base: dict[str, Any] = (
            {**bar.format_dict, "n": done}
            if bar is not None
            else {
                "n": done,
                "total": self.tally.total,
                "elapsed": 0,
                "initial": done,
                "unit": _UNIT,
            }
        )

        def measure(fmt: str) -> int:
            return len(require_tqdm().format_meter(**{**base, "bar_format": fmt, "ncols": None}))

        fmt = bar_format(self.tally, stats, self.app, width=width, measure=measure)
        if bar is None:
            self._bar = bar = require_tqdm()(
                total=self.tally.total,
                initial=done,
                file=_ConsoleFile(self.console) if self.tty else _NullFile(),
                ncols=width,
                bar_format=fmt,
                unit=_UNIT,
                position=0,  # one line, never tqdm's cursor moves for nested bars
                leave=True,
                smoothing=0,  # the average rate since the start, as the summary gives it
                mininterval=0,
                miniters=0,  # every update() redraws: this class decides when
            )
        else:
            bar.ncols = width
            bar.bar_format = fmt
            bar.update(done - bar.n)
        return str(bar)

    def draw(self, stats: StatsView | None) -> None:
        """Show the current state once."""
        self.draws += 1
        text = self.line(stats)
        if not self.tty:
            self.console.err(f"progress: {text}")

    def finish(self, stats: StatsView | None) -> None:
        """Draw the final state and end the line (on a terminal)."""
        if self.tty:
            self.draw(stats)
        if self._bar is not None:
            self._bar.close()

    async def run(
        self, stats: Callable[[], StatsView | None], counters: FetchCounters | None = None
    ) -> None:
        """
        Redraw every *interval* seconds, reading *stats* each time, until cancelled.

        Args:
            counters: Reads the app's job counters (every `APP_INTERVAL` seconds); a
                failed read keeps the last counts.
        """
        async with anyio.create_task_group() as tg:
            if counters is not None:
                tg.start_soon(self._watch, counters)
            if self.tty:
                self.draw(stats())
            while True:
                await self.clock.sleep(self.interval)
                self.draw(stats())

    async def _watch(self, counters: FetchCounters) -> None:
        while True:
            with contextlib.suppress(RunGenError):  # the API is busy or away: counts stand
                self.app = await counters()
            await self.clock.sleep(APP_INTERVAL)
