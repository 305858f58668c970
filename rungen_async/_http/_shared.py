"""
What the SDK's asyncio engines share: the `Reply` of the fast lane, the slot queue that bounds
requests in flight, binding to the running loop, and the header-free request errors carry.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Final

import httpx
import sniffio

__all__ = [
    "DEFAULT_KEEPALIVE_EXPIRY",
    "DEFAULT_LIMIT",
    "Reply",
    "Slots",
    "bare_request",
    "bind_loop",
]

DEFAULT_LIMIT: Final = 64
DEFAULT_KEEPALIVE_EXPIRY: Final = 5.0  # httpx.Limits' default
_HTTP_11: Final = b"HTTP/1.1"


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
