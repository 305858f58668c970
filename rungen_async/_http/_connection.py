"""
One HTTP/1.1 connection on asyncio's protocol API; the bytes are parsed by httptools (llhttp,
the parser behind Node.js and uvicorn), and this module keeps only the glue: caps, deadlines,
and whether the connection may carry another request.

Failures are `Failure` (an httpx class and a message) until the pool adds the request, or
`TooLarge` for a response over a cap.
"""

from __future__ import annotations

import asyncio
import select
from typing import Final

import httptools
import httpx

from ._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES, TooLarge
from ._shared import Reply

__all__ = ["DEFAULT_BODY_TIMEOUT", "Connection", "Failure"]

#: Seconds the body of a response may take once its head has arrived (`WireTransport`).
DEFAULT_BODY_TIMEOUT: Final = 60.0
_CHUNK_ALLOWANCE: Final = 32  # framing bytes per chunk (size line, CRLFs) not counted as head


class Failure(Exception):
    """Why a connection could not deliver a response (turned into an httpx error later)."""

    def __init__(self, kind: type[httpx.TransportError], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _HeadOnly(Exception):
    """Stops the parser after the head of a response to HEAD (llhttp would read a body)."""


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: writes a request, parses the response, stays open if it may."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        max_head: int = MAX_HEAD_BYTES,
        max_body: int | None = MAX_BODY_BYTES,
        body_timeout: float | None = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False  # connection_lost (or our own close) happened
        self.idle_since = 0.0
        self.received = False  # any byte of the current response has arrived
        self._max_head = max_head
        self._max_body = max_body
        self._body_timeout = body_timeout
        self._waiter: asyncio.Future[Reply] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._paused = False
        self._timer: asyncio.TimerHandle | None = None
        self._keep_alive = False
        self._read: float | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.abort()  # bytes nobody asked for: never trust the connection again
            return
        self.received = True
        try:
            self._feed(data)
        except (Failure, TooLarge) as exc:
            self._fail(exc)
            self.abort()
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadOnly):
                self._keep_alive = False  # what follows the head is not ours to parse
                self._finish()
                return
            self._fail(cause if isinstance(cause, Failure | TooLarge) else self._bad(exc))
            self.abort()
        except httptools.HttpParserError as exc:
            if self._complete:
                self._keep_alive = False  # garbage after a whole response: never reuse
            else:
                self._fail(self._bad(exc))
                self.abort()
        if self._complete:
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
        if self._head_done and self._until_close and exc is None:
            self._finish()  # the close is what ends this body (a reset only cuts it short)
        elif exc is not None:
            self._fail(Failure(httpx.ReadError, f"{type(exc).__name__}: {exc}"))
        elif not self.received:
            self._fail(Failure(httpx.RemoteProtocolError, "Server disconnected without a response"))
        else:
            message = "Server disconnected in the middle of a response"
            self._fail(Failure(httpx.RemoteProtocolError, message))

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False
        drain, self._drain = self._drain, None
        if drain is not None and not drain.done():
            drain.set_result(None)

    # The request side
    async def send(
        self, data: bytes, head_only: bool, read: float | None, write: float | None
    ) -> Reply:
        """
        Write one request and wait for its whole response.

        *read* bounds both the wait between two reads and the whole head (a server trickling
        its head a byte at a time cannot hold the call longer); the body then has
        *body_timeout* seconds in all, still with *read* between reads.
        """
        transport = self.transport
        assert transport is not None
        self._reset(head_only)
        waiter: asyncio.Future[Reply] = self.loop.create_future()
        self._waiter = waiter
        try:
            transport.write(data)
            if self._paused:  # a big body filled the socket's buffer
                await self._drained(write)
            if read is not None:
                self._read = read
                self._deadline = self.loop.time() + read
                self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return await waiter
        finally:
            self._stop_timer()
            self._waiter = None
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # retrieved: asyncio logs nothing

    def _reset(self, head_only: bool) -> None:
        self.received = False
        self._parser = httptools.HttpResponseParser(self)
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)  # as h11
        self._head_only = head_only
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_seen = 0  # bytes fed before the head was complete
        self._after_head = 0  # bytes fed since (body, chunk framing, trailers)
        self._chunks = 0
        self._head_done = False
        self._until_close = False
        self._complete = False
        self._read = None
        self._deadline = self._last_read = self._body_started = 0.0
        self._encoded = False
        self._keep_alive = False

    async def _drained(self, write: float | None) -> None:
        while self._paused and not self.closed:
            drain: asyncio.Future[None] = self.loop.create_future()
            self._drain = drain
            try:
                async with asyncio.timeout(write):
                    await drain
            except TimeoutError:
                self.abort()
                raise Failure(httpx.WriteTimeout, "timed out writing the request") from None
        if self.closed and self._waiter is not None and not self._waiter.done():
            self._fail(Failure(httpx.WriteError, "connection closed while writing the request"))

    def _on_timer(self) -> None:
        self._timer = None
        read = self._read
        if self._waiter is None or self._waiter.done() or read is None:
            return
        now = self.loop.time()
        if self._deadline > now:  # bytes arrived since the timer was set: wait the rest
            self._timer = self.loop.call_at(self._deadline, self._on_timer)
            return
        if self._head_done:
            what = f"the response body did not arrive within {self._body_timeout:g} s"
            if now - self._last_read >= read:
                what = f"no response bytes for {read:g} s"
        elif not self.received:
            what = f"no response bytes for {read:g} s"
        else:
            what = f"the response head did not arrive within {read:g} s (the read timeout)"
        self._fail(Failure(httpx.ReadTimeout, what))
        self.abort()

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    def _fail(self, exc: Exception) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def _finish(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        version = b"HTTP/" + self._parser.get_http_version().encode()
        waiter.set_result(
            Reply(
                self._status,
                b"".join(self._body),
                self._headers,
                encoded=self._encoded,
                version=version,
                reason=self._reason,
            )
        )

    # The response side: what the buffer fed to the parser
    def _feed(self, data: bytes) -> None:
        parser = self._parser
        if self._read is not None:  # a read moves the idle limit on, never the head's
            self._last_read = now = self.loop.time()
            self._push_deadline(now)
        if not self._head_done:
            budget = self._max_head - self._head_seen
            if len(data) > budget:
                parser.feed_data(memoryview(data)[:budget])
                if not self._head_done:
                    raise self._too_large("response head", self._max_head, "max_head_bytes")
                data = data[budget:]
            else:
                self._head_seen += len(data)
                parser.feed_data(data)
                return
        self._after_head += len(data)
        parser.feed_data(data)
        if self._after_head - self._body_size > self._max_head + _CHUNK_ALLOWANCE * self._chunks:
            raise self._too_large("response trailers", self._max_head, "max_head_bytes")

    def _push_deadline(self, now: float) -> None:
        assert self._read is not None
        if self._head_done:
            body_due = self._body_started + (self._body_timeout or float("inf"))
            self._deadline = min(now + self._read, body_due)

    @staticmethod
    def _too_large(what: str, limit: int, knob: str) -> TooLarge:
        message = (
            f"the {what} is over {limit:,} bytes (the {knob} limit); raise it with "
            f"AsyncRunGen({knob}=...) or WireTransport({knob}=...)"
        )
        return TooLarge(message, limit=limit)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self._complete:  # a second response where one was asked for
            self._keep_alive = False

    def on_status(self, reason: bytes) -> None:
        if not self._complete:
            self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._head_done:  # trailers are read (and capped) but not kept
            # llhttp trims trailing whitespace only from a value's last piece.
            self._headers.append((name, value.strip(b" \t")))

    def on_headers_complete(self) -> None:
        if self._complete:
            return
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:
            message = f"the server sent status {status:03d}, outside 100-599"
            raise Failure(httpx.RemoteProtocolError, message)
        if status == 101:
            raise Failure(httpx.RemoteProtocolError, "the server switched protocols")
        self._framing_checks(has_body=status >= 200 and status not in (204, 304))
        if status < 200:
            return  # informational: llhttp ends it here, and the real response follows
        self._status = status
        self._head_done = True
        if self._read is not None:
            self._body_started = self.loop.time()
            self._push_deadline(self._body_started)
        if self._head_only:
            raise _HeadOnly

    def _framing_checks(self, *, has_body: bool) -> None:
        length = chunked = False
        self._encoded = False
        for name, value in self._headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                if value.lower() != b"chunked":  # no other coding is undone here
                    message = f"unsupported Transfer-Encoding {value[:40]!r}"
                    raise Failure(httpx.RemoteProtocolError, message)
                chunked = True
            elif lower == b"content-length":
                length = True
                limit = self._max_body if has_body and not self._head_only else None
                if limit is not None and value.isdigit() and int(value) > limit:
                    raise self._too_large("response body", limit, "max_body_bytes")
            elif lower == b"content-encoding":
                self._encoded = value.lower() not in (b"", b"identity")
        self._until_close = not length and not chunked

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._max_body is not None and self._body_size > self._max_body:
            raise self._too_large("response body", self._max_body, "max_body_bytes")
        self._body.append(body)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        if self._complete:
            return
        if not self._status:  # the end of a 1xx: start the real response afresh
            self._reason, self._headers = b"", []
            return
        self._complete = True
        self._keep_alive = not self._head_only and self._parser.should_keep_alive()

    def _bad(self, exc: Exception) -> Failure:
        return Failure(httpx.RemoteProtocolError, f"malformed response from the server: {exc}")

    # The pool's questions
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
        would fail. A look at the socket (a zero-timeout poll, as httpcore's
        ``has_expired()``) tells now.
        """
        if self.closed:
            return False
        transport = self.transport
        sock = transport.get_extra_info("socket") if transport is not None else None
        if sock is None:
            return True
        fd = sock.fileno()
        if fd < 0:
            return False
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
