"""
An httpx transport backed by aiohttp, and the automatic choice of the SDK's transport.

httpx stays the public interface (callers still hand the SDK httpx clients and transports,
and respx keeps working); only the bytes on the wire move through another engine. On asyncio
`AutoTransport` picks the SDK's own `WireTransport` (the cheapest), or aiohttp's C-accelerated
client on request; on trio it falls back to `httpx.AsyncHTTPTransport`.

The exception mapping is part of the contract: the SDK decides whether a POST may be re-sent
from the httpx class alone. `httpx.ConnectError`, `httpx.ConnectTimeout` and
`httpx.PoolTimeout` mean nothing was sent; every other `httpx.TransportError` is ambiguous.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import urllib.request
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final, Literal

import httpx
import sniffio

from .._validation import _is_loopback
from ._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES
from ._pool import WireTransport
from ._shared import (
    DEFAULT_KEEPALIVE_EXPIRY,
    DEFAULT_LIMIT,
    Reply,
    bare_request,
    bind_loop,
)
from ._shared import Slots as _Slots

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

__all__ = [
    "AiohttpTransport",
    "AutoTransport",
    "default_transport",
    "httpx_is_patched",
]


_HTTP_11: Final = b"HTTP/1.1"
# Headers aiohttp adds when absent. httpx sets the first three on every request, so skipping
# costs nothing in the common case; naming them all keeps the wire exactly what httpx built.
_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    An httpx transport that sends requests through one `aiohttp.ClientSession`; asyncio only.

    Responses are read in full before they are returned, so streaming a response body
    yields it in one chunk. httpx still follows redirects, keeps cookies and decodes
    ``Content-Encoding``. Differences from `httpx.AsyncHTTPTransport`: HTTP/1.1 only, no
    proxies, the write timeout is not enforced (aiohttp has none), and aiohttp re-sends an
    idempotent request (GET, PUT, DELETE...) once if a reused keep-alive connection turns out
    to be closed; it never re-sends a POST.

    Args:
        limit: Most connections open at once; requests beyond it queue, bounded by the
            request's pool timeout. ``None`` means no limit.
        keepalive_expiry: Seconds an idle connection stays open for reuse.
        verify: Certificate checking, as in `httpx.AsyncHTTPTransport`: ``True`` for httpx's
            default context, ``False`` to skip, or an `ssl.SSLContext`.
    """

    def __init__(
        self,
        *,
        limit: int | None = DEFAULT_LIMIT,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        # Imported here, not at module level: aiohttp adds ~150 ms to `import rungen_async`
        # and is optional. Kept on the instance so the request path does no import lookups.
        import aiohttp
        from multidict import CIMultiDict
        from yarl import URL

        self._client_error: type[aiohttp.ClientError] = aiohttp.ClientError
        self._headers_type: type[CIMultiDict[str]] = CIMultiDict
        self._url_type = URL
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 or None, not {limit}")
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._slots = _Slots(limit) if limit is not None else None
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        # One aiohttp.ClientTimeout per distinct (connect, read) pair seen last; the SDK
        # sends the same timeouts on every request, so this is nearly always a hit.
        self._timeout_key: tuple[float | None, float | None] | None = None
        self._timeout: aiohttp.ClientTimeout | None = None

    def _open(self) -> aiohttp.ClientSession:
        """Create the session inside the running loop, or explain why it cannot be."""
        loop = bind_loop("AiohttpTransport", closed=self._closed, bound=self._session is not None)
        import aiohttp

        if isinstance(self._verify, ssl.SSLContext):
            ssl_option: ssl.SSLContext | bool = self._verify
        else:
            ssl_option = httpx.create_ssl_context(verify=True) if self._verify else False
        connector = aiohttp.TCPConnector(
            limit=self._limit or 0,  # our _Slots queue first, so this never blocks
            keepalive_timeout=self._keepalive_expiry,
            ssl=ssl_option,
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
            auto_decompress=False,  # httpx decodes Content-Encoding itself
            timeout=aiohttp.ClientTimeout(),
        )
        self._loop = loop
        return self._session

    def _client_timeout(self, connect: float | None, read: float | None) -> aiohttp.ClientTimeout:
        import aiohttp

        # sock_connect bounds the TCP/TLS connect alone; the pool wait is ours (_Slots).
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect, sock_read=read)
        self._timeout_key = (connect, read)
        self._timeout = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return its response with the body already read."""
        headers = request.headers
        method = request.method
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        wire_headers = self._headers_type(headers.multi_items())
        if (
            "User-Agent" in wire_headers
            and "Accept" in wire_headers
            and "Accept-Encoding" in wire_headers
            and ("Content-Type" in wire_headers or not (body or method in _BODY_METHODS))
        ):
            skip: tuple[str, ...] | None = None
        else:
            skip = _AUTO_HEADERS
        response, content = await self._exchange(
            method,
            self._url_type(str(request.url), encoded=True),  # httpx percent-encoded it
            wire_headers,
            body or None,
            skip,
            request.extensions.get("timeout"),
            request,
        )
        return to_httpx_response(response, content, request)

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

        The SDK's own fast lane: *url* must already be percent-encoded and *headers* must
        name ``User-Agent``, ``Accept``, ``Accept-Encoding`` (and ``Content-Type`` with a
        body), so aiohttp adds nothing. The body is returned as sent (not decoded); errors
        are the same httpx exceptions `handle_async_request` raises, carrying a request
        without headers.
        """
        raw, content = await self._exchange(
            method, self._url_type(url, encoded=True), headers, body, None, timeouts, None
        )
        if raw.status < 400 and "Content-Encoding" not in raw.headers:
            return Reply(raw.status, content)
        return Reply(
            raw.status,
            content,
            list(raw.raw_headers),
            encoded="Content-Encoding" in raw.headers,
            version=_http_version(raw.version),
            reason=(raw.reason or "").encode("ascii", "replace"),
        )

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        skip: tuple[str, ...] | None,
        timeouts: Mapping[str, float | None] | None,
        request: httpx.Request | None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        session = self._session
        loop = self._loop
        if session is None or loop is not asyncio.get_running_loop():
            session = self._open()
            loop = self._loop
            assert loop is not None
        if timeouts is None:
            connect = read = pool = None
        else:
            connect = timeouts.get("connect")
            read = timeouts.get("read")
            pool = timeouts.get("pool")
        key = self._timeout_key
        if key is not None and key[0] == connect and key[1] == read:
            client_timeout = self._timeout
        else:
            client_timeout = self._client_timeout(connect, read)

        slots = self._slots
        if slots is not None and not slots.try_acquire():
            try:
                await slots.acquire(loop, pool)
            except TimeoutError as exc:
                raise httpx.PoolTimeout(
                    "timed out waiting for a connection",
                    request=request or bare_request(method, str(url)),
                ) from exc
        response: aiohttp.ClientResponse | None = None
        try:
            response = await session.request(
                method,
                url,
                headers=headers,
                data=body,
                skip_auto_headers=skip,
                allow_redirects=False,  # httpx follows redirects itself
                timeout=client_timeout,
            )
            content = await response.read()
        except self._client_error as exc:
            if response is not None:
                response.close()
            raise _to_httpx(exc, request or bare_request(method, str(url))) from exc
        except BaseException:  # cancelled: drop the half-read connection
            if response is not None:
                response.close()
            raise
        finally:
            if slots is not None:
                slots.release()
        return response, content

    async def aclose(self) -> None:
        """Close the session and its connections; the transport cannot be reused."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def to_httpx_response(
    response: aiohttp.ClientResponse, content: bytes, request: httpx.Request
) -> httpx.Response:
    """The httpx form of an aiohttp response whose body *content* was read."""
    return httpx.Response(
        response.status,
        headers=response.raw_headers,
        stream=httpx.ByteStream(content),
        request=request,
        extensions={
            "http_version": _http_version(response.version),
            "reason_phrase": (response.reason or "").encode("ascii", "replace"),
        },
    )


def _http_version(version: tuple[int, int] | None) -> bytes:
    if version is None or version == (1, 1):
        return _HTTP_11
    return f"HTTP/{version[0]}.{version[1]}".encode()


def _to_httpx(exc: aiohttp.ClientError, request: httpx.Request) -> httpx.TransportError:
    """Translate an aiohttp error into the httpx error with the same retry meaning."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    # Nothing was sent: safe to retry any method.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS handshake
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.LocalProtocolError(message, request=request)
    # The request may have reached the server: ambiguous.
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionResetError):
        return httpx.WriteError(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError):
        # aiohttp reports a failed body write only through this message.
        if "Can not write request body" in message:
            return httpx.WriteError(message, request=request)
        return httpx.ReadError(message, request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientResponseError):  # a response aiohttp could not parse
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)


class AutoTransport(httpx.AsyncBaseTransport):
    """
    Picks the fastest transport for the running async library on first use.

    On asyncio that is `WireTransport` (the SDK's own HTTP/1.1 client), or `AiohttpTransport`
    if *asyncio_engine* is ``"aiohttp"`` (and aiohttp is installed), or httpx's own if it is
    ``"httpx"``. On trio it is always `httpx.AsyncHTTPTransport`. Every choice is configured
    from the same *limits* and *verify*.

    With *trust_env* (the default, as in httpx), a proxy named by ``HTTPS_PROXY``,
    ``HTTP_PROXY`` or ``ALL_PROXY`` for the first request's URL (and not bypassed by
    ``NO_PROXY``) is honoured: the choice is then httpx's transport through that proxy.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        asyncio_engine: Literal["wire", "aiohttp", "httpx"] = "wire",
        trust_env: bool = True,
        max_head_bytes: int = MAX_HEAD_BYTES,
        max_body_bytes: int | None = MAX_BODY_BYTES,
    ) -> None:
        if asyncio_engine not in ("wire", "aiohttp", "httpx"):
            raise ValueError(
                f"asyncio_engine must be 'wire', 'aiohttp' or 'httpx', not {asyncio_engine!r}"
            )
        self._limits = limits or httpx.Limits(
            max_connections=DEFAULT_LIMIT, max_keepalive_connections=DEFAULT_LIMIT
        )
        self._verify = verify
        self._engine = asyncio_engine
        self._trust_env = trust_env
        self._caps = (max_head_bytes, max_body_bytes)
        self._inner: httpx.AsyncBaseTransport | None = None
        self._mocked: httpx.AsyncBaseTransport | None = None

    @property
    def chosen(self) -> httpx.AsyncBaseTransport | None:
        """The transport picked on first use, or ``None`` before any request."""
        return self._inner

    def _choose(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        limits = self._limits
        proxy = _env_proxy(url) if self._trust_env else None
        if proxy is not None:
            # Only httpx's transport speaks to proxies: honour HTTP(S)_PROXY as httpx would.
            self._inner = httpx.AsyncHTTPTransport(limits=limits, verify=self._verify, proxy=proxy)
            return self._inner
        engine = self._engine if sniffio.current_async_library() == "asyncio" else "httpx"
        expiry = (
            DEFAULT_KEEPALIVE_EXPIRY if limits.keepalive_expiry is None else limits.keepalive_expiry
        )
        inner: httpx.AsyncBaseTransport
        if engine == "wire":
            inner = WireTransport(
                limits=limits,
                verify=self._verify,
                max_head_bytes=self._caps[0],
                max_body_bytes=self._caps[1],
            )
        elif engine == "aiohttp":
            inner = AiohttpTransport(
                limit=limits.max_connections, keepalive_expiry=expiry, verify=self._verify
            )
        else:
            inner = httpx.AsyncHTTPTransport(limits=limits, verify=self._verify)
        self._inner = inner
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the chosen transport, choosing it on the first call."""
        if httpx_is_patched():
            # A test mock (respx, pytest-httpx) hooks httpx's own transport: go through it.
            fallback = self._mocked or self._mocked_transport()
            return await fallback.handle_async_request(request)
        inner = self._inner or self._choose(request.url)
        return await inner.handle_async_request(request)

    def _mocked_transport(self) -> httpx.AsyncBaseTransport:
        self._mocked = httpx.AsyncHTTPTransport(limits=self._limits, verify=self._verify)
        return self._mocked

    async def aclose(self) -> None:
        """Close the chosen transport, if one was chosen."""
        if self._inner is not None:
            await self._inner.aclose()
        if self._mocked is not None:
            await self._mocked.aclose()


def _env_proxy(url: httpx.URL) -> str | None:
    """
    The proxy the environment names for *url*, if any (as httpx's trust_env reads it).

    Loopback hosts never go through one: a proxy elsewhere cannot reach this machine's
    loopback (where the local emulator runs).
    """
    if _is_loopback(url.host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # (not in typeshed)
    if not proxy or bypass(url.host):
        return None
    return proxy


_HTTPX_SEND: Final = "httpx._transports.default"
_HTTPX_CLIENT: Final = "httpx._client"
_HTTPCORE_POOL: Final = "httpcore._async.connection_pool"


def httpx_is_patched() -> bool:
    """
    Whether a test mock has replaced httpx's or httpcore's send path in this process.

    respx patches ``httpcore.AsyncConnectionPool.handle_async_request`` (or, with
    ``using="httpx"``, ``httpx.AsyncClient._transport_for_url``) and pytest-httpx patches
    ``httpx.AsyncHTTPTransport.handle_async_request``. While one is active, the SDK sends
    through httpx's own client and transport so the mock sees every request.
    """
    if (
        getattr(httpx.AsyncHTTPTransport.handle_async_request, "__module__", None) != _HTTPX_SEND
        or getattr(httpx.AsyncClient._transport_for_url, "__module__", None) != _HTTPX_CLIENT
    ):
        return True
    httpcore = sys.modules.get("httpcore")
    return httpcore is not None and (
        getattr(httpcore.AsyncConnectionPool.handle_async_request, "__module__", None)
        != _HTTPCORE_POOL
    )


def default_transport(
    *,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_body_bytes: int | None = MAX_BODY_BYTES,
) -> httpx.AsyncBaseTransport:
    """Return the transport the SDK uses when the caller passes none: an `AutoTransport`."""
    return AutoTransport(
        limits=limits,
        verify=verify,
        max_head_bytes=max_head_bytes,
        max_body_bytes=max_body_bytes,
    )
