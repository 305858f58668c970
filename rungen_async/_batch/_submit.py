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

from .._exceptions import (
    AmbiguousRequestError,
    APIConnectionError,
    APIStatusError,
    InvalidInputError,
    ResponseValidationError,
)
from .._models import Job
from ._outcomes import OutcomeKind

if TYPE_CHECKING:
    from .._client import AsyncRunGen

#: Seconds a submit already in flight when the batch stops may take to bring back its job
#: id (so the job is journaled and cancelled too); then it is given up on (AMBIGUOUS).
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
        Submit *value* under idempotency key *key*, once; *wait_turn* runs first.

        The client's own retries are the only ones: a 429 left after them is REJECTED (it
        was provably not carried out). A submit that may have created a job (no answer, or
        a 2xx answer that cannot be read) is AMBIGUOUS. The SDK's own validation refusing
        the input is REJECTED; any other exception (a bug) propagates.

        *before_send* runs right before the request goes out (the journal's "submitting"),
        so an item stopped before that point is never taken for one in flight. The request
        itself is shielded from cancellation; `stop()` gives the shields a deadline
        (`SUBMIT_GRACE` seconds), so a job the API created is known, journaled and cancelled
        rather than lost. Once stopped, nothing new is sent.
        """
        await wait_turn()
        limiter = self._limiter
        try:
            limiter.acquire_nowait()
        except anyio.WouldBlock:
            await limiter.acquire()
        try:
            await anyio.lowlevel.checkpoint_if_cancelled()  # stopped: send nothing new
            before_send()
            with anyio.CancelScope(shield=True) as scope:
                self._shields.add(scope)
                try:
                    job = await self._client.submit_job(self._app_id, value, idempotency_key=key)
                finally:
                    self._shields.discard(scope)
            if scope.cancelled_caught:
                return Refused(OutcomeKind.AMBIGUOUS, self._gave_up(key), stopped=True)
        except AmbiguousRequestError as exc:
            return Refused(OutcomeKind.AMBIGUOUS, exc)
        except ResponseValidationError as exc:
            # A 2xx the client could not read: the job may well exist.
            error = AmbiguousRequestError(
                f"the submit was answered but the answer could not be read ({exc}); "
                f"the job may exist: re-send with idempotency key {key!r} or look it up",
                method="POST",
                path=f"/app/{self._app_id}/job",
                idempotency_key=key,
                status_code=exc.status_code,
            )
            error.__cause__ = exc
            return Refused(OutcomeKind.AMBIGUOUS, error)
        except (InvalidInputError, APIStatusError, APIConnectionError) as exc:
            return Refused(OutcomeKind.REJECTED, exc)
        finally:
            limiter.release()
        self.on_success()
        return job

    def _gave_up(self, key: str) -> AmbiguousRequestError:
        return AmbiguousRequestError(
            f"the batch stopped and its submit got no answer within {SUBMIT_GRACE} s; the job "
            f"may exist: re-send with idempotency key {key!r} or look it up",
            method="POST",
            path=f"/app/{self._app_id}/job",
            idempotency_key=key,
        )

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
