"""
The poll budget: status checks per second for a whole batch, fixed or adaptive.

A token bucket (burst: a tenth of a second's worth). Adaptive (*max_rate* above *rate*),
it grows while it binds (due checks wait for it) and the API refuses none: doubling every
quarter second until the first 429 of a status check, then by a tenth of the starting rate
each second; each 429 halves it, at most once a second, since a burst of 429s is one
overload.
TCP's congestion control (slow start, then additive increase, multiplicative decrease)
and AWS's "adaptive" retry mode work the same way. The RunGen API documents no rate-limit
headers, so the 429s are the only signal.
"""

from __future__ import annotations

import math


class PollBudget:
    """
    At most *rate* status checks a second, growing up to *max_rate* when that is higher.

    Args:
        rate: The starting budget, checks per second (> 0).
        max_rate: The most it may grow to (None or <= *rate*: a fixed budget).
    """

    __slots__ = (
        "_changed",
        "_cut",
        "_growing_fast",
        "_refilled",
        "_tokens",
        "max_rate",
        "rate",
        "start_rate",
    )

    #: Seconds between two doublings, until the first 429 (a batch's checks pile up in a
    #: few seconds, so growth must be as quick).
    FAST_STEP = 0.25
    #: Seconds between two additive steps after a 429, and between two halvings.
    STEP = 1.0

    def __init__(self, rate: float, *, max_rate: float | None = None) -> None:
        self.start_rate = rate
        self.rate = rate
        self.max_rate = rate if max_rate is None else max(rate, max_rate)
        self._tokens = 1.0
        self._refilled = -math.inf  # set by the first refill
        self._changed = -math.inf  # when the rate last changed (or the budget last bound)
        self._cut = -math.inf  # when a 429 last halved it
        self._growing_fast = True  # no 429 yet: double, not add

    @property
    def adaptive(self) -> bool:
        """Whether the budget may grow (a *max_rate* above the starting rate)."""
        return self.max_rate > self.start_rate

    @property
    def burst(self) -> float:
        """Checks the bucket holds at most: a tenth of a second's worth (at least one)."""
        return max(1.0, self.rate / 10)

    def ready(self, now: float) -> bool:
        """Refill for the time since the last call; whether a check may go now."""
        if self._refilled == -math.inf:
            self._refilled = now
        self._tokens = min(self.burst, self._tokens + (now - self._refilled) * self.rate)
        self._refilled = now
        return self._tokens >= 1 - 1e-9

    def spend(self) -> None:
        """A check went (call after `ready` said yes)."""
        self._tokens -= 1

    def wait(self) -> float:
        """Seconds until the next check may go."""
        return max(0.0, 1 - self._tokens) / self.rate

    def bound(self, now: float) -> bool:
        """
        Due checks waited for the budget until *now*: grow it if adaptive and no change (nor
        429) came in the last step; returns whether it grew.
        """
        if not self.adaptive or self.rate >= self.max_rate:
            return False
        if self._changed == -math.inf:
            self._changed = now  # the first sign of binding: grow from the next step on
            return False
        if now - self._changed < (self.FAST_STEP if self._growing_fast else self.STEP):
            return False
        grown = self.rate * 2 if self._growing_fast else self.rate + 0.1 * self.start_rate
        self.rate = min(self.max_rate, grown)
        self._changed = now
        return True

    def throttled(self, now: float) -> bool:
        """A status check got a 429 at *now*: halve an adaptive budget; whether it did."""
        if not self.adaptive:
            return False
        self._growing_fast = False
        self._changed = now  # no growth for a step after a 429
        if now - self._cut < self.STEP:
            return False  # the same overload as the last cut
        self._cut = now
        self.rate = max(1.0, self.rate / 2) if self.rate > 1.0 else self.rate
        return True
