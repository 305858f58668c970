"""
WireTransport's response parsing against h11 (a differential test over generated responses,
valid and broken, split anywhere) and against httpx's own transport on hostile servers.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Awaitable, Callable
from typing import NamedTuple

import anyio.abc
import h11
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rungen_async import APIProtocolError, AsyncRunGen, RetryPolicy
from rungen_async._http._connection import Failure
from rungen_async._http._limits import TooLarge
from rungen_async._http._pool import WireTransport
from tests.test_http_engines import raw_server
from tests.test_wire_transport import GUARD, RequestReader, connect, settled, start_sending


@pytest.fixture
def anyio_backend() -> str:
    """WireTransport runs only on asyncio."""
    return "asyncio"


class Outcome(NamedTuple):
    """What a parser made of a response: ``None`` fields when it refused it."""

    accepted: bool
    status: int | None = None
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""


def h11_reads(pieces: list[bytes]) -> Outcome:
    """h11's reading of *pieces* (then the server's close) as the answer to a GET."""
    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/", headers=[("Host", "api.test")]))
    connection.send(h11.EndOfMessage())
    response: h11.Response | None = None
    body = b""
    try:
        for piece in [*pieces, b""]:
            connection.receive_data(piece)
            while (event := connection.next_event()) is not h11.NEED_DATA:
                if isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    assert response is not None
                    headers = tuple(
                        (name.lower(), value) for name, value in response.headers.raw_items()
                    )
                    return Outcome(True, response.status_code, headers, body)
                elif isinstance(event, h11.ConnectionClosed):
                    return Outcome(False)
    except h11.RemoteProtocolError:
        return Outcome(False)
    return Outcome(False)


async def sdk_reads(pieces: list[bytes]) -> Outcome:
    """The SDK connection's reading of the same bytes and close."""
    connection, transport = connect()
    task = await start_sending(connection)
    for piece in pieces:
        connection.data_received(piece)
    transport.peer_closes()
    try:
        reply = await settled(task)
    except (Failure, TooLarge):
        return Outcome(False)
    headers = tuple((name.lower(), value) for name, value in reply.headers)
    return Outcome(True, reply.status_code, headers, reply.content)


TOKEN = string.ascii_letters + string.digits + "-"
names = st.text(TOKEN, min_size=1, max_size=10).filter(
    lambda name: name.lower() not in {"content-length", "transfer-encoding", "connection"}
)
values = st.text(string.ascii_letters + string.digits + " ;=/,", max_size=16).map(str.strip)
# h11 takes other control bytes in a value, llhttp refuses them: see the test below.
BAD_BYTES = [b"\x00", b"\r", b"\n", b" ", b":"]
BAD_CHUNK_SIZES = [b"zz", b"-1", b"0x2", b"1_0", b"", b"+2", b"fffffffffffffffffff"]


@st.composite
def responses(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    """
    A response, well formed or broken in one of the ways servers break them, split; and
    whether a broken header became an obs-fold (a line that continues the one before).
    """
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))
    code = draw(st.integers(200, 599) | st.integers(0, 999))
    status = b"HTTP/1.1 " + f"{code:03d}".encode() + b" " + draw(st.sampled_from([b"OK", b""]))
    body = draw(st.binary(max_size=64))
    headers = [
        f"{name}: {value}".encode()
        for name, value in draw(st.lists(st.tuples(names, values), max_size=4))
    ]
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    if framing == "length":
        headers.append(f"Content-Length: {len(body)}".encode())
    elif framing == "chunked":
        headers.append(b"Transfer-Encoding: chunked")
    folded = False
    if draw(st.booleans()) and headers:  # a forbidden byte inside a header
        index = draw(st.integers(0, len(headers) - 1))
        cut = draw(st.integers(0, len(headers[index])))
        bad, rest = draw(st.sampled_from(BAD_BYTES)), headers[index][cut:]
        folded = (bad == b" " and cut == 0) or (bad == b"\n" and rest[:1] in (b" ", b"\t"))
        headers[index] = headers[index][:cut] + bad + rest
    wire = b""
    if draw(st.booleans()):
        wire += b"HTTP/1.1 100 Continue" + eol + eol
    wire += status + eol + b"".join(header + eol for header in headers) + eol
    if framing == "chunked":
        for start in range(0, len(body), 16):
            size = f"{len(body[start : start + 16]):x}".encode()
            wire += size + b"\r\n" + body[start : start + 16] + b"\r\n"
        if draw(st.booleans()):
            wire += draw(st.sampled_from(BAD_CHUNK_SIZES)) + b"\r\nab\r\n"
        wire += b"0\r\n" + draw(st.sampled_from([b"", b"Trailer-A: x\r\n"])) + b"\r\n"
    else:
        wire += body
    cuts = sorted(draw(st.sets(st.integers(1, max(1, len(wire) - 1)), max_size=10)))
    return [wire[a:b] for a, b in itertools.pairwise([0, *cuts, len(wire)]) if b > a], folded


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response=responses())
async def test_connection_agrees_with_h11_on_any_response(
    response: tuple[list[bytes], bool],
) -> None:
    """Accept or refuse, status, headers and body: as h11, but for a status past 599."""
    pieces, folded = response
    expected = h11_reads(pieces)
    if expected.accepted and expected.status is not None and expected.status > 599:
        expected = Outcome(False)  # h11 takes any 3 digits; RFC 9110 15 stops at 599
    if folded:
        expected = Outcome(False)  # h11 unfolds obs-fold; llhttp refuses it, as main did

    assert await sdk_reads(pieces) == expected


HOSTILE = {
    "status-000-then-a-job": (
        b'HTTP/1.1 000 OK\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n{"id":"evil"}\n'
    ),
    "cr-in-header-value": b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\nok",
    "nul-in-header-value": b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    "bad-chunk-size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n",
}


def serving(answer: bytes) -> Callable[[anyio.abc.SocketStream], Awaitable[None]]:
    """A raw server handler that reads one request, sends *answer* and keeps the line open."""

    async def handle(stream: anyio.abc.SocketStream) -> None:
        await RequestReader(stream).next()
        await stream.send(answer)
        await anyio.sleep_forever()  # a timeout, not a close, would end a lenient read

    return handle


@pytest.mark.parametrize("answer", list(HOSTILE.values()), ids=list(HOSTILE))
async def test_hostile_answer_is_refused_at_once_as_httpx_refuses_it(answer: bytes) -> None:
    """A broken status line, header or chunk is a RemoteProtocolError at once, never a body."""
    async with raw_server(serving(answer)) as url:
        outcomes: dict[str, BaseException] = {}
        for name, transport in [
            ("sdk", WireTransport()),
            ("httpx", httpx.AsyncHTTPTransport()),
        ]:
            async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
                with pytest.raises(httpx.RemoteProtocolError) as error:
                    await client.get(url)
                outcomes[name] = error.value

    assert "timed out" not in str(outcomes["sdk"])


async def test_status_000_names_what_the_server_sent() -> None:
    """The error says which status the server sent, so the user knows it was the server."""
    answer = HOSTILE["status-000-then-a-job"]
    async with raw_server(serving(answer)) as url, WireTransport() as transport:
        with pytest.raises(httpx.RemoteProtocolError, match="status 000, outside 100-599"):
            await transport.exchange("GET", url, {}, None, GUARD)


async def test_bare_lf_line_endings_are_parsed_as_httpx_parses_them() -> None:
    """A head with LF-only line endings is read (as httpx reads it), not a timeout."""
    answer = b"HTTP/1.1 200 OK\nContent-Length: 2\nX-A: b\n\nok"
    async with raw_server(serving(answer)) as url:
        bodies = []
        for transport in (WireTransport(), httpx.AsyncHTTPTransport()):
            async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
                response = await client.get(url)
                bodies.append((response.status_code, response.headers["x-a"], response.content))

    assert bodies == [(200, "b", b"ok")] * 2


async def test_a_control_byte_in_a_header_value_is_refused_where_httpx_takes_it() -> None:
    """RFC 9110 5.5 allows no control byte but HTAB in a value; llhttp holds to it, h11 not."""
    answer = b"HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok"
    async with raw_server(serving(answer)) as url:
        async with WireTransport() as transport:
            with pytest.raises(httpx.RemoteProtocolError, match="header value char"):
                await transport.exchange("GET", url, {}, None, GUARD)
        async with httpx.AsyncClient(timeout=5.0) as client:
            assert (await client.get(url)).headers["x-a"] == "a\x01b"


async def test_async_rungen_reports_a_hostile_answer_as_a_protocol_error() -> None:
    """Through the client, status 000 and an injected job is APIProtocolError, no job."""
    async with (
        raw_server(serving(HOSTILE["status-000-then-a-job"])) as url,
        AsyncRunGen("rg-key", base_url=url, retry=RetryPolicy.disabled()) as client,
    ):
        with pytest.raises(APIProtocolError, match="status 000"):
            await client.get_job("app_1", "job_1")
