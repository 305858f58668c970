"""
`WireTransport`: the SDK's own HTTP/1.1 client on asyncio, a keep-alive pool of `Connection`.

httpx stays the public interface (callers still hand the SDK httpx clients and transports,
and respx keeps working); only the bytes on the wire move through here: one
``transport.write`` per request, and llhttp over the bytes ``data_received`` hands it.

The exception mapping is part of the contract, as for every transport of the SDK: the SDK
decides whether a POST may be re-sent from the httpx class alone. `httpx.ConnectError`,
`httpx.ConnectTimeout` and `httpx.PoolTimeout` mean nothing was sent; every other
`httpx.TransportError` is ambiguous.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import Final

import httpx

from ._connection import DEFAULT_BODY_TIMEOUT, Connection, Failure
from ._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES
from ._origin import Origin, origin_of, request_bytes
from ._shared import DEFAULT_KEEPALIVE_EXPIRY, DEFAULT_LIMIT, Reply, Slots, bare_request, bind_loop

__all__ = ["WireTransport"]

#: Methods re-sent once on a fresh connection when a reused one died before any answer.
_IDEMPOTENT: Final = frozenset({"GET", "HEAD", "OPTIONS", "DELETE", "PUT"})
#: What a reused connection that the server had closed fails with.
_STALE: Final = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class WireTransport(httpx.AsyncBaseTransport):
    """
    An httpx transport that speaks HTTP/1.1 itself, on asyncio's protocol API; asyncio only.

    The SDK's default on asyncio (through `AutoTransport`). Responses are read in full before
    they are returned, within caps and deadlines; httpx still follows redirects, keeps cookies
    and decodes ``Content-Encoding``. Differences from `httpx.AsyncHTTPTransport`: HTTP/1.1
    only and no proxies.

    Args:
        limit: Most requests in flight (and connections open) at once; requests beyond it
            queue, bounded by the request's pool timeout. ``None`` means no limit.
        keepalive_expiry: Seconds an idle connection stays open for reuse.
        max_keepalive: Most idle connections kept open (``None``: as many as *limit*).
        limits: An `httpx.Limits`, which sets the three above (its ``None`` expiry: 5 s).
        verify: Certificate checking, as in `httpx.AsyncHTTPTransport`: ``True`` for httpx's
            default context (which honours ``SSL_CERT_FILE``), ``False`` to skip, or an
            `ssl.SSLContext`.
        max_head_bytes: Largest response head (status line and headers), and largest trailer
            section, accepted; more raises `TooLarge`.
        max_body_bytes: Largest response body accepted (``None``: no cap).
        body_timeout: Seconds a response body may take in all once its head has arrived
            (``None``: no bound beyond the read timeout between two reads). The head itself
            must arrive within the request's read timeout in all.
    """

    def __init__(
        self,
        *,
        limit: int | None = DEFAULT_LIMIT,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        max_keepalive: int | None = None,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int | None = MAX_BODY_BYTES,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        if limits is not None:
            limit = limits.max_connections
            max_keepalive = limits.max_keepalive_connections
            if limits.keepalive_expiry is not None:
                keepalive_expiry = limits.keepalive_expiry
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 or None, not {limit}")
        if max_keepalive is not None and max_keepalive < 0:
            raise ValueError(f"max_keepalive must be at least 0 or None, not {max_keepalive}")
        if max_head_bytes < 1 or (max_body_bytes is not None and max_body_bytes < 0):
            raise ValueError("max_head_bytes must be positive and max_body_bytes not negative")
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._max_idle = max_keepalive if max_keepalive is not None else limit
        self._verify = verify
        self._caps = (max_head_bytes, max_body_bytes, body_timeout)
        self._ssl_context: ssl.SSLContext | None = None
        self._slots = Slots(limit) if limit is not None else None
        self._origins: dict[str, Origin] = {}  # "scheme://authority" -> its pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._open = 0  # connections open, idle or busy
        self._idle = 0  # of which idle in a pool

    def _origin(self, prefix: str) -> Origin:
        origin = self._origins.get(prefix)
        if origin is None:
            origin = self._origins[prefix] = origin_of(prefix)
        return origin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return its response with the body already read."""
        data, prefix = await request_bytes(request)
        timeouts = request.extensions.get("timeout")
        reply = await self._exchange(prefix, data, request.method, timeouts, request)
        return reply.to_httpx(request)

    async def exchange(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes | None,
        timeouts: Mapping[str, float | None] | None,
    ) -> Reply:
        """
        Send one request without building httpx objects; return its `Reply`.

        The SDK's own fast lane: *url* must already be percent-encoded. ``Host`` and
        ``Content-Length`` are added; everything else is sent as given. Header names and
        values must be ASCII without line breaks (`httpx.LocalProtocolError` otherwise).
        Errors are the same httpx exceptions `handle_async_request` raises, carrying a
        request without headers.
        """
        start = url.find("/", url.find("//") + 2)
        prefix = url if start < 0 else url[:start]
        origin = self._origins.get(prefix) or self._origin(prefix)
        data = origin.request_line(method, url, "/" if start < 0 else url[start:], headers, body)
        return await self._exchange(prefix, data, method, timeouts, None, url)

    async def _exchange(
        self,
        prefix: str,
        data: bytes,
        method: str,
        timeouts: Mapping[str, float | None] | None,
        request: httpx.Request | None,
        url: str = "",
    ) -> Reply:
        loop = self._loop
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or loop is not running or self._closed:
            loop = self._loop = bind_loop(
                "WireTransport", closed=self._closed, bound=self._loop is not None
            )
        timeouts = timeouts or {}
        origin = self._origins.get(prefix) or self._origin(prefix)
        slots = self._slots
        try:
            if slots is not None and not slots.try_acquire():
                try:
                    await slots.acquire(loop, timeouts.get("pool"))
                except TimeoutError as exc:
                    raise httpx.PoolTimeout("timed out waiting for a connection") from exc
            try:
                return await self._send(origin, loop, data, method, timeouts)
            finally:
                if slots is not None:
                    slots.release()
        except Failure as failure:
            raise failure.kind(
                str(failure), request=request or bare_request(method, url or prefix)
            ) from None
        except httpx.TransportError as exc:
            if exc._request is None:  # raised here, where no request is known
                exc.request = request or bare_request(method, url or prefix)
            raise

    async def _send(
        self,
        origin: Origin,
        loop: asyncio.AbstractEventLoop,
        data: bytes,
        method: str,
        timeouts: Mapping[str, float | None],
    ) -> Reply:
        connection = self._idle_connection(origin, loop)
        reused = connection is not None
        while True:
            if connection is None:
                connection = await self._connect(origin, loop, timeouts.get("connect"))
            try:
                return await connection.send(
                    data, method == "HEAD", timeouts.get("read"), timeouts.get("write")
                )
            except Failure as failure:
                # The server closed a kept-alive connection as we reused it: nothing was
                # answered, so an idempotent request goes once more on a new connection.
                if not (reused and not connection.received and method in _IDEMPOTENT):
                    raise
                if not issubclass(failure.kind, _STALE):
                    raise
                reused = False
            except BaseException:  # cancelled: the connection's state is unknown
                connection.abort()
                raise
            finally:
                self._release(origin, connection, loop)
            connection = None

    def _idle_connection(
        self, origin: Origin, loop: asyncio.AbstractEventLoop
    ) -> Connection | None:
        """The warmest idle connection that is neither expired nor closed by the server."""
        idle = origin.idle
        now = loop.time()
        while idle:
            connection = idle.pop()
            self._idle -= 1
            if (
                connection.reusable
                and now - connection.idle_since < self._keepalive_expiry
                and connection.still_open()
            ):
                return connection
            self._drop(connection)
        return None

    async def _connect(
        self, origin: Origin, loop: asyncio.AbstractEventLoop, max_wait: float | None
    ) -> Connection:
        if self._limit is not None and self._open >= self._limit:
            self._close_an_idle_connection()
        max_head, max_body, body_timeout = self._caps
        connection = Connection(
            loop, max_head=max_head, max_body=max_body, body_timeout=body_timeout
        )
        tls = self._tls_context() if origin.tls else None
        try:
            async with asyncio.timeout(max_wait):
                await loop.create_connection(
                    lambda: connection,
                    origin.host,
                    origin.port,
                    ssl=tls,
                    server_hostname=origin.host if tls is not None else None,
                )
        except TimeoutError:
            connection.abort()
            raise httpx.ConnectTimeout(f"timed out connecting to {origin.host_header}") from None
        except ssl.SSLCertVerificationError as exc:
            connection.abort()
            raise httpx.ConnectError(
                f"certificate verification failed for {origin.host}: {exc.verify_message}"
            ) from exc
        except (OSError, ValueError) as exc:
            connection.abort()
            raise httpx.ConnectError(
                f"cannot connect to {origin.host_header}: {type(exc).__name__}: {exc}"
            ) from exc
        except BaseException:
            connection.abort()
            raise
        self._open += 1
        return connection

    def _release(
        self, origin: Origin, connection: Connection, loop: asyncio.AbstractEventLoop
    ) -> None:
        if connection.transport is None:
            return  # never connected: nothing to count or close
        max_idle = self._max_idle
        if connection.reusable and not self._closed and (max_idle is None or self._idle < max_idle):
            connection.idle_since = loop.time()
            origin.idle.append(connection)
            self._idle += 1
        else:
            self._drop(connection)

    def _drop(self, connection: Connection) -> None:
        self._open -= 1
        if not connection.closed:
            connection.closed = True
            assert connection.transport is not None
            connection.transport.close()

    def _close_an_idle_connection(self) -> None:
        """Make room under the limit: close the longest-idle connection of any origin."""
        oldest: Origin | None = None
        for origin in self._origins.values():
            if origin.idle and (
                oldest is None or origin.idle[0].idle_since < oldest.idle[0].idle_since
            ):
                oldest = origin
        if oldest is not None:
            self._idle -= 1
            self._drop(oldest.idle.pop(0))

    def _tls_context(self) -> ssl.SSLContext:
        context = self._ssl_context
        if context is None:
            verify = self._verify
            if isinstance(verify, ssl.SSLContext):
                context = verify
            else:
                context = httpx.create_ssl_context(verify=verify)
            self._ssl_context = context
        return context

    async def aclose(self) -> None:
        """Close every idle connection; the transport cannot be reused."""
        self._closed = True
        for origin in self._origins.values():
            idle, origin.idle = origin.idle, []
            self._idle -= len(idle)
            for connection in idle:
                self._drop(connection)
