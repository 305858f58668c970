"""
An httpx transport backed by aiohttp: the SDK's optional engine, and its exact error mapping.

httpx stays the public interface (callers still hand the SDK httpx clients and transports);
only the bytes on the wire move through aiohttp's C-accelerated client.

The exception mapping is part of the contract: every aiohttp failure becomes the httpx
exception with the same retry meaning, the original chained, and `_errors` turns that into the
SDK's tree. `httpx.ConnectError`, `httpx.ConnectTimeout` and `httpx.PoolTimeout` mean nothing
was sent, and only failures before the request was written map to them; every other
`httpx.TransportError` leaves a POST ambiguous.

    ConnectionTimeoutError ........................... ConnectTimeout
    ClientConnectorError (refused, DNS, TLS, proxy) .. ConnectError
    ServerFingerprintMismatch ........................ ConnectError
    NonHttpUrlClientError ............................ UnsupportedProtocol
    InvalidURL ....................................... LocalProtocolError
    ServerTimeoutError (a read) ...................... ReadTimeout
    ClientConnectionResetError, UploadAbortedError ... WriteError
    ClientOSError .................................... WriteError (body write) or ReadError
    ServerDisconnectedError, ClientPayloadError ...... RemoteProtocolError
    ClientResponseError, HttpProcessingError ......... RemoteProtocolError (unparseable answer)
    other ClientConnectionError ...................... ReadError
    any other ClientError ............................ TransportError
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Final

import httpx

from ._limits import MAX_BODY_BYTES, TooLarge
from ._shared import DEFAULT_KEEPALIVE_EXPIRY, DEFAULT_LIMIT, Reply, bare_request, bind_loop
from ._shared import Slots as _Slots

if TYPE_CHECKING:
    import aiohttp
    from multidict import CIMultiDict
    from yarl import URL

__all__ = ["AiohttpTransport"]

_CHUNK: Final = 64 * 1024


_HTTP_11: Final = b"HTTP/1.1"
# Headers aiohttp adds when absent. httpx sets the first three on every request, so skipping
# costs nothing in the common case; naming them all keeps the wire exactly what httpx built.
_AUTO_HEADERS: Final = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """
    An httpx transport that sends requests through one `aiohttp.ClientSession`; asyncio only.

    `handle_async_request` streams the response body (a download is never held whole);
    `exchange`, the SDK's own path, reads it in full, up to *max_body_bytes* (`TooLarge`
    past it). httpx still follows redirects, keeps cookies and decodes
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
        max_body_bytes: The most bytes `exchange` reads of one response body.
    """

    def __init__(
        self,
        *,
        limit: int | None = DEFAULT_LIMIT,
        keepalive_expiry: float = DEFAULT_KEEPALIVE_EXPIRY,
        verify: ssl.SSLContext | bool = True,
        max_body_bytes: int = MAX_BODY_BYTES,
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
        self._max_body = max_body_bytes
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
        """Send *request*; return its response as soon as the head arrived (body streamed)."""
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
        response, release = await self._start(
            method,
            self._url_type(str(request.url), encoded=True),  # httpx percent-encoded it
            wire_headers,
            body or None,
            skip,
            request.extensions.get("timeout"),
            request,
        )
        return httpx.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, release, request, self._client_error),
            request=request,
            extensions={
                "http_version": _http_version(response.version),
                "reason_phrase": (response.reason or "").encode("ascii", "replace"),
            },
        )

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
        body), so aiohttp adds nothing. The body is returned as sent (not decoded), at most
        *max_body_bytes* of it (`TooLarge` past that); errors are the same httpx exceptions
        `handle_async_request` raises, carrying a request without headers.
        """
        raw, release = await self._start(
            method, self._url_type(url, encoded=True), headers, body, None, timeouts, None
        )
        try:
            content = await self._read_capped(raw, method, url)
        finally:
            release()
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

    async def _read_capped(self, raw: aiohttp.ClientResponse, method: str, url: str) -> bytes:
        limit = self._max_body
        if raw.content_length is not None and raw.content_length > limit:
            raw.close()
            raise TooLarge(_too_large(limit), limit=limit)
        chunks: list[bytes] = []
        size = 0
        try:
            if raw.content_length is not None:  # within the cap: aiohttp's one-call read
                return await raw.read()
            while chunk := await raw.content.read(_CHUNK):
                size += len(chunk)
                if size > limit:
                    raw.close()
                    raise TooLarge(_too_large(limit), limit=limit)
                chunks.append(chunk)
        except self._client_error as exc:
            raw.close()
            raise _to_httpx(exc, bare_request(method, url)) from exc
        except BaseException:
            raw.close()
            raise
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def _start(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        body: bytes | None,
        skip: tuple[str, ...] | None,
        timeouts: Mapping[str, float | None] | None,
        request: httpx.Request | None,
    ) -> tuple[aiohttp.ClientResponse, Callable[[], None]]:
        """Send the request and read the head; the caller reads the body, then *release*s."""
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
        release = slots.release if slots is not None else _nothing
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
        except (self._client_error, _processing_error()) as exc:
            release()
            raise _to_httpx(exc, request or bare_request(method, str(url))) from exc
        except BaseException:
            release()
            raise
        if not 200 <= response.status <= 599:  # aiohttp takes "HTTP/1.1 000 OK"; h11 does not
            response.close()
            release()
            raise httpx.RemoteProtocolError(
                f"the server sent a malformed status line (status {response.status:03d})",
                request=request or bare_request(method, str(url)),
            )
        return response, release

    async def aclose(self) -> None:
        """Close the session and its connections; the transport cannot be reused."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()


class _Body(httpx.AsyncByteStream):
    """An aiohttp response body as an httpx stream; closing it frees the pool slot."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        release: Callable[[], None],
        request: httpx.Request,
        client_error: type[aiohttp.ClientError],
    ) -> None:
        self._response = response
        self._release: Callable[[], None] | None = release
        self._request = request
        self._client_error = client_error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._response.content.read(_CHUNK):
                yield chunk
        except self._client_error as exc:
            self._response.close()
            raise _to_httpx(exc, self._request) from exc

    async def aclose(self) -> None:
        self._response.release()
        release, self._release = self._release, None
        if release is not None:
            release()


def _nothing() -> None:
    """No pool slot to give back."""


def _too_large(limit: int) -> str:
    return (
        f"the response body is larger than {limit:,} bytes (the client's max_body_bytes); "
        "raise it with AsyncRunGen(max_body_bytes=...) if the API really sends that much"
    )


def _processing_error() -> type[Exception]:
    """aiohttp's parser error, which a few code paths let through unwrapped."""
    from aiohttp.http_exceptions import HttpProcessingError

    return HttpProcessingError


def _http_version(version: tuple[int, int] | None) -> bytes:
    if version is None or version == (1, 1):
        return _HTTP_11
    return f"HTTP/{version[0]}.{version[1]}".encode()


def _to_httpx(exc: Exception, request: httpx.Request) -> httpx.TransportError:
    """Translate an aiohttp error into the httpx error with the same retry meaning."""
    import aiohttp
    from aiohttp.http_exceptions import HttpProcessingError

    message = str(exc) or type(exc).__name__
    # Nothing was sent: safe to retry any method.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ServerFingerprintMismatch):
        return httpx.ConnectError(message, request=request)  # refused, DNS, TLS, proxy
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message, request=request)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.LocalProtocolError(message, request=request)
    # The request may have reached the server: ambiguous.
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionResetError | aiohttp.UploadAbortedError):
        return httpx.WriteError(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError):
        # aiohttp reports a failed body write only through this message.
        if "Can not write request body" in message:
            return httpx.WriteError(message, request=request)
        return httpx.ReadError(message, request=request)
    if isinstance(
        exc,
        aiohttp.ServerDisconnectedError
        | aiohttp.ClientPayloadError
        | aiohttp.ClientResponseError  # an answer aiohttp could not parse
        | HttpProcessingError,
    ):
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)
