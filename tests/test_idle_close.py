"""
WireTransport against servers that close kept-alive connections, as nginx does after
``keepalive_timeout`` or ``keepalive_requests``: no GET may be lost to the race between the
server's close and the client's reuse, and a POST stays ambiguous unless provably unsent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
import anyio.abc
import httpx
import pytest

from rungen_async._http._pool import WireTransport
from tests.test_http_engines import raw_server
from tests.test_wire_transport import GUARD, RequestReader, ok

Handler = Callable[[anyio.abc.SocketStream], Awaitable[None]]


@pytest.fixture
def anyio_backend() -> str:
    """WireTransport runs only on asyncio."""
    return "asyncio"


class ClosingServer:
    """
    Closes each connection right after its *every*-th response, with no ``Connection: close``
    (nginx's ``keepalive_requests``, or an idle close landing just after an answer), or, when
    ``drop(connection, request)`` (both counted from 1) says so, on reading that request,
    unanswered: the close arrives just as the client reuses the connection.
    """

    def __init__(
        self,
        *,
        every: int | None = None,
        drop: Callable[[int, int], bool] = lambda connection, request: False,
    ) -> None:
        self.every = every
        self.drop = drop
        self.connections = 0
        self.requests: list[tuple[int, bytes]] = []  # (connection number, request line)

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        reader = RequestReader(stream)
        served = 0
        while (request := await reader.next()) is not None:
            self.requests.append((number, request.split(b"\r\n", 1)[0]))
            if self.drop(number, served + 1):
                return  # closed unanswered (raw_server closes the stream)
            await stream.send(ok())
            served += 1
            if served == self.every:
                return


def on_request(index: int) -> Callable[[int, int], bool]:
    """Drop every connection on its *index*-th request."""
    return lambda connection, request: request == index


async def test_two_thousand_gets_lose_none_to_servers_closing_after_answers() -> None:
    """Connections closed just after their 3rd answer: every one of 2,000 GETs succeeds."""
    server = ClosingServer(every=3)
    failures: list[Exception] = []

    async def fetch(transport: WireTransport, url: str, count: int) -> None:
        for _ in range(count):
            try:
                await transport.exchange("GET", url, {}, None, GUARD)
            except httpx.TransportError as exc:
                failures.append(exc)

    async with (
        raw_server(server.handle) as url,
        WireTransport(limit=4) as transport,
        anyio.create_task_group() as tg,
    ):
        for _ in range(4):
            tg.start_soon(fetch, transport, url, 500)

    assert failures == []
    assert len(server.requests) >= 2000
    assert server.connections >= 2000 // 3


@pytest.mark.parametrize("method", ["GET", "DELETE", "PUT"])
async def test_idempotent_request_is_resent_once_when_a_reused_connection_dies_unanswered(
    method: str,
) -> None:
    """The server closes as the client reuses the connection: sent again on a new one."""
    server = ClosingServer(drop=on_request(2))
    async with raw_server(server.handle) as url, WireTransport() as transport:
        first = await transport.exchange("GET", url, {}, None, GUARD)
        second = await transport.exchange(method, f"{url}/again", {}, None, GUARD)

    assert (first.content, second.content) == (b"ok", b"ok")
    assert [number for number, _ in server.requests] == [1, 1, 2]
    assert server.requests[2][1] == f"{method} /again HTTP/1.1".encode()


async def test_post_on_a_reused_connection_that_dies_unanswered_stays_ambiguous() -> None:
    """A POST that reached the server is never re-sent by the transport: Core decides."""
    server = ClosingServer(drop=on_request(2))
    async with raw_server(server.handle) as url, WireTransport() as transport:
        await transport.exchange("GET", url, {}, None, GUARD)
        with pytest.raises(httpx.RemoteProtocolError, match="without a response"):
            await transport.exchange("POST", f"{url}/run", {}, b"{}", GUARD)

    assert [number for number, _ in server.requests] == [1, 1]


async def test_a_request_on_a_fresh_connection_is_not_resent() -> None:
    """Only a reused connection may have been closed by an idle timer: a new one is not."""
    server = ClosingServer(drop=on_request(1))
    async with raw_server(server.handle) as url, WireTransport() as transport:
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.exchange("GET", url, {}, None, GUARD)

    assert len(server.requests) == 1


async def test_the_resend_happens_once() -> None:
    """If the new connection dies unanswered too, the error surfaces (no loop)."""
    server = ClosingServer(
        drop=lambda connection, request: request == (2 if connection == 1 else 1)
    )
    async with raw_server(server.handle) as url, WireTransport() as transport:
        await transport.exchange("GET", url, {}, None, GUARD)
        with pytest.raises(httpx.RemoteProtocolError):
            await transport.exchange("GET", url, {}, None, GUARD)

    assert [number for number, _ in server.requests] == [1, 1, 2]
