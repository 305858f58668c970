"""
One HTTP/1.1 connection on asyncio's protocol API: writes a request, hands the bytes that
arrive to a `ResponseReader` (httptools), bounds the wait with deadlines, and tells the pool
whether the connection may carry another request.

Failures are `Failure` (an httpx class and a message) until the pool adds the request, or
`TooLarge` for a response over a cap.
"""

from __future__ import annotations

import asyncio
import select
from typing import Final

import httpx

from ._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES, TooLarge
from ._response import Failure, ResponseReader
from ._shared import Reply

__all__ = ["DEFAULT_BODY_TIMEOUT", "Connection", "Failure"]

#: Seconds the body of a response may take once its head has arrived (`WireTransport`).
DEFAULT_BODY_TIMEOUT: Final = 60.0
_POLL: Final = hasattr(select, "poll")


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
        self._fd = -1  # the socket's, for the idle check
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
        self._reader: ResponseReader | None = None
        self._read: float | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        self._fd = sock.fileno() if sock is not None else -1

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        if reader is None or self._waiter is None or self._waiter.done():
            self.abort()  # bytes nobody asked for: never trust the connection again
            return
        self.received = True
        had_head = reader.head_done
        try:
            complete = reader.feed(data)
        except (Failure, TooLarge) as exc:
            self._fail(exc)
            self.abort()
            return
        if self._read is not None:
            now = self.loop.time()
            if reader.head_done and not had_head:
                self._body_due = now + (self._body_timeout or float("inf"))
            if reader.head_done:  # a read moves the idle limit on, never the head's
                self._last_read = now
                self._deadline = min(now + self._read, self._body_due)
        if complete:
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
        reader = self._reader
        if reader is not None and reader.head_done and reader.until_close and exc is None:
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
            if self._reader is not None:
                self._reader.close()
            if not waiter.done():
                waiter.cancel()
            elif not waiter.cancelled():
                waiter.exception()  # retrieved: asyncio logs nothing

    def _reset(self, head_only: bool) -> None:
        self.received = False
        self._reader = ResponseReader(
            max_head=self._max_head, max_body=self._max_body, head_only=head_only
        )
        self._read = None
        self._deadline = self._last_read = self._body_due = 0.0

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
        if self._reader is not None and self._reader.head_done:
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
        waiter, reader = self._waiter, self._reader
        if waiter is not None and not waiter.done() and reader is not None:
            waiter.set_result(reader.reply())

    # The pool's questions
    @property
    def reusable(self) -> bool:
        """Whether the last response left the connection fit for another request."""
        transport = self.transport
        return (
            self._reader is not None
            and self._reader.complete
            and self._reader.keep_alive
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
        fd = self._fd  # asyncio reports the loss (setting closed) before it closes the fd
        if fd < 0:
            return True
        if _POLL:
            poller = select.poll()
            poller.register(fd, select.POLLIN)
            return not poller.poll(0)
        return not select.select([fd], [], [], 0)[0]

    def abort(self) -> None:
        """Drop the connection at once."""
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
