"""
The submit lane: how many submits run at once, and what a refused submit becomes.

`SubmitLane` sends each submit through an AIMD limiter: the client's rate-limit listener
halves the number of concurrent submits on a 429 (once per pause window) and a window of
successes adds one back, up to *max_concurrency*.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio

from .._exceptions import AmbiguousRequestError, RateLimitError, RunGenError
from .._models import Job
from ._outcomes import OutcomeKind

if TYPE_CHECKING:
    from .._client import AsyncRunGen

_SUBMIT_RATE_LIMIT_TRIES = 8


class Refused(NamedTuple):
    """A submit that created no job (or may have): the outcome kind and why."""

    kind: OutcomeKind
    error: BaseException


class SubmitLane:
    """Submits under an AIMD concurrency limit; see the module docstring."""

    def __init__(self, client: AsyncRunGen, app_id: str, *, max_concurrency: int) -> None:
        self._client = client
        self._clock = client.clock
        self._app_id = app_id
        self.max_concurrency = max_concurrency
        self._limiter = anyio.CapacityLimiter(max_concurrency)
        self._successes = 0
        self._last_halving = -math.inf

    @property
    def concurrency(self) -> int:
        """The AIMD limit of concurrent submits now."""
        return int(self._limiter.total_tokens)

    async def submit(
        self, value: Any, key: str, *, wait_turn: Callable[[], Awaitable[None]]
    ) -> Job | Refused:
        """Submit *value* under idempotency key *key*; *wait_turn* runs before each try."""
        for attempt in range(_SUBMIT_RATE_LIMIT_TRIES):
            await wait_turn()
            limiter = self._limiter
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
            try:
                job = await self._client.submit_job(self._app_id, value, idempotency_key=key)
            except RateLimitError as exc:
                limiter.release()
                if attempt + 1 < _SUBMIT_RATE_LIMIT_TRIES:
                    continue  # provably not processed: the client paused, so try again
                return Refused(OutcomeKind.REJECTED, exc)
            except AmbiguousRequestError as exc:
                limiter.release()
                return Refused(OutcomeKind.AMBIGUOUS, exc)
            except (RunGenError, TypeError, ValueError) as exc:
                limiter.release()
                return Refused(OutcomeKind.REJECTED, exc)
            except BaseException:
                limiter.release()
                raise
            limiter.release()
            self.on_success()
            return job
        raise AssertionError("unreachable")  # pragma: no cover

    # -- rate limits (AIMD) ------------------------------------------------------------------

    def on_rate_limit(self, retry_after: float | None) -> None:
        """The client saw a 429: halve the limit (once per pause window)."""
        now = self._clock.now()
        # One halving per pause window, not one per refused request of a burst.
        if now - self._last_halving >= max(retry_after or 0.0, 1.0):
            self._last_halving = now
            self._limiter.total_tokens = max(1, int(self._limiter.total_tokens) // 2)
            self._successes = 0

    def on_success(self) -> None:
        """A submit went through: one more window of these adds one to the limit."""
        limit = int(self._limiter.total_tokens)
        if limit >= self.max_concurrency:
            return
        self._successes += 1
        if self._successes >= limit:  # additive increase: +1 per window of successes
            self._successes = 0
            self._limiter.total_tokens = limit + 1
