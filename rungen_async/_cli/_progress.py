"""
The batch progress bar: redrawn in place on a terminal, a plain line now and then otherwise.

It reads the batch engine's statistics about once a second, through the client's clock, so
it costs nothing when the clock is fake and never slows the batch down.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .._clock import Clock
from ._output import Console

TTY_INTERVAL = 1.0
PLAIN_INTERVAL = 5.0
_BAR_WIDTH = 24


class StatsView(Protocol):
    """The parts of the batch engine's ``BatchStats`` the bar shows."""

    @property
    def queued(self) -> int: ...
    @property
    def running(self) -> int: ...
    @property
    def retries(self) -> int: ...
    @property
    def rate(self) -> float: ...


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


def render(tally: Tally, stats: StatsView | None, *, bar: bool) -> str:
    """One progress line: counts, rate and ETA, with a bar in front when *bar*."""
    total, done = tally.total, tally.done
    share = done / total if total else 1.0
    parts = [f"{done}/{total} {share:4.0%}"]
    if bar:
        filled = round(_BAR_WIDTH * share)
        parts.insert(0, "[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]")
    parts.append(f"ok {tally.ok}  failed {tally.failed}")
    if stats is not None:
        parts.append(f"running {stats.running}  queued {stats.queued}")
        rate = stats.rate
        parts.append(f"{rate:.1f}/s")
        remaining = total - done
        if remaining and rate > 0:
            parts.append(f"ETA {format_duration(remaining / rate)}")
        if stats.retries:
            parts.append(f"retries {stats.retries}")
    return " | ".join(parts)


class ProgressBar:
    """
    Draws a batch's progress on stderr until cancelled.

    Args:
        tty: Redraw one line in place with ``\\r`` (a terminal), or print a plain line
            every *interval* seconds (a log file, CI).
        interval: Seconds between updates; defaults to 1 on a terminal, 5 otherwise.
    """

    def __init__(
        self,
        console: Console,
        tally: Tally,
        *,
        clock: Clock,
        tty: bool,
        interval: float | None = None,
    ) -> None:
        self.console = console
        self.tally = tally
        self.clock = clock
        self.tty = tty
        self.interval = interval or (TTY_INTERVAL if tty else PLAIN_INTERVAL)
        self._width = 0
        self.draws = 0

    def draw(self, stats: StatsView | None) -> None:
        """Show the current state once."""
        line = render(self.tally, stats, bar=self.tty)
        self.draws += 1
        if self.tty:
            padding = " " * max(0, self._width - len(line))
            self._width = len(line)
            self.console.raw_err(f"\r{line}{padding}")
        else:
            self.console.err(f"progress: {line}")

    def finish(self, stats: StatsView | None) -> None:
        """Draw the final state and end the line (on a terminal)."""
        if self.tty:
            self.draw(stats)
            self.console.raw_err("\n")

    async def run(self, stats: Callable[[], StatsView | None]) -> None:
        """Redraw every *interval* seconds, reading *stats* each time, until cancelled."""
        if self.tty:
            self.draw(stats())
        while True:
            await self.clock.sleep(self.interval)
            self.draw(stats())
