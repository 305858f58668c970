"""
When a request is tried again, and after how long.

GET, PUT and DELETE are idempotent and retried on any transient failure. A POST creates
something billable, so it is retried only when the request provably was not carried out;
otherwise the caller gets `AmbiguousRequestError` with the request's idempotency key.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Final

import httpx
from attrs import field, frozen

from .._config import (
    DEFAULT_INITIAL_RETRY_DELAY,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_MAX_RATE_LIMIT_WAIT,
    DEFAULT_MAX_RETRY_AFTER,
    DEFAULT_MAX_RETRY_DELAY,
)
from ._limits import TooLarge

DEFAULT_RETRY_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

# Failures that happen before a byte of the request left: a POST may be re-sent after them.
# (A refused request, a bad scheme or a proxy that failed never reached the API either.)
_NOT_SENT: Final = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
)
# Failures that retrying cannot fix (a bad URL scheme, a malformed request, an answer over a
# cap). A certificate that fails verification is one too: `_errors.tls_failure` finds it.
_PERMANENT: Final = (
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,
    httpx.ProxyError,
    TooLarge,
)


def _check_non_negative(_: object, attribute: object, value: float) -> None:
    if value < 0:
        name = getattr(attribute, "name", "value")
        raise ValueError(f"RetryPolicy.{name} must be >= 0, got {value!r}")


def _check_attempts(_: object, __: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"RetryPolicy.max_attempts must be an integer >= 1, got {value!r}")


@frozen(kw_only=True)
class RetryPolicy:
    """
    How `AsyncRunGen` retries failed requests.

    Args:
        max_attempts: Tries in all, the first one included (1 turns retries off).
        initial_delay: Cap of the first back-off in seconds; each retry doubles it.
        max_delay: Cap of any back-off, in seconds.
        max_retry_after: Cap on a server's ``Retry-After``, in seconds. A 429 is always
            waited out in full, never less: one asking for more than this is raised at once.
        max_rate_limit_wait: Seconds one call may spend in all waiting for rate limits (its
            429s' ``Retry-After`` and pauses); past it the call raises `RateLimitError`, so
            a server that always answers 429 cannot hang a caller.
        retry_statuses: Statuses worth another try.
        retry_ambiguous_posts: Also re-send a POST whose outcome is unknown (a timeout after
            sending, a dropped connection, 500, 502, 504), under the same idempotency key.
            Safe only if the API honours ``Idempotency-Key``.
        jitter: Full jitter: each delay is drawn uniformly between 0 and its cap.
    """

    max_attempts: int = field(default=DEFAULT_MAX_ATTEMPTS, validator=_check_attempts)
    initial_delay: float = field(default=DEFAULT_INITIAL_RETRY_DELAY, validator=_check_non_negative)
    max_delay: float = field(default=DEFAULT_MAX_RETRY_DELAY, validator=_check_non_negative)
    max_retry_after: float = field(default=DEFAULT_MAX_RETRY_AFTER, validator=_check_non_negative)
    max_rate_limit_wait: float = field(
        default=DEFAULT_MAX_RATE_LIMIT_WAIT, validator=_check_non_negative
    )
    retry_statuses: frozenset[int] = field(default=DEFAULT_RETRY_STATUSES, converter=frozenset)
    retry_ambiguous_posts: bool = False
    jitter: bool = True

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that never retries."""
        return cls(max_attempts=1)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try *attempt* + 1, honouring a server's *retry_after*."""
        if retry_after is not None:
            return min(retry_after, self.max_retry_after)
        cap = min(self.max_delay, self.initial_delay * 2 ** (attempt - 1))
        return random.uniform(0, cap) if self.jitter else cap


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Read a ``Retry-After`` header, in seconds or as an HTTP-date; None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return max(0.0, seconds)


def is_retryable_exception(exc: BaseException) -> bool:
    """Whether another try could succeed after the transport failure *exc* (TLS aside)."""
    return not isinstance(exc, _PERMANENT)


def was_not_sent(exc: BaseException) -> bool:
    """Whether *exc* proves the request never reached the server."""
    return isinstance(exc, _NOT_SENT)


def post_status_is_safe(status: int, retry_after: float | None) -> bool:
    """Whether a POST answered *status* was provably not carried out (so may be re-sent)."""
    return status in (408, 429) or (status == 503 and retry_after is not None)
