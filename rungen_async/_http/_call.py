"""
One logical call's retry state: after each failed attempt, wait how long, or raise what.

GET, PUT and DELETE retry any transient failure; a POST only one that provably was not
carried out (`_retry`). A 429 is waited out for its full Retry-After, within the call's
budget for rate limits (`RetryPolicy.max_rate_limit_wait`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import httpx

from .._exceptions import (
    AmbiguousRequestError,
    RateLimitError,
    TLSVerificationError,
    error_from_response,
)
from ._errors import likely_cause, to_sdk_error
from ._pacing import RateLimits, RouteClass, route_class
from ._reply import error_response
from ._retry import is_retryable_exception, parse_retry_after, post_status_is_safe, was_not_sent
from ._shared import Reply

if TYPE_CHECKING:
    from .._clock import Clock
    from ._send import CallOptions

logger = logging.getLogger("rungen_async")

Listener = Callable[[float | None], None]


class Call:
    """The attempts of one call: counts, rate-limit waits, and the verdict on each failure."""

    __slots__ = (
        "attempt",
        "headers",
        "is_post",
        "key",
        "kind",
        "limits",
        "method",
        "options",
        "path",
        "url",
        "waited",
        "warned",
    )

    def __init__(
        self,
        options: CallOptions,
        limits: RateLimits,
        method: str,
        url: str,
        path: str,
        headers: Mapping[str, str],
        key: str | None,
    ) -> None:
        self.options = options
        self.limits = limits
        self.method = method
        self.url = url
        self.path = path
        self.headers = headers
        self.key = key  #: the POST's idempotency key
        self.is_post = method == "POST"
        self.kind: RouteClass | None = None
        self.attempt = 0
        self.waited = 0.0  # seconds spent waiting for rate limits
        self.warned = False

    def route(self) -> RouteClass:
        kind = self.kind
        if kind is None:
            kind = self.kind = route_class(self.options.team_id, self.method, self.path)
        return kind

    async def pace(self, clock: Clock) -> None:
        """Wait out a pause of this call's route class, within the call's budget."""
        budget = self.options.retry.max_rate_limit_wait - self.waited
        pause = min(self.limits.pause_left(self.route()), budget)
        if pause > 0:
            self.waited += pause
            await clock.sleep(pause)

    def answered(self) -> None:
        """Note an answer other than 429 for the rate-limit record."""
        if self.limits.active:
            self.limits.answered(self.route())

    def after_failure(self, exc: Exception) -> tuple[float | None, str]:
        """The delay before the next try after the engine failure *exc*, or raise."""
        policy = self.options.retry
        error = to_sdk_error(exc, method=self.method, url=self.url, path=self.path)
        ambiguous = self.is_post and not was_not_sent(exc)
        if (
            not is_retryable_exception(exc)
            or isinstance(error, TLSVerificationError)  # it cannot heal
            or self.attempt >= policy.max_attempts
            or (ambiguous and not policy.retry_ambiguous_posts)
        ):
            if ambiguous:
                raise self._ambiguous(str(error), None, None) from error
            raise error
        if not self.warned:  # once per call; every retry is logged at INFO as well
            self.warned = True
            logger.warning(
                "Cannot reach %s: %s (%s %s: %s); retrying",
                httpx.URL(self.url).host,
                likely_cause(exc),
                self.method,
                self.url,
                type(exc).__name__,
            )
        return None, type(exc).__name__

    def after_status(self, reply: Reply, listeners: list[Listener]) -> tuple[float, str]:
        """The delay before the next try after the error status *reply*, or raise."""
        policy = self.options.retry
        status = reply.status_code
        response = error_response(reply, self.method, self.url, self.headers)
        retry_after = None
        if status in (429, 503):
            retry_after = parse_retry_after(response.headers.get("retry-after"))
        give_up = ""
        if status == 429:
            self.limits.refused(self.route(), retry_after)
            for listener in listeners:
                listener(retry_after)
            # The request that was refused waits its Retry-After in full, never less.
            delay = policy.backoff(self.attempt) if retry_after is None else retry_after
            if retry_after is not None and retry_after > policy.max_retry_after:
                give_up = f"Retry-After {retry_after:g} s is over max_retry_after"
            elif self.waited + delay > policy.max_rate_limit_wait:
                give_up = (
                    f"waited {self.waited:g} s for rate limits; another {delay:g} s would pass "
                    f"max_rate_limit_wait={policy.max_rate_limit_wait:g} s"
                )
        else:
            self.answered()
            delay = policy.backoff(self.attempt, retry_after)
        ambiguous = self.is_post and status >= 500 and not post_status_is_safe(status, retry_after)
        if (
            not give_up
            and status in policy.retry_statuses
            and self.attempt < policy.max_attempts
            and not (ambiguous and not policy.retry_ambiguous_posts)
        ):
            if status == 429:
                self.waited += delay
            return delay, str(status)
        error = error_from_response(response, method=self.method, path=self.path, url=self.url)
        if give_up and isinstance(error, RateLimitError):
            error.args = (f"{error.args[0]} (gave up: {give_up})",)
        if ambiguous:
            raise self._ambiguous(str(error), status, error.request_id) from error
        raise error

    def _ambiguous(
        self, cause: str, status: int | None, request_id: str | None
    ) -> AmbiguousRequestError:
        return AmbiguousRequestError(
            f"{self.method} {self.url} may or may not have been carried out ({cause}); it was "
            f"not re-sent. Send it again with idempotency_key={self.key!r} to avoid a duplicate",
            method=self.method,
            path=self.path,
            url=self.url,
            idempotency_key=self.key or "",
            status_code=status,
            request_id=request_id,
        )
