"""
The clock every wait in rungen_async goes through.

Retries, job polling and the batch scheduler read time and sleep only through a `Clock`, so
tests (and `rungen_async.testing`) can swap in a clock that jumps instead of sleeping.
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import anyio
import anyio.lowlevel
import sniffio


@runtime_checkable
class Clock(Protocol):
    """Where rungen_async reads the time and sleeps; pass one as ``AsyncRunGen(clock=...)``."""

    def now(self) -> float:
        """Return monotonic seconds; only differences between two readings mean anything."""
        ...

    async def sleep(self, seconds: float, /) -> None:
        """Wait *seconds* (a value <= 0 still yields to the event loop once)."""
        ...


class SystemClock:
    """The event loop's own clock: `anyio.current_time()` and `anyio.sleep()`."""

    __slots__ = ()

    def now(self) -> float:
        """Return the event loop's monotonic time."""
        return anyio.current_time()

    async def sleep(self, seconds: float, /) -> None:
        """Sleep on the event loop; honours the caller's cancellation."""
        await anyio.sleep(seconds if seconds > 0 else 0)

    def __repr__(self) -> str:
        return "SystemClock()"


class VirtualClock:
    """
    A clock for tests: time stands still until every task waits, then jumps.

    ``sleep()`` never waits for real. The sleeper with the earliest wake-up time waits until
    no other task can run (on trio ``wait_all_tasks_blocked``; on asyncio, an empty ready
    queue), then moves the clock to its wake-up time. Polling, retry and batch code thus
    runs in milliseconds, in the order real time would give, on asyncio and trio. Tasks
    blocked on real sockets count as idle, so use it with in-process transports.
    """

    __slots__ = ("_changed", "_epoch", "_now", "_seq", "_sleepers")

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._seq = 0
        self._sleepers: list[tuple[float, int]] = []
        self._changed: anyio.Event | None = None
        self._epoch = 0  # bumped on every change a waiting driver must notice

    def now(self) -> float:
        """Return the virtual time."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward by *seconds*; sleepers due by then wake up."""
        if seconds < 0:
            raise ValueError(f"a clock cannot go back: advance({seconds!r})")
        self._now += seconds
        self._notify()

    def _unchanged(self, epoch: int) -> bool:
        return self._epoch == epoch

    def _notify(self) -> None:
        self._epoch += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def sleep(self, seconds: float, /) -> None:
        """Wait until the virtual time has moved *seconds* forward."""
        if seconds <= 0:
            await anyio.lowlevel.checkpoint()
            return
        wake = self._now + seconds
        self._seq += 1
        entry = (wake, self._seq)
        heapq.heappush(self._sleepers, entry)
        self._notify()  # the earliest sleeper may have changed
        try:
            while self._now < wake:
                if self._sleepers[0] == entry:
                    epoch = self._epoch
                    await _until_idle(functools.partial(self._unchanged, self._epoch))
                    # Idle, and nothing moved meanwhile (another sleeper may have jumped
                    # first, waking tasks that now have work): only then jump.
                    if self._unchanged(epoch) and self._sleepers[0] == entry and self._now < wake:
                        self._now = wake
                        self._notify()
                else:
                    if self._changed is None:
                        self._changed = anyio.Event()
                    await self._changed.wait()
        finally:
            self._sleepers.remove(entry)
            heapq.heapify(self._sleepers)
            self._notify()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(now={self._now:.3f})"


async def _until_idle(unchanged: Callable[[], bool]) -> None:
    """Return once no other task can run (best effort on asyncio), or *unchanged* fails."""
    if sniffio.current_async_library() == "trio":
        import trio.testing

        await trio.testing.wait_all_tasks_blocked()
        return
    import asyncio

    loop = asyncio.get_running_loop()
    ready = getattr(loop, "_ready", None)
    for _ in range(10_000):
        await anyio.lowlevel.checkpoint()
        if (ready is not None and not ready) or not unchanged():
            return
    # An event loop without a visible ready queue: many yields is the best we can do.
