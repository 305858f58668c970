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
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio.lowlevel
import attrs
import httpx

from .._clock import Clock
from .._config import USER_AGENT
from ._aiohttp import AiohttpTransport
from ._call import Call
from ._limits import MAX_BODY_BYTES
from ._pacing import RateLimits
from ._pool import WireTransport
from ._reply import decoded, json_body, read_reply
from ._retry import RetryPolicy
from ._select import FAST_ENGINES, AutoTransport
from ._shared import Reply

logger = logging.getLogger("rungen_async")

_JSON_HEADERS = {"content-type": "application/json"}
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
        if content is not None or method == "POST" or extra_headers:
            headers = {**headers, **_JSON_HEADERS} if content is not None else dict(headers)
            if method == "POST":
                # One key per logical call, the same on every attempt.
                idempotency_key = idempotency_key or uuid.uuid4().hex
                headers["idempotency-key"] = idempotency_key
            if extra_headers:
                headers.update(extra_headers)
        call = Call(options, self.rate_limits, method, url, path, headers, idempotency_key)
        while True:
            call.attempt += 1
            if self.rate_limits.active:
                await call.pace(self.clock)
            try:
                reply = await self.send(method, url, content, headers, options.timeouts)
            except _ENGINE_ERRORS as exc:
                delay, reason = call.after_failure(exc)
            else:
                if reply.status_code < 400:
                    call.answered()
                    return json_body(reply, method, url)
                delay, reason = call.after_status(reply, self.rate_limit_listeners)
            await self.back_off(call, reason, delay)

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
            return await decoded(reply, self.max_body_bytes) if reply.encoded else reply
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

    async def back_off(self, call: Call, reason: str, delay: float | None) -> None:
        """Log a retry and sleep its delay on the clock."""
        policy = call.options.retry
        if delay is None:
            delay = policy.backoff(call.attempt)
        self.retry_count += 1
        logger.info(
            "Retrying %s %s in %.2f s after %s (attempt %d of %d)",
            call.method,
            call.path,
            delay,
            reason,
            call.attempt + 1,
            policy.max_attempts,
        )
        await self.clock.sleep(delay)


def _encoded(base_url: str) -> bool:
    """Whether *base_url* and paths under it need no percent-encoding or IDNA to be sent."""
    probe = base_url + "/app/x"
    return str(httpx.URL(probe)) == probe
