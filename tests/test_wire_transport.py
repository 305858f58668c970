"""
WireTransport's own behaviour: its response parser (driven without sockets) and its pool,
request writing and `exchange()` fast path against raw loopback servers started by each test.

The generic transport contract (round trips, statuses, gzip, timeouts, limits) is covered by
tests/test_aiohttp_transport.py, which runs against every asyncio transport of the SDK.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import itertools
import socket
import string
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, NamedTuple, cast

import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rungen_async._http._connection import Connection, Failure
from rungen_async._http._limits import MAX_HEAD_BYTES, TooLarge
from rungen_async._http._pool import WireTransport
from rungen_async._http._shared import Reply
from tests.test_http_engines import free_port, raw_server

RawHandler = Callable[[anyio.abc.SocketStream], Awaitable[None]]

REQUEST = b"GET / HTTP/1.1\r\nHost: api.test\r\n\r\n"


@pytest.fixture
def anyio_backend() -> str:
    """WireTransport runs only on asyncio."""
    return "asyncio"


# The parser, driven without sockets


class FakeTransport(asyncio.Transport):
    """Records what the protocol writes; closing it reports the loss as a real transport does."""

    def __init__(self, protocol: asyncio.Protocol) -> None:
        super().__init__()
        self.protocol = protocol
        self.written = bytearray()
        self.closing = False
        self.loop = asyncio.get_running_loop()

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self._lose()

    def abort(self) -> None:
        self._lose()

    def peer_closes(self, exc: Exception | None = None) -> None:
        """The server ends the connection: EOF (or an error), then the loss."""
        if exc is None:
            self.protocol.eof_received()
        self._lose(exc)

    def _lose(self, exc: Exception | None = None) -> None:
        if not self.closing:
            self.closing = True
            self.loop.call_soon(self.protocol.connection_lost, exc)


def connect(clock: ManualClock | None = None) -> tuple[Connection, FakeTransport]:
    """A `Connection` on a fake transport, its timers on *clock* if one is given."""
    loop = clock or asyncio.get_running_loop()
    connection = Connection(cast(asyncio.AbstractEventLoop, loop))
    transport = FakeTransport(connection)
    connection.connection_made(transport)
    return connection, transport


async def start_sending(
    connection: Connection, *, head_only: bool = False, read: float | None = None
) -> asyncio.Task[Reply]:
    """Send `REQUEST` in a task and return once it waits for the response."""
    task = asyncio.get_running_loop().create_task(connection.send(REQUEST, head_only, read, None))
    await anyio.lowlevel.checkpoint()
    assert not task.done()
    return task


async def respond(
    pieces: Iterable[bytes], *, head_only: bool = False, peer_closes: bool = False
) -> tuple[Reply, Connection, FakeTransport]:
    """Feed the response *pieces* to a fresh connection and return what `send` made of them."""
    connection, transport = connect()
    task = await start_sending(connection, head_only=head_only)
    for piece in pieces:
        connection.data_received(piece)
    if peer_closes:
        transport.peer_closes()
    reply = await settled(task)
    assert bytes(transport.written) == REQUEST
    return reply, connection, transport


async def settled(task: asyncio.Task[Reply]) -> Reply:
    """The outcome of *task*, which must finish within a few turns of the loop."""
    for _ in range(10):
        if task.done():
            return await task
        await anyio.lowlevel.checkpoint()
    task.cancel()
    raise AssertionError("the request is still waiting for its response")


def split(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Case(NamedTuple):
    """A well-formed response on the wire and what the parser must make of it."""

    pieces: list[bytes]
    head_only: bool
    peer_closes: bool
    status: int
    reason: bytes
    version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    encoded: bool
    reusable: bool


TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"
VCHAR = "".join(map(chr, range(0x21, 0x7F)))
FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection", "content-encoding"}
INFORMATIONAL = [
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n",
]

header_names = st.text(TCHAR, min_size=1, max_size=12).filter(
    lambda name: name.lower() not in FRAMING_HEADERS
)
header_values = st.text(VCHAR + " \t", max_size=20)
padding = st.sampled_from(["", " ", "  ", "\t"])


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Any well-formed response: framing, codings, 1xx preludes, split anywhere."""
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 304, 404, 500]) | st.integers(200, 599))
    reason = draw(st.text(string.ascii_letters + " ", max_size=20)).encode()
    head_only = draw(st.booleans())
    body = draw(st.binary(max_size=300))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    connection = draw(
        st.sampled_from([None, "close", "Close", "keep-alive", "Keep-Alive", "TE, close"])
    )
    coding = draw(st.sampled_from([None, "gzip", "GZip", "identity", ""]))

    headers: list[tuple[str, str]] = []  # as sent
    for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=6)):
        headers.append((name, draw(padding) + value + draw(padding)))
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", draw(st.sampled_from(["chunked", "Chunked"]))))
    if connection is not None:
        headers.append(("Connection", connection))
    if coding is not None:
        headers.append(("Content-Encoding", coding))
    headers = draw(st.permutations(headers))

    no_body = head_only or status in (204, 304)
    sent_body = b""
    if not no_body and framing == "chunked":
        cuts = sorted(draw(st.sets(st.integers(1, max(1, len(body) - 1)), max_size=8)))
        bounds = [0, *(cut for cut in cuts if cut < len(body)), len(body)]
        for start, end in itertools.pairwise(bounds):
            if end > start:
                size = draw(st.sampled_from(["{:x}", "{:X}", "0{:x}"])).format(end - start)
                extension = draw(st.sampled_from(["", ";a=b", ";name", ';q="x;y"']))
                sent_body += f"{size}{extension}\r\n".encode() + body[start:end] + b"\r\n"
        sent_body += b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n"
        for name, value in draw(st.lists(st.tuples(header_names, header_values), max_size=2)):
            sent_body += f"{name}: {value}\r\n".encode()
        sent_body += b"\r\n"
    elif not no_body:
        sent_body = body

    status_line = version + f" {status}".encode() + (b" " + reason if reason else b"")
    head = b"".join(draw(st.lists(st.sampled_from(INFORMATIONAL), max_size=2)))
    head += status_line + b"\r\n"
    head += b"".join(f"{name}:{value}\r\n".encode() for name, value in headers)
    wire = head + b"\r\n" + sent_body

    if draw(st.booleans()):
        pieces = split(wire, 1)
    else:
        cuts = sorted(draw(st.sets(st.integers(1, len(wire) - 1), max_size=12)))
        bounds = [0, *cuts, len(wire)]
        pieces = [wire[start:end] for start, end in itertools.pairwise(bounds)]

    until_close = framing == "close" and not no_body
    if connection is not None and "close" in connection.lower():
        keep_alive = False
    else:
        keep_alive = version == b"HTTP/1.1" or connection is not None
    return Case(
        pieces=pieces,
        head_only=head_only,
        peer_closes=until_close,
        status=status,
        reason=reason,
        version=version,
        headers=[(name.encode(), value.strip(" \t").encode()) for name, value in headers],
        body=b"" if no_body else body,
        encoded=coding is not None and coding.lower() not in ("", "identity"),
        # After the head of a HEAD answer llhttp cannot say where it stopped: not reused.
        reusable=keep_alive and not until_close and not head_only,
    )


@settings(max_examples=300, deadline=None)
@given(case=cases())
async def test_parser_reads_any_well_formed_response_however_it_is_split(case: Case) -> None:
    """Status, headers, body, coding, version and reuse come out right for any TCP split."""
    reply, connection, _ = await respond(
        case.pieces, head_only=case.head_only, peer_closes=case.peer_closes
    )

    assert reply.status_code == case.status
    assert reply.reason == case.reason
    assert reply.version == case.version
    assert reply.headers == case.headers
    assert reply.content == case.body
    assert reply.encoded is case.encoded
    assert connection.reusable is case.reusable


BIG_HEAD = b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (70 * 1024)
MALFORMED = {
    "status-line-no-code": b"HTTP/1.1 OK\r\nContent-Length: 0\r\n\r\n",
    "status-line-long-code": b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
    "status-line-http2": b"HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status-line-not-http": b"ICY 200 OK\r\nContent-Length: 0\r\n\r\n",
    "header-without-colon": b"HTTP/1.1 200 OK\r\nContent-Length 0\r\n\r\n",
    "header-space-before-colon": b"HTTP/1.1 200 OK\r\nContent-Length : 0\r\n\r\n",
    "obs-fold": b"HTTP/1.1 200 OK\r\nX-A: a\r\n  folded\r\nContent-Length: 0\r\n\r\n",
    "conflicting-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    "length-not-a-number": b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    "length-negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "length-hex": b"HTTP/1.1 200 OK\r\nContent-Length: 0x1\r\n\r\na",
    "chunk-size-not-hex": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk-size-empty": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n",
    "chunk-size-negative": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\n",
    "chunk-size-0x": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x2\r\nab\r\n",
    "chunk-size-underscore": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n",
    "chunk-without-crlf": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"
    ),
    "coding-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
    "coding-chunked-then-gzip": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    "coding-gzip-then-chunked": (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
    "head-too-long-unfinished": BIG_HEAD,
    "head-too-long": BIG_HEAD + b"\r\nContent-Length: 0\r\n\r\n",
    "switching-protocols": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
}


@pytest.mark.parametrize("piece", [None, 1], ids=["whole", "bytewise"])
@pytest.mark.parametrize("wire", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_response_is_a_remote_protocol_error(
    wire: bytes, piece: int | None
) -> None:
    """A response that breaks HTTP/1.1 fails as RemoteProtocolError and drops the connection."""
    if piece is not None and len(wire) > 1000:
        piece = 997
    connection, transport = connect()
    task = await start_sending(connection)

    for data in split(wire, piece or len(wire)):
        connection.data_received(data)

    with pytest.raises((Failure, TooLarge)) as failure:
        await settled(task)
    error = failure.value
    assert isinstance(error, TooLarge) or cast(Failure, error).kind is httpx.RemoteProtocolError
    assert transport.closing
    assert not connection.reusable


@pytest.mark.parametrize("piece", [None, 997, 4093, 65536], ids=lambda piece: f"piece={piece}")
async def test_head_limit_is_exact_however_the_bytes_arrive(piece: int | None) -> None:
    """A head (through its blank line) of 64 KiB is read, one byte more is refused."""
    start = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Big: "
    for size, accepted in [(MAX_HEAD_BYTES, True), (MAX_HEAD_BYTES + 1, False)]:
        wire = start + b"a" * (size - len(start) - 4) + b"\r\n\r\nok"
        connection, _ = connect()
        task = await start_sending(connection)
        for data in split(wire, piece or len(wire)):
            connection.data_received(data)
        if accepted:
            assert (await settled(task)).content == b"ok"
            assert connection.reusable
        else:
            with pytest.raises(TooLarge, match="max_head_bytes") as error:
                await settled(task)
            assert error.value.limit == MAX_HEAD_BYTES


async def test_reset_during_until_close_body_is_a_read_error() -> None:
    """A body framed by the close is only complete on a clean close, not on a reset."""
    connection, transport = connect()
    task = await start_sending(connection)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart of")

    transport.peer_closes(ConnectionResetError(104, "Connection reset by peer"))

    with pytest.raises(Failure) as failure:
        await settled(task)
    assert failure.value.kind is httpx.ReadError


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param(b"", id="nothing"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-", id="mid-head"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", id="body"),
        pytest.param(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n", id="chunks"
        ),
        pytest.param(b"HTTP/1.1 100 Continue\r\n\r\n", id="after-1xx"),
    ],
)
async def test_close_before_the_response_ends_is_an_error(wire: bytes) -> None:
    """Only until-close framing may end at the close; anything else cut short is an error."""
    connection, transport = connect()
    task = await start_sending(connection)
    if wire:
        connection.data_received(wire)

    transport.peer_closes()

    with pytest.raises(Failure) as failure:
        await settled(task)
    assert failure.value.kind is httpx.RemoteProtocolError


async def test_bytes_beyond_the_response_make_the_connection_unusable() -> None:
    """Extra bytes after a complete response mean the stream is out of step: no reuse."""
    reply, connection, _ = await respond(
        [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n"]
    )

    assert reply.content == b"ok"
    assert not connection.reusable


async def test_chunked_with_a_content_length_is_refused() -> None:
    """Both framings (RFC 9112 6.3: a sign of request smuggling): refused, as llhttp does."""
    connection, transport = connect()
    task = await start_sending(connection)

    connection.data_received(
        b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\nok\r\n0\r\n\r\n"
    )

    with pytest.raises(Failure, match="Content-Length"):
        await settled(task)
    assert transport.closing


async def test_a_head_trickling_in_byte_by_byte_is_found() -> None:
    """The search for the end of the head resumes where it stopped, and still finds it."""
    wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"

    reply, connection, _ = await respond(split(wire, 1))

    assert reply.status_code == 200
    assert reply.content == b"ok"
    assert connection.reusable


async def test_bytes_arriving_on_an_idle_connection_drop_it() -> None:
    """Nothing asked for them, so a connection that receives unrequested bytes is dropped."""
    reply, connection, transport = await respond([b"HTTP/1.1 204 No Content\r\n\r\n"])
    assert connection.reusable

    connection.data_received(b"HTTP/1.1 200 OK\r\n")

    assert reply.status_code == 204
    assert transport.closing
    assert not connection.reusable


class ManualClock:
    """Stands in for the loop of a `Connection`: time and timers move only when told."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.now = 0.0
        self._timers: list[tuple[asyncio.TimerHandle, Callable[[], object]]] = []

    def time(self) -> float:
        return self.now

    def create_future(self) -> asyncio.Future[Any]:
        return self.loop.create_future()

    def call_at(self, when: float, callback: Callable[[], object]) -> asyncio.TimerHandle:
        handle = asyncio.TimerHandle(when, callback, (), self.loop)
        self._timers.append((handle, callback))
        return handle

    def advance(self, seconds: float) -> None:
        """Move time on, running every timer that falls due on the way, in order."""
        self.now += seconds
        while due := [t for t in self._timers if t[0].when() <= self.now]:
            timer = min(due, key=lambda t: t[0].when())
            self._timers.remove(timer)
            if not timer[0].cancelled():
                timer[1]()


@pytest.mark.parametrize("finishes", [True, False], ids=["finishes", "stalls"])
async def test_body_read_timeout_is_pushed_back_by_arriving_bytes(finishes: bool) -> None:
    """A body that keeps coming is not cut off; a full read timeout of silence is."""
    clock = ManualClock()
    connection, transport = connect(clock)
    task = await start_sending(connection, read=1.0)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
    for data in [b"b", b"o", b"d"]:  # one byte every 0.9 s
        clock.advance(0.9)
        connection.data_received(data)
        await anyio.lowlevel.checkpoint()
        assert not task.done()
    if finishes:
        clock.advance(0.9)
        connection.data_received(b"y")
        assert (await settled(task)).content == b"body"
        return
    clock.advance(0.99)
    await anyio.lowlevel.checkpoint()
    assert not task.done()
    clock.advance(0.02)  # a second of silence since the last byte
    with pytest.raises(Failure, match="no response bytes for 1 s") as failure:
        await settled(task)
    assert failure.value.kind is httpx.ReadTimeout
    assert transport.closing


async def test_head_must_arrive_within_the_read_timeout_in_all() -> None:
    """A head trickling a byte every 0.1 s fails at the read timeout, not a timeout per byte."""
    clock = ManualClock()
    connection, transport = connect(clock)
    task = await start_sending(connection, read=1.0)

    for data in split(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 1)[:11]:
        clock.advance(0.099)
        connection.data_received(data)
    await anyio.lowlevel.checkpoint()
    clock.advance(0.02)  # 1.009 s since the request, though bytes never stopped

    with pytest.raises(Failure, match="response head did not arrive within 1 s") as failure:
        await settled(task)
    assert failure.value.kind is httpx.ReadTimeout
    assert transport.closing


async def test_body_must_arrive_within_the_body_timeout_in_all() -> None:
    """After the head, the body has body_timeout seconds in all, however steadily it trickles."""
    clock = ManualClock()
    connection = Connection(cast(asyncio.AbstractEventLoop, clock), body_timeout=2.0)
    connection.connection_made(FakeTransport(connection))
    task = await start_sending(connection, read=1.0)
    connection.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")

    for _ in range(4):  # a byte every 0.5 s: never a second of silence
        clock.advance(0.5)
        connection.data_received(b"x")
    await anyio.lowlevel.checkpoint()
    clock.advance(0.01)

    with pytest.raises(Failure, match="body did not arrive within 2 s") as failure:
        await settled(task)
    assert failure.value.kind is httpx.ReadTimeout


# Against real loopback servers

# Every request below has these timeouts so that a regression fails instead of hanging;
# none of them is meant to fire.
GUARD = {"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0}


class RequestReader:
    """Reads whole requests (head and body) off one server-side connection."""

    def __init__(self, stream: anyio.abc.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def next(self) -> bytes | None:
        """The next request's raw bytes, or None once the client has gone."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if not await self._fill():
                return None
        end += 4
        head = bytes(self.buffer[:end]).lower()
        if b"transfer-encoding: chunked" in head:
            while (stop := self.buffer.find(b"0\r\n\r\n", end)) < 0:
                if not await self._fill():
                    return None
            end = stop + 5
        elif b"content-length:" in head:
            end += int(head.split(b"content-length:")[1].split(b"\r\n")[0])
        while len(self.buffer) < end:
            if not await self._fill():
                return None
        request = bytes(self.buffer[:end])
        del self.buffer[:end]
        return request

    async def _fill(self) -> bool:
        try:
            self.buffer += await self.stream.receive(1 << 20)
        except (anyio.EndOfStream, anyio.BrokenResourceError):
            return False
        return True


def ok(body: bytes = b"ok", *headers: str) -> bytes:
    """A 200 response with a Content-Length and any extra header lines."""
    head = ["HTTP/1.1 200 OK", f"Content-Length: {len(body)}", *headers]
    return "\r\n".join([*head, "", ""]).encode() + body


def body_of(request: bytes) -> bytes:
    return request.partition(b"\r\n\r\n")[2]


class Server:
    """
    A raw keep-alive server: answers each request with ``respond(request)`` (None: say
    nothing), counts connections and records which ones the client closed.
    """

    def __init__(
        self, respond: Callable[[bytes], bytes | None] = lambda _: ok(), *, hang_up: bool = False
    ) -> None:
        self.respond = respond
        self.hang_up = hang_up  # close the connection after each response
        self.accepted = 0
        self.requests: list[tuple[int, bytes]] = []  # (connection number, raw request)
        self.ended: set[int] = set()  # connections the client closed
        self._changed = anyio.Event()

    async def handle(self, stream: anyio.abc.SocketStream) -> None:
        self.accepted += 1
        number = self.accepted
        reader = RequestReader(stream)
        try:
            while (request := await reader.next()) is not None:
                self.requests.append((number, request))
                self._notify()
                answer = self.respond(request)
                if answer is not None:
                    await stream.send(answer)
                if self.hang_up:
                    return
        except anyio.BrokenResourceError:
            pass
        self.ended.add(number)
        self._notify()

    @property
    def connections(self) -> list[int]:
        """The connection each request arrived on, in order."""
        return [number for number, _ in self.requests]

    def _notify(self) -> None:
        self._changed.set()
        self._changed = anyio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        with anyio.fail_after(5):
            while not predicate():
                await self._changed.wait()


async def until(predicate: Callable[[], bool]) -> None:
    """Let the loop turn (no sleeping) until *predicate* holds."""
    for _ in range(10_000):
        if predicate():
            return
        await anyio.lowlevel.checkpoint()
    raise AssertionError("condition never held")


async def test_sequential_requests_reuse_one_connection() -> None:
    """Requests one after another share one keep-alive connection, by either entry point."""
    server = Server()
    async with raw_server(server.handle) as url, WireTransport() as transport:
        replies = [await transport.exchange("GET", f"{url}/a", {}, None, GUARD) for _ in range(3)]
        async with httpx.AsyncClient(transport=transport) as client:
            responses = [await client.get(f"{url}/b") for _ in range(2)]

    assert [reply.content for reply in replies] == [b"ok"] * 3
    assert [response.text for response in responses] == ["ok"] * 2
    assert server.accepted == 1
    assert server.connections == [1] * 5


async def test_connection_close_from_server_opens_a_new_connection() -> None:
    """After a `Connection: close` response the client closes that connection and opens anew."""
    server = Server(lambda _: ok(b"bye", "Connection: close"))
    async with raw_server(server.handle) as url, WireTransport() as transport:
        first = await transport.exchange("GET", url, {}, None, GUARD)
        await server.wait_until(lambda: 1 in server.ended)
        second = await transport.exchange("GET", url, {}, None, GUARD)

    assert (first.content, second.content) == (b"bye", b"bye")
    assert server.connections == [1, 2]


async def test_idle_connection_closed_by_server_is_not_reused() -> None:
    """A pooled connection the server has since closed is skipped, not written to."""
    server = Server(hang_up=True)
    async with raw_server(server.handle) as url, WireTransport() as transport:
        await transport.exchange("GET", url, {}, None, GUARD)
        idle = list(transport._origins[url].idle)
        assert len(idle) == 1  # pooled: the response allowed keep-alive
        await until(lambda: idle[0].closed)  # the server's FIN has reached the client
        reply = await transport.exchange("GET", url, {}, None, GUARD)

    assert reply.content == b"ok"
    assert server.connections == [1, 2]


async def test_zero_keepalive_expiry_uses_a_new_connection_each_time() -> None:
    """keepalive_expiry=0 turns pooling off: every request connects, stale ones are closed."""
    server = Server()
    async with raw_server(server.handle) as url:
        async with WireTransport(keepalive_expiry=0) as transport:
            for _ in range(3):
                assert (await transport.exchange("GET", url, {}, None, GUARD)).content == b"ok"
            await server.wait_until(lambda: {1, 2} <= server.ended)
        await server.wait_until(lambda: 3 in server.ended)

    assert server.connections == [1, 2, 3]


async def test_until_close_body_is_read_to_the_end() -> None:
    """A response without Content-Length or chunking ends at the close, all of it kept."""
    body = bytes(range(256)) * 4096  # 1 MiB: many reads
    server = Server(lambda _: b"HTTP/1.1 200 OK\r\nContent-Type: x\r\n\r\n" + body, hang_up=True)
    async with raw_server(server.handle) as url, WireTransport() as transport:
        first = await transport.exchange("GET", url, {}, None, GUARD)
        second = await transport.exchange("GET", url, {}, None, GUARD)

    assert first.content == body
    assert second.content == body
    assert server.connections == [1, 2]


async def test_head_response_has_headers_only() -> None:
    """HEAD reads the headers (Content-Length included) and no body, keeping the connection."""

    def answer(request: bytes) -> bytes:
        if request.startswith(b"HEAD"):
            return b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: v1\r\n\r\n"
        return ok(b"after")

    server = Server(answer)
    async with (
        raw_server(server.handle) as url,
        WireTransport() as transport,
        httpx.AsyncClient(transport=transport) as client,
    ):
        head = await transport.exchange("HEAD", url, {}, None, GUARD)
        response = await client.head(url)
        after = await transport.exchange("GET", url, {}, None, GUARD)

    assert head.content == b""
    assert (b"Content-Length", b"1234") in head.headers
    assert response.content == b""
    assert response.headers["content-length"] == "1234"
    assert response.headers["etag"] == "v1"
    assert after.content == b"after"
    # llhttp stops at a HEAD answer's head without saying where: its connection is not reused.
    assert server.connections == [1, 2, 3]


async def test_exchange_sends_host_content_length_and_headers_exactly() -> None:
    """The fast path writes the given headers verbatim, adding only Host and Content-Length."""
    server = Server()
    async with raw_server(server.handle) as url, WireTransport() as transport:
        port = url.rsplit(":", 1)[1]
        headers = {"x-api-key": "k", "Content-Type": "application/json", "X-Odd": "a  b"}
        await transport.exchange("POST", f"{url}/app/a/run_async?x=%2F", headers, b"{}", GUARD)
        await transport.exchange("GET", f"{url}/app/a/status/j1", {"Accept": "*/*"}, None, GUARD)
        await transport.exchange("POST", url, {}, None, GUARD)
        await transport.exchange("DELETE", f"{url}/x", {}, b"", GUARD)

    assert [request for _, request in server.requests] == [
        b"POST /app/a/run_async?x=%2F HTTP/1.1\r\n"
        + f"Host: 127.0.0.1:{port}\r\n".encode()
        + b"x-api-key: k\r\nContent-Type: application/json\r\nX-Odd: a  b\r\n"
        + b"Content-Length: 2\r\n\r\n{}",
        f"GET /app/a/status/j1 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\n\r\n".encode(),
        f"POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode(),
        f"DELETE /x HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n".encode(),
    ]


@pytest.mark.parametrize(
    ("path", "headers", "message"),
    [
        pytest.param("/", {"x-api-key": "k\r\nX-Injected: 1"}, "line breaks", id="crlf-value"),
        pytest.param("/", {"x-a": "line\nbreak"}, "line breaks", id="lf-value"),
        pytest.param("/", {"x-a": "cr\ronly"}, "line breaks", id="cr-value"),
        pytest.param("/", {"x-a\r\nx-b": "v"}, "line breaks", id="crlf-name"),
        pytest.param("/", {"x-a": "caf\u00e9"}, "ASCII", id="non-ascii-value"),
        pytest.param("/", {"x-\u00e4": "v"}, "ASCII", id="non-ascii-name"),
    ],
)
async def test_exchange_refuses_unsafe_headers_before_connecting(
    path: str, headers: dict[str, str], message: str
) -> None:
    """Header injection or non-ASCII is a LocalProtocolError, and nothing reaches the server."""
    server = Server()
    async with raw_server(server.handle) as url, WireTransport() as transport:
        with pytest.raises(httpx.LocalProtocolError, match=message) as error:
            await transport.exchange("POST", url + path, headers, b"{}", GUARD)
        await transport.exchange("GET", url, {}, None, GUARD)  # the server is there

    assert error.value.request.method == "POST"
    assert server.connections == [1]
    assert server.requests[0][1].startswith(b"GET / ")


async def test_exchange_refuses_a_line_break_in_the_url_before_connecting() -> None:
    """A URL that would split or garble the request line is refused unsent."""
    server = Server()
    async with raw_server(server.handle) as url, WireTransport() as transport:
        with pytest.raises(httpx.LocalProtocolError) as error:
            await transport.exchange("GET", f"{url}/a\r\nX-Injected: 1", {}, None, GUARD)
        assert str(error.value.request.url) == f"{url}"  # its origin only: the URL was refused
        with pytest.raises(httpx.LocalProtocolError, match="percent-encoded"):
            await transport.exchange("GET", f"{url}/a b", {}, None, GUARD)
        await transport.exchange("GET", url, {}, None, GUARD)  # the server is there

    assert server.connections == [1]
    assert server.requests[0][1].startswith(b"GET / ")


async def test_exchange_error_status_converts_to_httpx_response() -> None:
    """An error answer is a Reply whose httpx form has the headers, reason and decoded body."""
    body = gzip.compress(b'{"error": "no such job"}')
    answer = (
        b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nX-Request-Id: r-1\r\n"
        + f"Content-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    server = Server(lambda _: answer)
    async with raw_server(server.handle) as url, WireTransport() as transport:
        reply = await transport.exchange("GET", f"{url}/status/j", {"x-api-key": "k"}, None, GUARD)

    request = httpx.Request("GET", f"{url}/status/j")
    response = reply.to_httpx(request)
    await response.aread()
    assert reply.status_code == 404
    assert reply.encoded
    assert response.status_code == 404
    assert response.reason_phrase == "Not Found"
    assert response.http_version == "HTTP/1.1"
    assert response.headers["x-request-id"] == "r-1"
    assert response.json() == {"error": "no such job"}
    assert response.request is request
    with pytest.raises(httpx.HTTPStatusError):
        response.raise_for_status()


async def test_exchange_errors_carry_a_request_without_headers() -> None:
    """An exception from the fast path names method and URL but never carries the API key."""
    server = Server(lambda _: None, hang_up=True)  # reads the request, hangs up
    secret = {"x-api-key": "rg-secret"}
    async with raw_server(server.handle) as url, WireTransport() as transport:
        with pytest.raises(httpx.RemoteProtocolError) as dropped:
            await transport.exchange("POST", f"{url}/run", secret, b"{}", GUARD)
        with pytest.raises(httpx.ConnectError) as refused:
            await transport.exchange(
                "POST", f"http://127.0.0.1:{free_port()}/run", secret, b"{}", GUARD
            )

    for error in (dropped.value, refused.value):
        assert error.request.method == "POST"
        assert error.request.url.path == "/run"
        assert "x-api-key" not in error.request.headers
    assert server.requests  # the first one was sent: ambiguous, as its class says


async def test_cancelled_request_frees_its_slot_and_drops_its_connection() -> None:
    """Cancelling a request in flight returns its slot and never reuses its connection."""
    server = Server(lambda request: None if b"/silent" in request else ok(b"next"))
    async with raw_server(server.handle) as url, WireTransport(limit=1) as transport:
        async with anyio.create_task_group() as tg:
            tg.start_soon(transport.exchange, "GET", f"{url}/silent", {}, None, GUARD)
            await server.wait_until(lambda: len(server.requests) == 1)
            tg.cancel_scope.cancel()
        reply = await transport.exchange("GET", f"{url}/next", {}, None, GUARD)
        await server.wait_until(lambda: 1 in server.ended)

    assert reply.content == b"next"
    assert server.connections == [1, 2]


async def test_trickling_head_over_a_socket_is_a_read_timeout_naming_the_deadline() -> None:
    """A server sending its head a byte every 20 ms cannot hold a call past read=0.2 s."""
    sent = 0

    async def trickle(stream: anyio.abc.SocketStream) -> None:
        nonlocal sent
        await RequestReader(stream).next()
        with anyio.move_on_after(5):  # the server's own bound; the client gives up first
            for byte in split(ok(b"x" * 100), 1):
                await stream.send(byte)
                sent += 1
                await anyio.sleep(0.02)

    async with raw_server(trickle) as url, WireTransport() as transport:
        with pytest.raises(httpx.ReadTimeout, match=r"head did not arrive within 0\.2 s"):
            await transport.exchange("GET", url, {}, None, {**GUARD, "read": 0.2})

    assert 3 < sent < 40  # bytes kept coming: a per-byte timeout would never have fired


async def test_aclose_closes_idle_connections_and_refuses_requests() -> None:
    """aclose() hangs up the pooled connections; the transport then refuses to send."""
    server = Server()
    async with raw_server(server.handle) as url:
        transport = WireTransport()
        await transport.exchange("GET", url, {}, None, GUARD)

        await transport.aclose()

        await server.wait_until(lambda: 1 in server.ended)
        with pytest.raises(RuntimeError, match="closed"):
            await transport.exchange("GET", url, {}, None, GUARD)
        with pytest.raises(RuntimeError, match="closed"):
            await transport.handle_async_request(httpx.Request("GET", url))
    assert server.connections == [1]


async def test_large_request_body_is_delivered_completely() -> None:
    """A body far larger than the socket buffers arrives whole, whichever entry point sent it."""
    body = bytes(range(256)) * (8 * 4096)  # 8 MiB

    def digest(request: bytes) -> bytes:
        received = body_of(request)
        return ok(f"{len(received)} {hashlib.sha256(received).hexdigest()}".encode())

    server = Server(digest)
    async with (
        raw_server(server.handle) as url,
        WireTransport() as transport,
        httpx.AsyncClient(transport=transport) as client,
    ):
        reply = await transport.exchange("POST", url, {}, body, GUARD)
        response = await client.put(url, content=body)

    expected = f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()
    assert reply.content == expected
    assert response.content == expected


async def test_streamed_request_body_is_sent_as_one_chunk() -> None:
    """An httpx body of unknown length is read first and sent chunked, correctly framed."""

    async def parts() -> AsyncIterator[bytes]:
        yield b'{"input": '
        yield b'"x"}'

    async def nothing() -> AsyncIterator[bytes]:
        none: list[bytes] = []
        for part in none:
            yield part

    server = Server(lambda request: ok(body_of(request)))
    async with (
        raw_server(server.handle) as url,
        httpx.AsyncClient(transport=WireTransport()) as client,
    ):
        response = await client.post(url, content=parts())
        empty = await client.post(url, content=nothing())

    assert response.content == b'e\r\n{"input": "x"}\r\n0\r\n\r\n'
    assert empty.content == b"0\r\n\r\n"
    assert server.connections == [1, 1]


async def test_handle_async_request_refuses_a_line_break_in_a_header() -> None:
    """httpx lets a CR/LF into a header value; the transport refuses it, sending nothing."""
    server = Server()
    async with raw_server(server.handle) as url, WireTransport() as transport:
        request = httpx.Request("GET", url, headers={"idempotency-key": "k\r\nX-Injected: 1"})
        with pytest.raises(httpx.LocalProtocolError, match="line break") as error:
            await transport.handle_async_request(request)

    assert "idempotency-key" not in error.value.request.headers  # no header values kept
    assert server.connections == []


def test_an_idle_connection_the_peer_closed_is_seen_before_reuse() -> None:
    """
    A server that closed a kept-alive connection is noticed by looking at the socket, even
    before the event loop has had a turn to report it (a request there would be ambiguous).
    """
    import threading

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    closed = threading.Event()

    def serve() -> None:
        peer, _ = listener.accept()
        peer.recv(1)
        peer.close()
        closed.set()

    threading.Thread(target=serve, daemon=True).start()

    async def main() -> tuple[bool, bool, bool]:
        loop = asyncio.get_running_loop()
        connection = Connection(loop)
        transport, _ = await loop.create_connection(lambda: connection, *listener.getsockname())
        before = connection.still_open()
        transport.write(b"x")
        closed.wait(5)  # blocks this loop: it cannot learn of the close by itself
        after = connection.still_open()
        told = connection.closed
        transport.close()
        return before, after, told

    try:
        before, after, told = asyncio.run(main())
    finally:
        listener.close()

    assert before
    assert not told  # the loop had not processed the close yet...
    assert not after  # ...but the socket said so
