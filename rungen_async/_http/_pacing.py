"""
429 pacing: which requests wait, and for how long, after the API refused some.

The request that got a 429 waits its own ``Retry-After`` (in `_send`). A pause for others
comes only from a pattern, the sign of an empty rate-limit bucket: the last `STREAK` answers
of one *route class* (team, method and route, e.g. submits of team T) were all 429, or more
than half of its last `WINDOW` were. The pause then holds back that class alone, never
status polls, `get_app` or another team's calls, and lasts no longer than the largest
``Retry-After`` among those recent answers. (AWS's "adaptive" retry mode is the anchor: pace
what is throttled, leave the rest alone.)
"""

from __future__ import annotations

import collections
from typing import Final

from .._clock import Clock

#: Answers remembered per route class.
WINDOW: Final = 10
#: 429s in a row that pause a route class.
STREAK: Final = 3

RouteClass = tuple[str | None, str, str]


def route_class(team_id: str | None, method: str, path: str) -> RouteClass:
    """The class of a request: its team, method and path with the ids left out."""
    parts = path.split("/")
    # "/app/a1/job/j1" -> ["", "app", "a1", "job", "j1"]: ids sit at the even places.
    route = "/".join("*" if index % 2 == 0 and index else part for index, part in enumerate(parts))
    return (team_id, method, route)


class _Recent:
    """The last answers of one route class, and its pause."""

    __slots__ = ("answers", "paused_until", "retry_afters")

    def __init__(self) -> None:
        self.answers: collections.deque[bool] = collections.deque(maxlen=WINDOW)  # True: 429
        self.retry_afters: collections.deque[float] = collections.deque(maxlen=WINDOW)
        self.paused_until = 0.0


class RateLimits:
    """What one client knows of the API's rate limits, per route class."""

    __slots__ = ("_clock", "_recent")

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        # Only classes with a recent 429 are tracked, so a client that was never refused
        # does no bookkeeping at all.
        self._recent: dict[RouteClass, _Recent] = {}

    @property
    def active(self) -> bool:
        """Whether any class had a 429 lately (else nothing is paused)."""
        return bool(self._recent)

    def pause_left(self, key: RouteClass) -> float:
        """Seconds a request of class *key* should wait before it is sent."""
        recent = self._recent.get(key)
        if recent is None:
            return 0.0
        return max(0.0, recent.paused_until - self._clock.now())

    def refused(self, key: RouteClass, retry_after: float | None) -> None:
        """Note a 429 for class *key*; pause the class if most of its answers were 429s."""
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = _Recent()
        answers = recent.answers
        answers.append(True)
        if retry_after is not None:
            recent.retry_afters.append(retry_after)
        streak = 0
        for refused in reversed(answers):
            if not refused:
                break
            streak += 1
        mostly = len(answers) == WINDOW and 2 * sum(answers) > WINDOW
        if (streak >= STREAK or mostly) and recent.retry_afters:
            until = self._clock.now() + max(recent.retry_afters)
            recent.paused_until = max(recent.paused_until, until)

    def answered(self, key: RouteClass) -> None:
        """Note an answer other than 429 for class *key*."""
        recent = self._recent.get(key)
        if recent is None:
            return
        recent.answers.append(False)
        if True not in recent.answers and recent.paused_until <= self._clock.now():
            del self._recent[key]  # clean again: stop tracking it
