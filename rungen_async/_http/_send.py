"""
The one request path every endpoint goes through: headers, retries, decoding, errors.

`Core` is what a client and all its team views share: the connection pool, the settings,
the rate-limit pause and the counters a batch reads.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from .._clock import Clock
from .._config import USER_AGENT
from .._exceptions import (
    AmbiguousRequestError,
    APIConnectionError,
    APITimeoutError,
    ResponseValidationError,
    body_preview,
    error_from_response,
)
from ._aiohttp import AiohttpTransport, AutoTransport, httpx_is_patched
from ._pool import WireTransport
from ._retry import (
    RetryPolicy,
    is_retryable_exception,
    parse_retry_after,
    post_status_is_safe,
    was_not_sent,
)
from ._shared import Reply

logger = logging.getLogger("rungen_async")

_JSON_HEADERS = {"content-type": "application/json"}
_FAST = (WireTransport, AiohttpTransport)


class Core:
    """What every team view of one client shares: the connection pool and the settings."""

    __slots__ = (
        "api_key",
        "base_url",
        "clock",
        "direct",
        "extensions",
        "fast",
        "fast_ok",
        "http",
        "owns_http",
        "paused_until",
        "rate_limit_listeners",
        "retry",
        "retry_count",
        "user_id",
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        http: httpx.AsyncClient,
        owns_http: bool,
        retry: RetryPolicy,
        clock: Clock,
        user_id: str | None,
        direct: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
    ) -> None:
        self.api_key = api_key
        # With a pool of its own, the client hands requests straight to the transport:
        # httpx.AsyncClient's per-request machinery (merging, cookies, auth and redirect
        # loops, event hooks) costs more CPU than the rest of the SDK (benchmarks/README.md).
        self.direct = direct
        # With the SDK's own transport (or aiohttp) underneath, the client skips httpx's
        # Request and Response objects too: building them is over half the CPU of a poll
        # (benchmarks/README.md). Only for a base URL already in its percent-encoded form.
        self.fast_ok = _encoded(base_url)
        self.fast = direct if isinstance(direct, _FAST) and self.fast_ok else None
        self.extensions = {"timeout": (timeout or httpx.Timeout(None)).as_dict()}
        self.base_url = base_url
        self.http = http
        self.owns_http = owns_http
        self.retry = retry
        self.clock = clock
        self.user_id = user_id
        # A 429's Retry-After pauses every request of this client, not just the one that hit it.
        self.paused_until = 0.0
        # Told of every 429 (with its Retry-After): running batches shrink their concurrency.
        self.rate_limit_listeners: list[Callable[[float | None], None]] = []
        self.retry_count = 0

    def headers_for(self, team_id: str | None) -> dict[str, str]:
        headers = {
            "x-api-key": self.api_key,
            "user-agent": USER_AGENT,
            "accept": "application/json",
            "accept-encoding": "gzip, deflate",
        }
        if team_id is not None:
            headers["x-team-id"] = team_id
        return headers

    def __repr__(self) -> str:  # never shows the key
        return f"<Core base_url={self.base_url!r}>"

    async def request(
        self,
        headers: dict[str, str],
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        idempotency_key: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one logical call, retrying as the policy allows; return the unwrapped body."""
        core = self
        url = core.base_url + path
        is_post = method == "POST"
        if content is not None or is_post or extra_headers:
            headers = {**headers, **_JSON_HEADERS} if content is not None else dict(headers)
            if is_post:
                # One key per logical call, the same on every attempt.
                idempotency_key = idempotency_key or uuid.uuid4().hex
                headers["idempotency-key"] = idempotency_key
            if extra_headers:
                headers.update(extra_headers)
        policy = core.retry
        attempt = 0
        while True:
            attempt += 1
            if core.paused_until and core.clock.now() < core.paused_until:
                await core.clock.sleep(core.paused_until - core.clock.now())
            try:
                response = await core.send(method, url, content, headers)
            except httpx.TransportError as exc:
                retryable = is_retryable_exception(exc)
                ambiguous = is_post and not was_not_sent(exc)
                if (
                    not retryable
                    or attempt >= policy.max_attempts
                    or (ambiguous and not policy.retry_ambiguous_posts)
                ):
                    if ambiguous:
                        raise _ambiguous(method, path, idempotency_key, f"{exc!r}", None) from exc
                    if isinstance(exc, httpx.TimeoutException):
                        raise APITimeoutError(
                            f"{method} {path} timed out ({type(exc).__name__})",
                            method=method,
                            path=path,
                        ) from exc
                    raise APIConnectionError(
                        f"{method} {path} failed: {type(exc).__name__}: {exc}",
                        method=method,
                        path=path,
                    ) from exc
                await self.back_off(method, path, attempt, type(exc).__name__, None)
                continue

            status = response.status_code
            if status < 400:
                return _decode(response, method, path)
            assert isinstance(response, httpx.Response)  # a Reply is always a success
            retry_after = (
                parse_retry_after(response.headers.get("retry-after"))
                if status in (429, 503)
                else None
            )
            if status == 429:
                if retry_after:
                    core.paused_until = max(
                        core.paused_until,
                        core.clock.now() + min(retry_after, policy.max_retry_after),
                    )
                for listener in core.rate_limit_listeners:
                    listener(retry_after)
            ambiguous = is_post and status >= 500 and not post_status_is_safe(status, retry_after)
            if (
                status in policy.retry_statuses
                and attempt < policy.max_attempts
                and not (ambiguous and not policy.retry_ambiguous_posts)
            ):
                reason = f"{status} {response.reason_phrase}"
                await self.back_off(method, path, attempt, reason, retry_after)
                continue
            _scrub_key(response)
            error = error_from_response(response, method=method, path=path)
            if ambiguous:
                raise _ambiguous(method, path, idempotency_key, str(error), status) from error
            raise error

    async def send(
        self, method: str, url: str, content: bytes | None, headers: Mapping[str, str]
    ) -> httpx.Response | Reply:
        """
        Send one request and read its body: straight to the transport when it is ours.

        A success through the fast lane comes back as a `Reply`; anything else (an error
        status, an encoded body, another transport) as an `httpx.Response`.
        """
        fast = self.fast
        patched = httpx_is_patched()
        if fast is not None and not patched:
            reply = await fast.exchange(method, url, headers, content, self.extensions["timeout"])
            if reply.status_code < 400 and not reply.encoded:
                return reply
            request = httpx.Request(method, url, content=content, headers=headers)
            response = reply.to_httpx(request)
            await response.aread()  # decodes a Content-Encoding
            return response
        transport = self.direct
        if transport is None or patched:
            return await self.http.request(method, url, content=content, headers=headers)
        request = httpx.Request(
            method, url, content=content, headers=headers, extensions=self.extensions
        )
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        if fast is None and self.fast_ok and isinstance(transport, AutoTransport):
            chosen = transport.chosen
            if isinstance(chosen, _FAST):
                self.fast = chosen
        return response

    async def back_off(
        self, method: str, path: str, attempt: int, reason: str, retry_after: float | None
    ) -> None:
        """Log a retry and sleep its delay on the clock."""
        core = self
        delay = core.retry.backoff(attempt, retry_after)
        core.retry_count += 1
        logger.info(
            "Retrying %s %s in %.2f s after %s (attempt %d of %d)",
            method,
            path,
            delay,
            reason,
            attempt + 1,
            core.retry.max_attempts,
        )
        await core.clock.sleep(delay)


def _ambiguous(
    method: str, path: str, key: str | None, cause: str, status: int | None
) -> AmbiguousRequestError:
    return AmbiguousRequestError(
        f"{method} {path} may or may not have been carried out ({cause}); it was not re-sent. "
        f"Send it again with idempotency_key={key!r} to avoid a duplicate",
        method=method,
        path=path,
        idempotency_key=key or "",
        status_code=status,
    )


def _scrub_key(response: httpx.Response) -> None:
    """Mask the API key in the request an error keeps, so no exception carries the key."""
    sent = response.request
    headers = [
        (name, "***" if name.lower() == "x-api-key" else value)
        for name, value in sent.headers.multi_items()
    ]
    response.request = httpx.Request(sent.method, sent.url, headers=headers)


def _encoded(base_url: str) -> bool:
    """Whether *base_url* and paths under it need no percent-encoding or IDNA to be sent."""
    probe = base_url + "/app/x"
    return str(httpx.URL(probe)) == probe


def _decode(response: httpx.Response | Reply, method: str, path: str) -> Any:
    content = response.content
    if not content:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        raise ResponseValidationError(
            f"{response.status_code} on {method} {path} is not JSON: {body_preview(content)!r}",
            status_code=response.status_code,
        ) from None
    # Some endpoints wrap their payload in {"data": ...} and some don't.
    return body["data"] if type(body) is dict and "data" in body else body
