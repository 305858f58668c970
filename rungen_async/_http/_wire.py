"""
An HTTP/1.1 client on asyncio's protocol API: the SDK's default transport on asyncio.

httpx stays the public interface (callers still hand the SDK httpx clients and transports,
and respx keeps working); only the bytes on the wire move through `WireTransport`, which does
the least work an HTTP/1.1 exchange needs: one ``transport.write`` of the request, and a
parser over the bytes ``data_received`` hands it. A poll costs a few tens of microseconds of
CPU here, against about 150 through aiohttp and 800+ through httpcore (benchmarks/README.md).

What it speaks: HTTP/1.1 over TCP or TLS, keep-alive connections pooled per origin, response
bodies framed by Content-Length, chunked transfer coding or the connection's close; 1xx
responses are skipped. What it leaves out: proxies, HTTP/2, upgrades, and streaming (a
response body is read in full before it is returned).

The exception mapping is part of the contract, as for every transport of the SDK: the SDK
decides whether a POST may be re-sent from the httpx class alone. `httpx.ConnectError`,
`httpx.ConnectTimeout` and `httpx.PoolTimeout` mean nothing was sent; every other
`httpx.TransportError` is ambiguous.
"""

from __future__ import annotations

import asyncio
import collections
import re
import select
import ssl
from collections.abc import Mapping
from typing import Final

import httpx
import sniffio

__all__ = ["Reply", "WireTransport"]

DEFAULT_LIMIT: Final = 64
DEFAULT_KEEPALIVE_EXPIRY: Final = 5.0  # httpx.Limits' default

_MAX_HEAD: Final = 64 * 1024  # bytes of status line and headers before we give up
_HTTP_11: Final = b"HTTP/1.1"
#: Idle longer than this (seconds), a connection's socket is looked at before reuse.
_PROBE_AFTER: Final = 1.0
_UNSAFE: Final = re.compile(rb"[\r\n\x00]")  # what would split or end a header line
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})
_NO_BODY_STATUS: Final = frozenset({204, 304})
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_HEX_DIGITS: Final = b"0123456789abcdefABCDEF"

# What a response's framing is, once its head is parsed.
_LENGTH, _CHUNKED, _UNTIL_CLOSE = 0, 1, 2
# Where the chunked parser is.
_SIZE, _DATA, _TRAILER = 0, 1, 2


class Reply:
    """
    A response read in full: status, body, and (when they matter) headers.

    The SDK's fast lane returns one for every answer. Only an error status or an encoded body
    needs the headers; `to_httpx` turns it into the `httpx.Response` the rest of the SDK reads.
    """

    __slots__ = ("content", "encoded", "headers", "reason", "status_code", "version")

    def __init__(
        self,
        status_code: int,
        content: bytes,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        encoded: bool = False,
        version: bytes = _HTTP_11,
        reason: bytes = b"",
    ) -> None:
        self.status_code = status_code
        self.content = content
        self.headers = headers if headers is not None else []
        self.encoded = encoded  #: whether a Content-Encoding must be undone
        self.version = version
        self.reason = reason

    def to_httpx(self, request: httpx.Request) -> httpx.Response:
        """The `httpx.Response` form (not yet read: ``aread()`` decodes a Content-Encoding)."""
        return httpx.Response(
            self.status_code,
            headers=self.headers,
            stream=httpx.ByteStream(self.content),
            request=request,
            extensions={"http_version": self.version, "reason_phrase": self.reason},
        )

    def __repr__(self) -> str:
        return f"<Reply [{self.status_code}] {len(self.content)} bytes>"


class Slots:
    """
    A FIFO counting semaphore whose uncontended acquire allocates nothing.

    `asyncio.Semaphore.locked()` scans every waiter, which at 256 requests queued on 64
    connections is exactly the per-request work that grows with concurrency.
    """

    __slots__ = ("_free", "_waiters")

    def __init__(self, size: int) -> None:
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def try_acquire(self) -> bool:
        """Take a slot if one is free and nobody is queued before us."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def acquire(self, loop: asyncio.AbstractEventLoop, max_wait: float | None) -> None:
        """Queue for a slot; raise `TimeoutError` after *max_wait* seconds."""
        waiters = self._waiters
        while waiters and waiters[0].done():  # left behind by timed-out waiters
            waiters.popleft()
        if self._free and not waiters:
            self._free -= 1
            return
        fut: asyncio.Future[None] = loop.create_future()
        waiters.append(fut)
        try:
            if max_wait is None:
                await fut
            else:
                async with asyncio.timeout(max_wait):
                    await fut
        except BaseException:
            if fut.done() and not fut.cancelled():
                self.release()  # handed a slot while being cancelled: pass it on
            else:
                fut.cancel()
            raise

    def release(self) -> None:
        """Hand the slot to the oldest live waiter, or put it back."""
        waiters = self._waiters
        while waiters:
            fut = waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        self._free += 1


class _Origin:
    """Where one scheme://host:port leads: the connect arguments and the Host header."""

    __slots__ = ("host", "host_header", "idle", "key", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        default = _DEFAULT_PORTS[scheme]
        self.key = (scheme, host, port or default)
        self.host = host.strip("[]")  # an IPv6 literal connects without its brackets
        self.port = port or default
        self.tls = scheme == "https"
        self.host_header = host if port in (None, default) else f"{host}:{port}"
        # Idle keep-alive connections, the most recently used last (it is the warmest).
        self.idle: list[_Connection] = []


class _Failure(Exception):
    """Why a connection could not deliver a response (turned into an httpx error later)."""

    def __init__(self, kind: type[httpx.TransportError], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses the response, stays open if it may."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._buffer = bytearray()
        self._waiter: asyncio.Future[Reply] | None = None
        self._no_body = False  # a HEAD request: the response has headers only
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        # The read timeout: one timer per request, pushed back by arriving bytes.
        self._read_timeout: float | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_read = 0.0
        self._reset()

    def _reset(self) -> None:
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._version = _HTTP_11
        self._reason = b""
        self._encoded = False
        self._keep_alive = True
        self._framing = _LENGTH
        self._remaining = 0
        self._chunk_state = _SIZE
        self._chunks: list[bytes] = []
        self._pos = 0
        self._scanned = 0  # where the search for the end of the head resumes
        self._received = False  # any byte of a response has arrived

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            # Bytes nobody asked for: the connection cannot be trusted with another request.
            self.abort()
            return
        self._received = True
        self._last_read = self.loop.time()
        self._buffer += data
        try:
            done = self._parse()
        except _Failure as failure:
            self._fail(failure)
            self.abort()
            return
        if done:
            self._finish()

    def eof_received(self) -> bool:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._stop_timer()
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)  # the writer finds the connection closed
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._status and self._framing == _UNTIL_CLOSE and exc is None:
            self._finish()  # the close is what ends this body (a reset only cuts it short)
        elif exc is not None:
            self._fail(_Failure(httpx.ReadError, f"{type(exc).__name__}: {exc}"))
        elif not self._received:
            self._fail(
                _Failure(httpx.RemoteProtocolError, "Server disconnected without a response")
            )
        else:
            self._fail(
                _Failure(
                    httpx.RemoteProtocolError, "Server disconnected in the middle of a response"
                )
            )

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # The request side
    async def send(
        self,
        data: bytes,
        head_only: bool,
        read: float | None,
        write: float | None,
    ) -> Reply:
        """Write one request and wait for its whole response."""
        transport = self.transport
        assert transport is not None
        self._reset()
        self._no_body = head_only
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        self._waiter = waiter
        try:
            transport.write(data)
            if self._paused:  # a big body filled the socket's buffer
                await self._drained(write)
            if read is not None:
                self._read_timeout = read
                self._last_read = self.loop.time()
                self._timer = self.loop.call_at(self._last_read + read, self._on_timer)
            return await waiter
        finally:
            self._stop_timer()
            self._waiter = None
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # retrieved: asyncio logs nothing

    async def _drained(self, write: float | None) -> None:
        while self._paused and not self.closed:
            drain: asyncio.Future[None] = self.loop.create_future()
            self._drain = drain
            try:
                if write is None:
                    await drain
                else:
                    async with asyncio.timeout(write):
                        await drain
            except TimeoutError:
                self.abort()
                raise _Failure(httpx.WriteTimeout, "timed out writing the request") from None
        if self.closed and self._waiter is not None and not self._waiter.done():
            self._fail(_Failure(httpx.WriteError, "connection closed while writing the request"))

    def _on_timer(self) -> None:
        self._timer = None
        waiter = self._waiter
        timeout = self._read_timeout
        if waiter is None or waiter.done() or timeout is None:
            return
        due = self._last_read + timeout
        if due > self.loop.time():  # bytes arrived since: wait the rest
            self._timer = self.loop.call_at(due, self._on_timer)
            return
        self._fail(_Failure(httpx.ReadTimeout, f"no response bytes for {timeout:g} s"))
        self.abort()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _fail(self, failure: _Failure) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(failure)

    def _finish(self) -> None:
        waiter = self._waiter
        if self._framing == _UNTIL_CLOSE:
            self._chunks.append(bytes(self._buffer[self._pos :]))
            self._pos = len(self._buffer)
        body = b"".join(self._chunks)
        if self._pos:
            del self._buffer[: self._pos]
        if self._buffer:
            self._keep_alive = False  # more bytes than the response: never reuse
        if waiter is not None and not waiter.done():
            waiter.set_result(
                Reply(
                    self._status,
                    body,
                    self._headers,
                    encoded=self._encoded,
                    version=self._version,
                    reason=self._reason,
                )
            )

    @property
    def reusable(self) -> bool:
        """Whether the last response left the connection fit for another request."""
        transport = self.transport
        return (
            self._keep_alive
            and not self.closed
            and transport is not None
            and not transport.is_closing()
        )

    def still_open(self) -> bool:
        """
        Whether the peer has not closed the socket (nor sent anything) while it was idle.

        The event loop learns of a close on its next turn; a request written before then
        would fail as ambiguous. A look at the socket (a zero-timeout poll) tells now.
        """
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return True
        fd = sock.fileno()
        if fd < 0:
            return False
        # Readable while idle: the peer closed it (or sent what nobody asked for).
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        return not select.select([fd], [], [], 0)[0]

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    # The response side
    def _parse(self) -> bool:
        """Consume what the buffer holds; return whether the response is complete."""
        while not self._status:
            if not self._parse_head():
                return False
        framing = self._framing
        buffer = self._buffer
        if framing == _LENGTH:
            end = self._pos + self._remaining
            if len(buffer) < end:
                return False
            self._chunks.append(bytes(buffer[self._pos : end]))
            self._pos = end
            return True
        if framing == _CHUNKED:
            return self._parse_chunked()
        return False  # until close: connection_lost completes it

    def _parse_head(self) -> bool:
        buffer = self._buffer
        # Resume the search where the last one stopped: a head trickling in a byte at a
        # time is scanned once, not once per byte.
        end = buffer.find(b"\r\n\r\n", max(self._pos, self._scanned))
        self._scanned = max(self._pos, len(buffer) - 3) if end < 0 else 0
        # The head's length so far (its last 3 bytes may start the blank line), however the
        # bytes arrived: a head found whole in one read is held to the same limit.
        if (end if end >= 0 else len(buffer) - 3) - self._pos > _MAX_HEAD:
            raise _Failure(httpx.RemoteProtocolError, "response headers too long")
        if end < 0:
            return False
        lines = bytes(buffer[self._pos : end]).split(b"\r\n")
        self._pos = end + 4
        version, _, rest = lines[0].partition(b" ")
        code, _, reason = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise _Failure(httpx.RemoteProtocolError, f"malformed status line {lines[0][:80]!r}")
        status = int(code)
        headers: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        keep_alive = version == _HTTP_11
        encoded = False
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not name or name[-1:] in (b" ", b"\t") or line[:1] in (b" ", b"\t"):
                raise _Failure(httpx.RemoteProtocolError, f"malformed header line {line[:80]!r}")
            value = value.strip(b" \t")
            headers.append((name, value))
            lower = name.lower()
            if lower == b"content-length":
                if not value.isdigit() or (length is not None and length != int(value)):
                    raise _Failure(httpx.RemoteProtocolError, f"bad Content-Length {value!r}")
                length = int(value)
            elif lower == b"transfer-encoding":
                chunked = value.lower() == b"chunked"  # no other coding is undone here
                if not chunked:
                    raise _Failure(httpx.RemoteProtocolError, f"unsupported coding {value!r}")
            elif lower == b"connection":
                tokens = value.lower()
                if b"close" in tokens:
                    keep_alive = False
                elif b"keep-alive" in tokens:
                    keep_alive = True
            elif lower == b"content-encoding":
                encoded = value.lower() not in (b"", b"identity")
        if 100 <= status < 200:
            if status == 101:
                raise _Failure(httpx.RemoteProtocolError, "the server switched protocols")
            return True  # informational: the real response follows
        self._status = status
        self._headers = headers
        self._version = version
        self._reason = reason
        self._encoded = encoded
        self._keep_alive = keep_alive
        if self._no_body or status in _NO_BODY_STATUS:
            self._framing, self._remaining = _LENGTH, 0
        elif chunked:
            if length is not None:
                # Both framings (RFC 9112 6.3): chunked wins, and the connection is not
                # trusted with another request.
                self._keep_alive = False
            self._framing = _CHUNKED
        elif length is not None:
            self._framing, self._remaining = _LENGTH, length
        else:
            self._framing, self._keep_alive = _UNTIL_CLOSE, False
        return True

    def _parse_chunked(self) -> bool:
        buffer = self._buffer
        while True:
            if self._chunk_state == _DATA:
                end = self._pos + self._remaining
                if len(buffer) < end + 2:
                    return False
                if buffer[end : end + 2] != b"\r\n":
                    raise _Failure(httpx.RemoteProtocolError, "chunk not followed by CRLF")
                self._chunks.append(bytes(buffer[self._pos : end]))
                self._pos = end + 2
                self._chunk_state = _SIZE
                continue
            eol = buffer.find(b"\r\n", self._pos)
            if eol < 0:
                if len(buffer) - self._pos > _MAX_HEAD:
                    raise _Failure(httpx.RemoteProtocolError, "chunk header too long")
                return False
            line = bytes(buffer[self._pos : eol])
            self._pos = eol + 2
            if self._chunk_state == _TRAILER:
                if not line:
                    return True  # the blank line after the last chunk (and any trailers)
                continue
            size = line.split(b";", 1)[0].strip()
            if not size or size.strip(_HEX_DIGITS):  # int() would take "-2", "0x10", "1_0"
                raise _Failure(httpx.RemoteProtocolError, f"bad chunk size {size[:20]!r}")
            self._remaining = int(size, 16)
            self._chunk_state = _TRAILER if self._remaining == 0 else _DATA


class WireTransport(httpx.AsyncBaseTransport):
    """
    An httpx transport that speaks HTTP/1.1 itself, on asyncio's protocol API; asyncio only.

    The SDK's default on asyncio (through `AutoTransport`): the cheapest way to send a request
    from Python short of C. Responses are read in full before they are returned, so streaming
    a response body yields it in one chunk. httpx still follows redirects, keeps cookies and
    decodes ``Content-Encoding``. Differences from `httpx.AsyncHTTPTransport`: HTTP/1.1 only
    and no proxies.

    Args:
        limit: Most requests in flight (and connections open) at once; requests beyond it
            queue, bounded by the request's pool timeout. ``None`` means no limit.
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
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 or None, not {limit}")
        self._limit = limit
        self._keepalive_expiry = keepalive_expiry
        self._verify = verify
        self._ssl_context: ssl.SSLContext | None = None
        self._slots = Slots(limit) if limit is not None else None
        self._origins: dict[str, _Origin] = {}  # "scheme://authority" -> its pool
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._open = 0  # connections open, idle or busy

    def _bind(self) -> asyncio.AbstractEventLoop:
        """Bind to the running loop on first use, or explain why that cannot be."""
        self._loop = bind_loop("WireTransport", closed=self._closed, bound=self._loop is not None)
        return self._loop

    def _origin(self, prefix: str) -> _Origin:
        """The pool for "scheme://authority", parsed once."""
        origin = self._origins.get(prefix)
        if origin is None:
            url = httpx.URL(prefix)
            if url.scheme not in _DEFAULT_PORTS:
                raise httpx.UnsupportedProtocol(
                    f"WireTransport speaks http and https, not {url.scheme!r}",
                    request=httpx.Request("GET", prefix),
                )
            host = url.raw_host.decode("ascii")
            if ":" in host:
                host = f"[{host}]"
            origin = self._origins[prefix] = _Origin(url.scheme, host, url.port)
        return origin

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* and return its response with the body already read."""
        url = request.url
        try:
            body = request.content
        except httpx.RequestNotRead:
            body = await request.aread()
        raw = request.headers.raw
        lines = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
        chunked = False
        for name, value in raw:
            if _UNSAFE.search(name) or _UNSAFE.search(value):
                raise httpx.LocalProtocolError(
                    f"header {name[:40]!r} has a line break or NUL in its name or value",
                    request=bare_request(request.method, str(request.url)),
                )
            lines += (name, b": ", value, b"\r\n")
            if name.lower() == b"transfer-encoding":
                chunked = True
        lines.append(b"\r\n")
        if chunked:  # httpx streamed a body of unknown length; it is read now: one chunk
            if body:
                lines += (f"{len(body):x}\r\n".encode(), body, b"\r\n")
            lines.append(b"0\r\n\r\n")
        elif body:
            lines.append(body)
        prefix = f"{url.scheme}://{url.netloc.decode('ascii')}"
        reply = await self._exchange(
            prefix, b"".join(lines), request.method, request.extensions.get("timeout"), request
        )
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
        if start < 0:
            prefix, target = url, "/"
        else:
            prefix, target = url[:start], url[start:]
        origin = self._origins.get(prefix) or self._origin(prefix)
        if " " in target:
            raise httpx.LocalProtocolError(
                "the URL must be percent-encoded (it contains a space)",
                request=bare_request(method, url),
            )
        lines = [f"{method} {target} HTTP/1.1", f"Host: {origin.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in _BODY_METHODS:
            lines.append(f"Content-Length: {len(body) if body else 0}")
        lines += ("", "")
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise httpx.LocalProtocolError(
                "header names and values must not contain line breaks",
                request=bare_request(method, url),
            )
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise httpx.LocalProtocolError(
                "header names and values must be ASCII", request=bare_request(method, url)
            ) from None
        if body:
            data += body
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
            loop = self._bind()
        if timeouts is None:
            connect = read = write = pool = None
        else:
            connect = timeouts.get("connect")
            read = timeouts.get("read")
            write = timeouts.get("write")
            pool = timeouts.get("pool")
        origin = self._origins.get(prefix) or self._origin(prefix)
        slots = self._slots
        if slots is not None and not slots.try_acquire():
            try:
                await slots.acquire(loop, pool)
            except TimeoutError as exc:
                raise httpx.PoolTimeout(
                    "timed out waiting for a connection",
                    request=request or bare_request(method, url or prefix),
                ) from exc
        connection: _Connection | None = None
        try:
            connection = self._idle_connection(origin, loop)
            if connection is None:
                connection = await self._connect(origin, loop, connect)
            reply = await connection.send(data, method == "HEAD", read, write)
        except _Failure as failure:
            raise failure.kind(
                str(failure), request=request or bare_request(method, url or prefix)
            ) from None
        except httpx.TransportError as exc:
            if exc._request is None:  # raised by _connect, which knows no request
                exc.request = request or bare_request(method, url or prefix)
            raise
        except BaseException:  # cancelled: the connection's state is unknown
            if connection is not None:
                connection.abort()
            raise
        finally:
            if connection is not None:
                self._release(origin, connection, loop)
            if slots is not None:
                slots.release()
        return reply

    def _idle_connection(
        self, origin: _Origin, loop: asyncio.AbstractEventLoop
    ) -> _Connection | None:
        idle = origin.idle
        now = loop.time()
        while idle:
            connection = idle.pop()
            idled = now - connection.idle_since
            if (
                connection.reusable
                and idled < self._keepalive_expiry
                and (idled < _PROBE_AFTER or connection.still_open())
            ):
                return connection
            self._drop(connection)
        return None

    async def _connect(
        self, origin: _Origin, loop: asyncio.AbstractEventLoop, max_wait: float | None
    ) -> _Connection:
        if self._limit is not None and self._open >= self._limit:
            self._close_an_idle_connection()
        connection = _Connection(loop)
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
        except (OSError, ValueError) as exc:
            connection.abort()
            raise httpx.ConnectError(
                f"cannot connect to {origin.host_header}: {type(exc).__name__}: {exc}"
            ) from None
        except BaseException:
            connection.abort()
            raise
        self._open += 1
        return connection

    def _release(
        self, origin: _Origin, connection: _Connection, loop: asyncio.AbstractEventLoop
    ) -> None:
        if connection.transport is None:
            return  # never connected: nothing to count or close
        if connection.reusable and not self._closed:
            connection.idle_since = loop.time()
            origin.idle.append(connection)
        else:
            self._drop(connection)

    def _drop(self, connection: _Connection) -> None:
        self._open -= 1
        if not connection.closed:
            connection.closed = True
            assert connection.transport is not None
            connection.transport.close()

    def _close_an_idle_connection(self) -> None:
        """Make room under the limit: close the longest-idle connection of any origin."""
        oldest: _Origin | None = None
        for origin in self._origins.values():
            if origin.idle and (
                oldest is None or origin.idle[0].idle_since < oldest.idle[0].idle_since
            ):
                oldest = origin
        if oldest is not None:
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
            for connection in idle:
                self._drop(connection)


def bind_loop(name: str, *, closed: bool, bound: bool) -> asyncio.AbstractEventLoop:
    """
    The running asyncio loop for transport *name* to bind to on first use.

    Raises a `RuntimeError` that says what to do instead when the transport is *closed*,
    is already *bound* to another loop, or runs under another async library (trio).
    """
    if closed:
        raise RuntimeError(f"{name} is closed")
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        library = sniffio.current_async_library()
        raise RuntimeError(
            f"{name} needs asyncio but is running under {library}; "
            "use AutoTransport or httpx.AsyncHTTPTransport instead"
        ) from None
    if bound:
        raise RuntimeError(
            f"{name} is bound to the event loop it was first used in; "
            "create one transport per event loop"
        )
    return loop


def bare_request(method: str, url: str) -> httpx.Request:
    """A request for an httpx exception to carry: method and URL, no headers (no key)."""
    try:
        return httpx.Request(method, url)
    except httpx.InvalidURL:  # the URL itself is what was refused: keep its origin only
        origin = url[: url.find("/", url.find("//") + 2)] if "//" in url else url
        try:
            return httpx.Request(method, origin)
        except httpx.InvalidURL:
            return httpx.Request(method, "http://invalid.invalid/")
