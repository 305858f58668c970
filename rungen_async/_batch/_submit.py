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
import anyio.lowlevel

from .._exceptions import AmbiguousRequestError, RateLimitError, RunGenError
from .._models import Job
from ._outcomes import OutcomeKind

if TYPE_CHECKING:
    from .._client import AsyncRunGen

_SUBMIT_RATE_LIMIT_TRIES = 8


#: How long submits already in flight may still take once the batch is stopped (Ctrl-C,
#: a cancel scope, an error): their job ids are journaled and cancelled or reported.
SUBMIT_GRACE = 10.0


class Refused(NamedTuple):
    """A submit that created no job (or may have): the outcome kind and why."""

    kind: OutcomeKind
    error: BaseException
    #: The batch was stopped and the answer did not come within `SUBMIT_GRACE`.
    stopped: bool = False


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
        # The shield of each submit in flight: a stop lets them finish, within SUBMIT_GRACE.
        self._shields: set[anyio.CancelScope] = set()

    @property
    def concurrency(self) -> int:
        """The AIMD limit of concurrent submits now."""
        return int(self._limiter.total_tokens)

    def stop(self) -> None:
        """The batch is stopping: submits in flight get `SUBMIT_GRACE` seconds to answer."""
        grace = anyio.current_time() + SUBMIT_GRACE
        for shield in self._shields:
            shield.deadline = min(shield.deadline, grace)

    async def submit(
        self,
        value: Any,
        key: str,
        *,
        wait_turn: Callable[[], Awaitable[None]],
        before_send: Callable[[], None],
    ) -> Job | Refused:
        """
        Submit *value* under idempotency key *key*; *wait_turn* runs before each try.

        *before_send* runs right before the request goes out (the journal's "submitting"),
        so an item stopped before that point is never taken for one in flight. Once sent,
        the answer is awaited even if the batch is stopped (shielded, `SUBMIT_GRACE`), so
        its job id is journaled and the job cancelled instead of left unrecorded.
        """
        for attempt in range(_SUBMIT_RATE_LIMIT_TRIES):
            await wait_turn()
            limiter = self._limiter
            try:
                limiter.acquire_nowait()
            except anyio.WouldBlock:
                await limiter.acquire()
            try:
                await anyio.lowlevel.checkpoint_if_cancelled()  # stopped: send nothing new
            except BaseException:
                limiter.release()
                raise
            before_send()
            shield = anyio.CancelScope(shield=True)
            self._shields.add(shield)
            try:
                with shield:
                    job = await self._client.submit_job(self._app_id, value, idempotency_key=key)
                if shield.cancelled_caught:
                    limiter.release()
                    return Refused(OutcomeKind.AMBIGUOUS, _stopped_error(key), stopped=True)
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
            finally:
                self._shields.discard(shield)
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


def _stopped_error(key: str) -> RunGenError:
    return RunGenError(
        f"the batch stopped while this submit was in flight and its answer did not come "
        f"within {SUBMIT_GRACE:g} s: the job may exist; idempotency key {key!r}"
    )
