"""
WireTransport's bounds: the head, trailer and body caps (refused early, nothing large held)
and `httpx.Limits` in full (connections, idle connections kept, keep-alive expiry).
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import anyio.abc
import httpx
import pytest

from rungen_async import AsyncRunGen, ResponseTooLargeError
from rungen_async._http import _pool
from rungen_async._http._connection import Connection
from rungen_async._http._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES, TooLarge
from rungen_async._http._pool import WireTransport
from tests.test_http_engines import raw_server
from tests.test_wire_transport import GUARD, RequestReader, Server, ok

MiB = 1 << 20


@pytest.fixture
def anyio_backend() -> str:
    """WireTransport runs only on asyncio."""
    return "asyncio"


@pytest.fixture
def received(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The bytes every connection of the test was handed by the event loop, in all."""
    total = [0]

    class Counted(Connection):
        def data_received(self, data: bytes) -> None:
            total[0] += len(data)
            super().data_received(data)

    monkeypatch.setattr(_pool, "Connection", Counted)
    return total


def flood(head: bytes, piece: bytes, most: int) -> Any:
    """A handler that answers *head* and then *piece* over and over, up to *most* bytes."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await RequestReader(stream).next()
        await stream.send(head)
        sent = 0
        try:
            while sent < most:
                await stream.send(piece)
                sent += len(piece)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            pass  # the client hung up, as it should

    return handle


async def test_200_mib_of_trailers_is_refused_early(received: list[int]) -> None:
    """A chunked answer whose trailers never end is TooLarge, after little more than the cap."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: "
    async with (
        raw_server(flood(head, b"a" * 65536, 200 * MiB)) as url,
        WireTransport() as transport,
    ):
        with pytest.raises(TooLarge, match=r"trailer section over .* max_head_bytes") as error:
            await transport.exchange("GET", url, {}, None, GUARD)

    assert error.value.limit == MAX_HEAD_BYTES
    assert received[0] < 2 * MiB


async def test_1_gib_chunked_body_is_refused_at_the_body_cap(received: list[int]) -> None:
    """A body over 32 MiB is TooLarge once 32 MiB have arrived, not once 1 GiB has."""
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    piece = b"10000\r\n" + b"x" * 65536 + b"\r\n"
    async with raw_server(flood(head, piece, 1024 * MiB)) as url, WireTransport() as transport:
        with pytest.raises(TooLarge, match=r"body over 33,554,432 bytes") as error:
            await transport.exchange("GET", url, {}, None, GUARD)

    assert error.value.limit == MAX_BODY_BYTES
    assert received[0] < MAX_BODY_BYTES + 2 * MiB


async def test_a_declared_length_over_the_cap_is_refused_before_the_body(
    received: list[int],
) -> None:
    """Content-Length: 1 GiB against max_body_bytes=1000 fails on the head alone."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n"
    async with (
        raw_server(flood(head, b"x" * 65536, 1024 * MiB)) as url,
        WireTransport(max_body_bytes=1000) as transport,
    ):
        with pytest.raises(TooLarge, match=r"raise it with AsyncRunGen\(max_body_bytes=") as e:
            await transport.exchange("GET", url, {}, None, GUARD)

    assert e.value.limit == 1000
    assert received[0] < 4 * MiB


async def test_max_head_bytes_is_a_constructor_argument() -> None:
    """A head over a lowered cap is refused; the same head fits the default."""
    answer = ok(b"ok", "X-Big: " + "a" * 2000)
    server = Server(lambda _: answer)
    async with raw_server(server.handle) as url:
        async with WireTransport(max_head_bytes=1000) as small:
            with pytest.raises(TooLarge, match="head over 1,000 bytes"):
                await small.exchange("GET", url, {}, None, GUARD)
        async with WireTransport() as default:
            assert (await default.exchange("GET", url, {}, None, GUARD)).content == b"ok"


async def test_max_connections_bounds_connections_open_at_once() -> None:
    """httpx.Limits(max_connections=2): five concurrent requests never use a third socket."""
    release = anyio.Event()
    open_now = most = 0

    async def handle(stream: anyio.abc.SocketStream) -> None:
        nonlocal open_now, most
        open_now += 1
        most = max(most, open_now)
        reader = RequestReader(stream)
        try:
            while await reader.next() is not None:
                await release.wait()
                await stream.send(ok())
        finally:
            open_now -= 1

    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with (
        raw_server(handle) as url,
        WireTransport(limits=limits) as transport,
        anyio.create_task_group() as tg,
    ):
        for _ in range(5):
            tg.start_soon(transport.exchange, "GET", url, {}, None, GUARD)
        while open_now < 2:
            await anyio.lowlevel.checkpoint()
        release.set()

    assert most == 2


async def test_max_keepalive_connections_bounds_idle_connections_kept() -> None:
    """httpx.Limits(max_keepalive_connections=1): after a burst on 3, only one stays open."""
    server = Server()
    limits = httpx.Limits(max_connections=3, max_keepalive_connections=1)
    async with raw_server(server.handle) as url, WireTransport(limits=limits) as transport:
        async with anyio.create_task_group() as tg:
            for _ in range(3):
                tg.start_soon(transport.exchange, "GET", url, {}, None, GUARD)
        await server.wait_until(lambda: len(server.ended) == 2)
        after = await transport.exchange("GET", url, {}, None, GUARD)

    assert after.content == b"ok"
    assert len(set(server.connections)) == 3
    assert server.connections[-1] not in server.ended  # the one kept served the last


async def test_keepalive_expiry_is_honoured_however_short_the_idle_time() -> None:
    """An idle connection past its expiry is closed and replaced, never reused."""
    server = Server()
    limits = httpx.Limits(keepalive_expiry=30.0)
    async with raw_server(server.handle) as url, WireTransport(limits=limits) as transport:
        await transport.exchange("GET", url, {}, None, GUARD)
        await transport.exchange("GET", url, {}, None, GUARD)  # warm: reused
        loop = asyncio.get_running_loop()
        for origin in transport._origins.values():  # as if 30 s had passed
            for connection in origin.idle:
                connection.idle_since = loop.time() - 30.0
        await transport.exchange("GET", url, {}, None, GUARD)
        await server.wait_until(lambda: 1 in server.ended)

    assert server.connections == [1, 1, 2]


async def test_async_rungen_passes_its_caps_to_the_default_transport() -> None:
    """AsyncRunGen(max_body_bytes=...) bounds what its own WireTransport will read."""
    job = b'{"id": "job_1", "status": "COMPLETED", "output": "' + b"x" * 5000 + b'"}'
    server = Server(lambda _: ok(job, "Content-Type: application/json"))
    async with raw_server(server.handle) as url:
        async with AsyncRunGen("rg-key", base_url=url, max_body_bytes=1000) as small:
            with pytest.raises(ResponseTooLargeError, match="max_body_bytes") as error:
                await small.get_job("app_1", "job_1")
        async with AsyncRunGen("rg-key", base_url=url) as default:
            assert (await default.get_job("app_1", "job_1")).id == "job_1"

    assert isinstance(error.value.__cause__, TooLarge)
    assert error.value.limit == 1000
    assert len(server.requests) == 2  # refused at once, not retried
