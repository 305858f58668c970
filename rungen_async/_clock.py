"""
The clock every wait in rungen_async goes through.

Retries, job polling and the batch scheduler read time and sleep only through a `Clock`, so
tests (and `rungen_async.testing`) can swap in a clock that jumps instead of sleeping.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import anyio


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
