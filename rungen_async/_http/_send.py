"""
The one request path every endpoint goes through: headers, retries, pacing, decoding, errors.

`Core` is what a client and all its views share: the connection pool, the rate-limit
knowledge and the counters a batch reads. `CallOptions` is what a view changes: headers
(its team), timeouts and retries. Every request goes out through `Core.send`, which returns
one type, `Reply`, whatever the engine; only an error status becomes an `httpx.Response`
(for `APIStatusError.response`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any, cast

import anyio.lowlevel
import attrs
import httpx

from .._clock import Clock
from .._config import USER_AGENT
from .._exceptions import (
    AmbiguousRequestError,
    RateLimitError,
    ResponseValidationError,
    TLSVerificationError,
    body_preview,
    error_from_response,
)
from ._aiohttp import AiohttpTransport
from ._errors import likely_cause, to_sdk_error
from ._limits import MAX_BODY_BYTES, TooLarge
from ._pacing import RateLimits, RouteClass, route_class
from ._retry import (
    RetryPolicy,
    is_retryable_exception,
    parse_retry_after,
    post_status_is_safe,
    was_not_sent,
)
from ._select import FAST_ENGINES, AutoTransport
from ._wire import Reply, WireTransport

logger = logging.getLogger("rungen_async")

_JSON_HEADERS = {"content-type": "application/json"}
_UNDONE = (b"content-encoding", b"content-length")  # no longer true of a decoded body
#: What an engine raises; anything else (a bug, a cancellation) passes through untouched.
_ENGINE_ERRORS = (httpx.TransportError, OSError)

Fast = WireTransport | AiohttpTransport  # the engines with an exchange()


@attrs.frozen(kw_only=True)
class CallOptions:
    """What a client or one of its views sends with every call: headers, timeout, retries."""

    headers: dict[str, str]
    team_id: str | None
    #: None: the user's own http_client's timeout applies.
    timeout: httpx.Timeout | None
    retry: RetryPolicy
    timeouts: dict[str, float | None] | None = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        timeouts = None if self.timeout is None else self.timeout.as_dict()
        object.__setattr__(self, "timeouts", timeouts)


class Core:
    """What every view of one client shares: the connection pool and what it learnt."""

    __slots__ = (
        "api_key",
        "base_url",
        "clock",
        "engine",
        "fast",
        "fast_ok",
        "http",
        "loop",
        "max_body_bytes",
        "owns_http",
        "picked",
        "rate_limit_listeners",
        "rate_limits",
        "retry_count",
        "transport",
        "user_id",
    )

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        http: httpx.AsyncClient,
        owns_http: bool,
        clock: Clock,
        user_id: str | None,
        transport: httpx.AsyncBaseTransport | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.http = http
        self.owns_http = owns_http
        self.clock = clock
        self.user_id = user_id
        # With a pool of its own, the client hands requests straight to the transport:
        # httpx.AsyncClient's per-request machinery (merging, cookies, auth and redirect
        # loops, event hooks) costs more CPU than the rest of the SDK (benchmarks/README.md).
        self.transport = transport
        # The SDK's own engines take URLs as sent, so only an already-encoded base URL
        # may skip httpx's Request (building it is over half the CPU of a poll).
        self.fast_ok = _encoded(base_url)
        self.fast: Fast | None = None
        self.engine: httpx.AsyncBaseTransport | None = None
        self.picked = False
        self.max_body_bytes = max_body_bytes
        self.loop: object = None
        self.rate_limits = RateLimits(clock)
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
        options: CallOptions,
        method: str,
        path: str,
        *,
        content: bytes | None = None,
        idempotency_key: str | None = None,
        extra_headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send one logical call, retrying as the policy allows; return the unwrapped body."""
        self.check_loop()
        url = self.base_url + path
        headers = options.headers
        is_post = method == "POST"
        if content is not None or is_post or extra_headers:
            headers = {**headers, **_JSON_HEADERS} if content is not None else dict(headers)
            if is_post:
                # One key per logical call, the same on every attempt.
                idempotency_key = idempotency_key or uuid.uuid4().hex
                headers["idempotency-key"] = idempotency_key
            if extra_headers:
                headers.update(extra_headers)
        policy = options.retry
        limits = self.rate_limits
        kind: RouteClass | None = None
        waited = 0.0  # seconds this call spent waiting for rate limits
        warned = False
        attempt = 0
        while True:
            attempt += 1
            if limits.active:
                kind = kind or route_class(options.team_id, method, path)
                pause = min(limits.pause_left(kind), policy.max_rate_limit_wait - waited)
                if pause > 0:
                    waited += pause
                    await self.clock.sleep(pause)
            try:
                reply = await self.send(method, url, content, headers, options.timeouts)
            except _ENGINE_ERRORS as exc:
                error = to_sdk_error(exc, method=method, url=url, path=path)
                ambiguous = is_post and not was_not_sent(exc)
                if (
                    isinstance(error, TLSVerificationError)
                    or not is_retryable_exception(exc)
                    or attempt >= policy.max_attempts
                    or (ambiguous and not policy.retry_ambiguous_posts)
                ):
                    if ambiguous:
                        raise _ambiguous(method, url, path, idempotency_key, str(error)) from error
                    raise error from exc
                if not warned:  # once per call; each retry is logged at INFO as well
                    warned = True
                    logger.warning(
                        "Cannot reach %s: %s (%s %s: %s); retrying",
                        httpx.URL(url).host,
                        likely_cause(exc),
                        method,
                        url,
                        type(exc).__name__,
                    )
                await self.back_off(method, path, attempt, policy, type(exc).__name__, None)
                continue

            status = reply.status_code
            if status < 400:
                if limits.active:
                    limits.answered(kind or route_class(options.team_id, method, path))
                return _json_body(reply, method, url)
            response = _error_response(reply, method, url, headers)
            retry_after = (
                parse_retry_after(response.headers.get("retry-after"))
                if status in (429, 503)
                else None
            )
            give_up = ""
            if status == 429:
                kind = kind or route_class(options.team_id, method, path)
                limits.refused(kind, retry_after)
                for listener in self.rate_limit_listeners:
                    listener(retry_after)
                # The request that was refused waits its Retry-After in full, never less.
                delay = policy.backoff(attempt) if retry_after is None else retry_after
                if retry_after is not None and retry_after > policy.max_retry_after:
                    give_up = f"Retry-After {retry_after:g} s is over max_retry_after"
                elif waited + delay > policy.max_rate_limit_wait:
                    give_up = (
                        f"waited {waited:g} s for rate limits; another {delay:g} s would pass "
                        f"max_rate_limit_wait={policy.max_rate_limit_wait:g} s"
                    )
            else:
                delay = policy.backoff(attempt, retry_after)
            ambiguous = is_post and status >= 500 and not post_status_is_safe(status, retry_after)
            if (
                not give_up
                and status in policy.retry_statuses
                and attempt < policy.max_attempts
                and not (ambiguous and not policy.retry_ambiguous_posts)
            ):
                if status == 429:
                    waited += delay
                await self.back_off(method, path, attempt, policy, str(status), delay)
                continue
            if status != 429 and limits.active:
                limits.answered(kind or route_class(options.team_id, method, path))
            status_error = error_from_response(response, method=method, path=path, url=url)
            if give_up and isinstance(status_error, RateLimitError):
                status_error.args = (f"{status_error.args[0]} (gave up: {give_up})",)
            if ambiguous:
                raise _ambiguous(
                    method,
                    url,
                    path,
                    idempotency_key,
                    str(status_error),
                    status,
                    status_error.request_id,
                ) from status_error
            raise status_error

    async def send(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str],
        timeouts: Mapping[str, float | None] | None,
    ) -> Reply:
        """
        Send one request and read its whole answer, through whichever engine runs.

        The one exit to the network (``rungen_async.testing``'s respx mocker patches it).
        Over the SDK's own engines no httpx object is built; any other transport, or the
        user's ``http_client``, gets an `httpx.Request` and its response is read into a
        `Reply`, at most *max_body_bytes* of body (`TooLarge` past it).
        """
        fast = self.fast
        if fast is None and not self.picked:
            self.pick()
            fast = self.fast
        if fast is not None:
            reply: Reply = await fast.exchange(method, url, headers, content, timeouts)
            if reply.encoded:
                stream = httpx.ByteStream(reply.content)
                raw = httpx.Response(reply.status_code, headers=reply.headers, stream=stream)
                return await _read(raw, self.max_body_bytes, reply.version, reply.reason)
            return reply
        engine = self.engine
        if engine is not None:
            extensions = {} if timeouts is None else {"timeout": timeouts}
            request = httpx.Request(
                method, url, content=content, headers=headers, extensions=extensions
            )
            response = await engine.handle_async_request(request)
        else:  # the user's own httpx.AsyncClient, with its defaults
            timeout = httpx.USE_CLIENT_DEFAULT if timeouts is None else httpx.Timeout(**timeouts)
            request = self.http.build_request(
                method, url, content=content, headers=headers, timeout=timeout
            )
            response = await self.http.send(request, stream=True)
        return await read_reply(response, self.max_body_bytes)

    def pick(self) -> None:
        """Choose, on first use, how requests leave: an engine's exchange() or httpx."""
        self.picked = True
        transport = self.transport
        if isinstance(transport, AutoTransport):
            transport = transport.select(httpx.URL(self.base_url))
        if isinstance(transport, FAST_ENGINES) and self.fast_ok:
            self.fast = transport
        else:
            self.engine = transport  # None: the user's http_client

    def check_loop(self) -> None:
        """Refuse a call from an event loop other than the one the client first ran in."""
        try:
            loop: object = asyncio.get_running_loop()
        except RuntimeError:  # trio: a new token object each time, equal within one run
            loop = anyio.lowlevel.current_token()
        if loop is self.loop or loop == self.loop:
            return
        if self.loop is None:
            self.loop = loop
            return
        raise RuntimeError(
            "this AsyncRunGen was first used in another event loop: an AsyncRunGen and its "
            "connections belong to one event loop. Create the client inside the loop that "
            "uses it (in a notebook, in the cell that uses it, or use top-level await in "
            "every cell instead of asyncio.run() or anyio.run() per cell)"
        )

    async def back_off(
        self,
        method: str,
        path: str,
        attempt: int,
        policy: RetryPolicy,
        reason: str,
        delay: float | None,
    ) -> None:
        """Log a retry and sleep its delay on the clock."""
        if delay is None:
            delay = policy.backoff(attempt)
        self.retry_count += 1
        logger.info(
            "Retrying %s %s in %.2f s after %s (attempt %d of %d)",
            method,
            path,
            delay,
            reason,
            attempt + 1,
            policy.max_attempts,
        )
        await self.clock.sleep(delay)


async def read_reply(response: httpx.Response, limit: int) -> Reply:
    """Read an httpx *response* into a `Reply` (body decoded, at most *limit* bytes)."""
    info = response.extensions
    return await _read(
        response, limit, info.get("http_version", b"HTTP/1.1"), info.get("reason_phrase", b"")
    )


async def _read(response: httpx.Response, limit: int, version: bytes, reason: bytes) -> Reply:
    """Read *response*'s body (decoded, at most *limit* bytes) into a `Reply`, and close it."""
    chunks: list[bytes] = []
    size = 0
    try:
        # An AsyncGenerator, closed at once even when the cap stops the loop (trio insists).
        body = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
        async with contextlib.aclosing(body):
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"the response body is larger than {limit:,} bytes (the client's "
                        "max_body_bytes); raise it with AsyncRunGen(max_body_bytes=...)",
                        limit=limit,
                    )
                chunks.append(chunk)
    except httpx.DecodingError as exc:  # a bad gzip stream: the server broke the protocol
        raise httpx.RemoteProtocolError(f"the body could not be decoded: {exc}") from exc
    finally:
        await response.aclose()
    content = b"".join(chunks)
    status = response.status_code
    if status < 400:
        return Reply(status, content)
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _UNDONE]
    return Reply(status, content, headers, version=version, reason=reason)


def _error_response(
    reply: Reply, method: str, url: str, headers: Mapping[str, str]
) -> httpx.Response:
    """The `httpx.Response` an `APIStatusError` carries; its request has the key masked."""
    sent = [
        (name, "***" if name.lower() == "x-api-key" else value) for name, value in headers.items()
    ]
    extensions: dict[str, Any] = {"http_version": reply.version}
    if reply.reason:
        extensions["reason_phrase"] = reply.reason
    headers_out = [(k, v) for k, v in reply.headers if k.lower() not in _UNDONE]
    return httpx.Response(
        reply.status_code,
        headers=headers_out,
        content=reply.content,
        request=httpx.Request(method, url, headers=sent),
        extensions=extensions,
    )


def _ambiguous(
    method: str,
    url: str,
    path: str,
    key: str | None,
    cause: str,
    status: int | None = None,
    request_id: str | None = None,
) -> AmbiguousRequestError:
    return AmbiguousRequestError(
        f"{method} {url} may or may not have been carried out ({cause}); it was not re-sent. "
        f"Send it again with idempotency_key={key!r} to avoid a duplicate",
        method=method,
        path=path,
        url=url,
        idempotency_key=key or "",
        status_code=status,
        request_id=request_id,
    )


def _encoded(base_url: str) -> bool:
    """Whether *base_url* and paths under it need no percent-encoding or IDNA to be sent."""
    probe = base_url + "/app/x"
    return str(httpx.URL(probe)) == probe


def _json_body(reply: Reply, method: str, url: str) -> Any:
    content = reply.content
    if not content:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        raise ResponseValidationError(
            f"{reply.status_code} on {method} {url} is not JSON: {body_preview(content)!r}",
            status_code=reply.status_code,
        ) from None
    # Some endpoints wrap their payload in {"data": ...} and some don't.
    return body["data"] if type(body) is dict and "data" in body else body
