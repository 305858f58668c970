"""
The SDK's HTTP engines against real loopback servers started by each test.

The contract tests run once over `WireTransport` (the SDK's own HTTP/1.1 client) and once
over `AiohttpTransport`; both must behave as httpx's own transport does. `AutoTransport`'s
choice is tested at the end. WireTransport's own parser and pool: tests/test_wire_transport.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

import aiohttp
import anyio
import anyio.abc
import anyio.lowlevel
import httpx
import pytest
from aiohttp import web
from aiohttp.client_reqrep import ConnectionKey
from aiohttp.http_exceptions import HttpProcessingError

from rungen_async import (
    AmbiguousRequestError,
    APIConnectionError,
    APIProtocolError,
    APITimeoutError,
    AsyncRunGen,
    ResponseTooLargeError,
    RetryPolicy,
    TLSVerificationError,
)
from rungen_async._http._aiohttp import AiohttpTransport, _to_httpx
from rungen_async._http._errors import to_sdk_error
from rungen_async._http._limits import TooLarge
from rungen_async._http._pool import WireTransport
from rungen_async._http._select import AutoTransport
from rungen_async._http._shared import Slots as _Slots

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RawHandler = Callable[[anyio.abc.SocketStream], Awaitable[None]]
Engine = type[WireTransport] | type[AiohttpTransport]

TINY = 0.05  # seconds: long enough for loopback, short enough to keep the suite fast


@pytest.fixture
def anyio_backend() -> str:
    """aiohttp runs only on asyncio; the trio tests below parametrise this back to trio."""
    return "asyncio"


@pytest.fixture(
    params=[
        pytest.param(WireTransport, id="wire"),
        pytest.param(AiohttpTransport, id="aiohttp"),
    ]
)
def engine(request: pytest.FixtureRequest) -> Engine:
    """The transport class under test: every contract test runs over both."""
    engine: Engine = request.param
    return engine


@asynccontextmanager
async def web_server(*routes: tuple[str, str, Handler]) -> AsyncIterator[str]:
    """Serve an aiohttp.web app on 127.0.0.1 and yield its base URL."""
    app = web.Application()
    for method, path, handler in routes:
        app.router.add_route(method, path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def raw_server(handler: RawHandler) -> AsyncIterator[str]:
    """Serve *handler* on a bare TCP socket (asyncio or trio) and yield its base URL."""

    async def closing(stream: anyio.abc.SocketStream) -> None:
        async with stream:
            await handler(stream)

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, closing)
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            tg.cancel_scope.cancel()
    await listener.aclose()


async def read_request_head(stream: anyio.abc.SocketStream) -> bytes:
    """Read up to the blank line that ends a request's headers."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive()
    return data


async def echo(request: web.Request) -> web.Response:
    """Answer with what arrived: method, path, query, headers and body."""
    status = int(request.query.get("status", "200"))
    body = {
        "method": request.method,
        "path": request.path,
        "raw_path": request.raw_path,
        "headers": dict(request.headers),
        "body": await request.text(),
    }
    return web.json_response(body, status=status, headers={"x-reply": "yes"})


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE"])
async def test_round_trip_sends_httpx_request_unchanged(method: str, engine: Engine) -> None:
    """Method, path, encoded query, headers and JSON body reach the server as httpx built them."""
    async with (
        web_server(("*", "/{tail:.*}", echo)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        response = await client.request(
            method,
            "/app/app_1/run_async?a=1%2F2&b=x+y",
            json={"input": {"prompt": "a lighthouse"}} if method != "GET" else None,
            headers={"x-api-key": "k"},
        )

    sent = client.build_request(
        method, "/app/app_1/run_async", json={"input": {"prompt": "a lighthouse"}}
    )
    echoed = response.json()
    assert response.status_code == 200
    assert response.headers["x-reply"] == "yes"
    assert response.http_version == "HTTP/1.1"
    assert response.reason_phrase == "OK"
    assert echoed["method"] == method
    assert echoed["path"] == "/app/app_1/run_async"
    assert echoed["raw_path"] == "/app/app_1/run_async?a=1%2F2&b=x+y"
    assert echoed["headers"]["x-api-key"] == "k"
    assert echoed["headers"]["User-Agent"] == sent.headers["User-Agent"]
    assert echoed["headers"]["Accept-Encoding"] == sent.headers["Accept-Encoding"]
    if method == "GET":
        assert echoed["body"] == ""
        assert "Content-Type" not in echoed["headers"]
    else:
        assert json.loads(echoed["body"]) == {"input": {"prompt": "a lighthouse"}}
        assert echoed["headers"]["Content-Type"] == "application/json"


async def test_round_trip_adds_no_headers_httpx_left_out(engine: Engine) -> None:
    """aiohttp's own User-Agent and Content-Type never replace ones the caller removed."""
    async with (
        web_server(("*", "/", echo)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        request = client.build_request("POST", "/", content=b"raw")
        del request.headers["User-Agent"]
        response = await client.send(request)

    headers = response.json()["headers"]
    assert "User-Agent" not in headers
    assert "Content-Type" not in headers
    assert response.json()["body"] == "raw"


@pytest.mark.parametrize(
    "status",
    [
        pytest.param(201, id="201"),
        pytest.param(400, id="400"),
        pytest.param(404, id="404"),
        pytest.param(429, id="429"),
        pytest.param(500, id="500"),
    ],
)
async def test_status_code_passes_through(status: int, engine: Engine) -> None:
    """Any status the server sends is the response's status, with its body."""
    async with (
        web_server(("*", "/", echo)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        response = await client.post("/", params={"status": status}, json={})

    assert response.status_code == status
    assert response.json()["method"] == "POST"


async def test_empty_204_body(engine: Engine) -> None:
    """A 204 has empty content and is not an error."""

    async def no_content(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async with (
        web_server(("DELETE", "/", no_content)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        response = await client.delete("/")

    assert response.status_code == 204
    assert response.content == b""


async def test_gzip_body_is_decoded_by_httpx(engine: Engine) -> None:
    """The body arrives compressed and httpx decodes it, as with its own transport."""

    async def gzipped(request: web.Request) -> web.Response:
        body = gzip.compress(b'{"ok": true}')
        return web.Response(body=body, headers={"Content-Encoding": "gzip"})

    async with (
        web_server(("GET", "/", gzipped)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        response = await client.get("/")

    assert response.json() == {"ok": True}


async def test_redirect_is_left_to_httpx(engine: Engine) -> None:
    """The transport returns a 302 as is; following it is httpx's choice."""

    async def redirect(request: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/elsewhere"})

    async with (
        web_server(("GET", "/", redirect), ("GET", "/elsewhere", echo)) as base_url,
        httpx.AsyncClient(transport=engine(), base_url=base_url) as client,
    ):
        unfollowed = await client.get("/")
        followed = await client.get("/", follow_redirects=True)

    assert unfollowed.status_code == 302
    assert followed.json()["path"] == "/elsewhere"


async def test_http_10_response_reports_its_version(engine: Engine) -> None:
    """An HTTP/1.0 answer is reported as such, like httpx's own transport does."""

    async def old_server(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")

    async with (
        raw_server(old_server) as base_url,
        httpx.AsyncClient(transport=engine()) as client,
    ):
        response = await client.get(base_url)

    assert response.http_version == "HTTP/1.0"
    assert response.text == "ok"


async def test_refused_port_raises_connect_error(engine: Engine) -> None:
    """Nothing listening means nothing was sent: ConnectError."""
    async with httpx.AsyncClient(transport=engine()) as client:
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{free_port()}/", json={})


async def test_silent_server_raises_read_timeout(engine: Engine) -> None:
    """A server that accepts the request and never answers trips the read timeout."""
    arrived = anyio.Event()

    async def silent(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        arrived.set()
        await anyio.sleep_forever()

    async with (
        raw_server(silent) as base_url,
        httpx.AsyncClient(transport=engine(), timeout=TINY) as client,
    ):
        with pytest.raises(httpx.ReadTimeout):
            await client.post(base_url, json={})

    assert arrived.is_set()


async def test_close_mid_body_raises_remote_protocol_error(engine: Engine) -> None:
    """A connection closed part-way through the body is a protocol error, not a short body."""

    async def truncating(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"job')
        await stream.aclose()

    async with (
        raw_server(truncating) as base_url,
        httpx.AsyncClient(transport=engine()) as client,
    ):
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get(base_url)


async def test_close_without_response_raises_remote_protocol_error(engine: Engine) -> None:
    """A server that hangs up after reading the request leaves it ambiguous."""

    async def hang_up(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await stream.aclose()

    async with (
        raw_server(hang_up) as base_url,
        httpx.AsyncClient(transport=engine()) as client,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(base_url, json={})


async def test_full_pool_raises_pool_timeout_then_recovers(engine: Engine) -> None:
    """Waiting longer than the pool timeout for a connection raises PoolTimeout."""
    release = anyio.Event()

    async def held(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text="done")

    async with (
        web_server(("GET", "/", held)) as base_url,
        httpx.AsyncClient(transport=engine(limit=1), base_url=base_url) as client,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.get, "/")
        await anyio.wait_all_tasks_blocked()
        with pytest.raises(httpx.PoolTimeout):
            await client.get("/", timeout=httpx.Timeout(None, pool=TINY))
        release.set()
        response = await client.get("/", timeout=httpx.Timeout(None, pool=None))

    assert response.text == "done"


async def test_concurrency_never_exceeds_limit(engine: Engine) -> None:
    """With limit=2, five concurrent requests use at most two connections at a time."""
    in_flight = 0
    most = 0
    peers: set[object] = set()
    two_arrived = anyio.Event()
    release = anyio.Event()

    async def counted(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        if in_flight == 2:
            two_arrived.set()
        await release.wait()
        in_flight -= 1
        return web.Response(text="ok")

    async with (
        web_server(("GET", "/", counted)) as base_url,
        httpx.AsyncClient(transport=engine(limit=2), base_url=base_url) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(5):
            tg.start_soon(client.get, "/")
        await two_arrived.wait()
        for _ in range(50):  # give any excess request ample loop turns to connect
            await anyio.lowlevel.checkpoint()
        held_at_once = in_flight
        release.set()

    assert held_at_once == 2
    assert most == 2
    assert len(peers) <= 2


async def test_pool_slot_is_returned_after_errors(engine: Engine) -> None:
    """Failed requests give their slot back, so a limit of one still serves the next request."""
    async with httpx.AsyncClient(transport=engine(limit=1)) as client:
        for _ in range(3):
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{free_port()}/", timeout=1)


async def test_aclose_closes_the_session() -> None:
    """aclose() closes the aiohttp session; the transport then refuses requests."""
    transport = AiohttpTransport()
    async with (
        web_server(("GET", "/", echo)) as base_url,
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
    ):
        await client.get("/")
        session = transport._session

    assert session is not None
    assert session.closed
    with pytest.raises(RuntimeError, match="closed"):
        await transport.handle_async_request(httpx.Request("GET", base_url))


async def test_aclose_before_use_is_harmless() -> None:
    """Closing a transport that never sent anything does nothing."""
    transport = AiohttpTransport()

    await transport.aclose()

    assert transport._session is None


def test_limit_must_be_positive(engine: Engine) -> None:
    """A limit of zero would deadlock, so it is refused at construction."""
    with pytest.raises(ValueError, match="limit"):
        engine(limit=0)


_KEY = ConnectionKey("api.test", 443, True, True, None, None, None)
_CERT = ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] self-signed")


@pytest.mark.parametrize(
    ("error", "expected", "sdk"),
    [
        pytest.param(
            aiohttp.ConnectionTimeoutError("t"),
            httpx.ConnectTimeout,
            APITimeoutError,
            id="connect-timeout",
        ),
        pytest.param(
            aiohttp.ClientConnectorError(_KEY, ConnectionRefusedError(111, "refused")),
            httpx.ConnectError,
            APIConnectionError,
            id="refused",
        ),
        pytest.param(
            aiohttp.ClientConnectorDNSError(_KEY, OSError(-2, "Name or service not known")),
            httpx.ConnectError,
            APIConnectionError,
            id="dns",
        ),
        pytest.param(
            aiohttp.ClientConnectorCertificateError(_KEY, _CERT),
            httpx.ConnectError,
            TLSVerificationError,
            id="certificate",
        ),
        pytest.param(
            aiohttp.ServerFingerprintMismatch(b"a", b"b", "api.test", 443),
            httpx.ConnectError,
            APIConnectionError,
            id="fingerprint",
        ),
        pytest.param(
            aiohttp.NonHttpUrlClientError("ftp://x"),
            httpx.UnsupportedProtocol,
            APIConnectionError,
            id="scheme",
        ),
        pytest.param(
            aiohttp.InvalidURL("http://[x"), httpx.LocalProtocolError, APIConnectionError, id="url"
        ),
        pytest.param(
            aiohttp.SocketTimeoutError("t"), httpx.ReadTimeout, APITimeoutError, id="read-timeout"
        ),
        pytest.param(
            aiohttp.ServerDisconnectedError(),
            httpx.RemoteProtocolError,
            APIProtocolError,
            id="gone",
        ),
        pytest.param(
            aiohttp.ClientPayloadError("x"),
            httpx.RemoteProtocolError,
            APIProtocolError,
            id="payload",
        ),
        pytest.param(
            aiohttp.http_exceptions.BadStatusLine("HTTP/1.1 000 OK"),
            httpx.RemoteProtocolError,
            APIProtocolError,
            id="bad-status-line",
        ),
        pytest.param(
            aiohttp.ClientOSError(32, "Can not write request body for http://api.test/"),
            httpx.WriteError,
            APIConnectionError,
            id="write",
        ),
        pytest.param(
            aiohttp.ClientConnectionResetError("Cannot write to closing transport"),
            httpx.WriteError,
            APIConnectionError,
            id="write-closing",
        ),
        pytest.param(
            aiohttp.ClientOSError(104, "reset"), httpx.ReadError, APIConnectionError, id="reset"
        ),
        pytest.param(
            aiohttp.ClientConnectionError("lost"), httpx.ReadError, APIConnectionError, id="lost"
        ),
        pytest.param(
            aiohttp.ClientError("odd"), httpx.TransportError, APIConnectionError, id="other"
        ),
    ],
)
def test_aiohttp_errors_map_to_httpx_errors_of_the_same_retry_meaning(
    error: Exception, expected: type[httpx.TransportError], sdk: type[APIConnectionError]
) -> None:
    """Only failures before sending map to ConnectError/ConnectTimeout; each has its SDK class."""
    request = httpx.Request("POST", "https://api.test/app/a/run_async")

    mapped = _to_httpx(error, request)
    mapped.__cause__ = error  # as the transport raises it: from the original
    translated = to_sdk_error(mapped, method="POST", url=str(request.url), path="/app/a/run_async")

    assert type(mapped) is expected
    assert mapped.request is request
    safe = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
    assert isinstance(mapped, safe) == (expected in safe)
    assert type(translated) is sdk


async def _hang_up(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)


async def _silent(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)
    await anyio.sleep_forever()


async def _truncated(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)
    await stream.send(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"id')


async def _garbage(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)
    await stream.send(b"HTTP/1.1 000 OK\r\nContent-Length: 2\r\n\r\n{}")


async def _large(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)
    await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2000\r\n\r\n" + b" " * 2000)


async def _large_chunked(stream: anyio.abc.SocketStream) -> None:
    await read_request_head(stream)
    chunk = b" " * 2000
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    await stream.send(head + b"%x\r\n" % len(chunk) + chunk + b"\r\n0\r\n\r\n")


@pytest.mark.parametrize(
    ("handler", "method", "sdk", "attempts"),
    [
        # aiohttp itself re-sends an idempotent request once after a disconnect: 2 a try.
        pytest.param(_hang_up, "GET", APIProtocolError, 6, id="hang-up-get"),
        pytest.param(_hang_up, "POST", AmbiguousRequestError, 1, id="hang-up-post"),
        pytest.param(_silent, "GET", APITimeoutError, 3, id="read-timeout-get"),
        pytest.param(_silent, "POST", AmbiguousRequestError, 1, id="read-timeout-post"),
        pytest.param(_truncated, "GET", APIProtocolError, 3, id="truncated"),
        pytest.param(_garbage, "GET", APIProtocolError, 3, id="bad-status-line"),
        pytest.param(_large, "GET", ResponseTooLargeError, 1, id="too-large"),
        pytest.param(_large_chunked, "GET", ResponseTooLargeError, 1, id="too-large-chunked"),
    ],
)
async def test_aiohttp_failures_reach_the_caller_as_the_sdks_errors(
    handler: RawHandler, method: str, sdk: type[Exception], attempts: int
) -> None:
    """Against real servers, each aiohttp failure is the SDK's class, the original chained."""
    arrived = 0

    async def counting(stream: anyio.abc.SocketStream) -> None:
        nonlocal arrived
        arrived += 1
        await handler(stream)

    retry = RetryPolicy(max_attempts=3, initial_delay=0, max_delay=0)
    transport = AiohttpTransport(max_body_bytes=1000)
    async with (
        raw_server(counting) as base_url,
        AsyncRunGen("k", base_url=base_url, transport=transport, retry=retry) as rg,
    ):
        view = rg.with_options(timeout=TINY)
        call = view.submit_job("a1", {"prompt": "x"}) if method == "POST" else view.get_app("a1")
        with pytest.raises(sdk) as caught:
            await call

    assert arrived == attempts
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None:
        chain.append(link)
        link = link.__cause__
    # The original is chained: aiohttp's own error, or the SDK's cap or status check.
    originals = aiohttp.ClientError | TooLarge | HttpProcessingError
    assert isinstance(chain[-1], originals) or "malformed status line" in str(chain[-1])
    if method == "POST":  # written, then failed: never a connect error
        assert not any(isinstance(e, httpx.ConnectError) for e in chain)


async def test_aiohttp_refused_connection_is_a_connection_error_with_the_original_chained() -> None:
    """Nothing listening: APIConnectionError from httpx.ConnectError from aiohttp's error."""
    retry = RetryPolicy(max_attempts=2, initial_delay=0, max_delay=0)
    base_url = f"http://127.0.0.1:{free_port()}"
    async with AsyncRunGen("k", base_url=base_url, transport=AiohttpTransport(), retry=retry) as rg:
        with pytest.raises(APIConnectionError) as caught:
            await rg.submit_job("a1", {"prompt": "x"})  # a POST: provably unsent, so retried

    cause = caught.value.__cause__
    assert type(caught.value) is APIConnectionError
    assert isinstance(cause, httpx.ConnectError)
    assert isinstance(cause.__cause__, aiohttp.ClientConnectorError)


async def test_slots_hand_over_in_order_and_skip_timed_out_waiters() -> None:
    """A released slot goes to the oldest waiter still waiting."""
    loop = asyncio.get_running_loop()
    slots = _Slots(1)
    assert slots.try_acquire()
    order: list[str] = []

    async def wait(name: str, max_wait: float | None) -> None:
        try:
            await slots.acquire(loop, max_wait)
        except TimeoutError:
            order.append(f"{name} timed out")
            return
        order.append(name)
        slots.release()

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait, "quitter", 0)
        tg.start_soon(wait, "first", None)
        tg.start_soon(wait, "second", None)
        await anyio.wait_all_tasks_blocked()
        slots.release()

    assert order == ["quitter timed out", "first", "second"]
    assert slots.try_acquire()
    assert not slots.try_acquire()


@pytest.mark.parametrize(
    ("asyncio_engine", "expected"),
    [
        pytest.param("wire", WireTransport, id="wire"),
        pytest.param("aiohttp", AiohttpTransport, id="aiohttp"),
        pytest.param("httpx", httpx.AsyncHTTPTransport, id="httpx"),
    ],
)
async def test_auto_transport_picks_the_asked_engine_on_asyncio(
    asyncio_engine: Literal["wire", "aiohttp", "httpx"], expected: type[object]
) -> None:
    """On asyncio the SDK's own engine is the default; aiohttp or httpx's are one switch away."""
    transport = AutoTransport(asyncio_engine=asyncio_engine)
    async with (
        web_server(("GET", "/", echo)) as base_url,
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
    ):
        response = await client.get("/")

    assert response.json()["method"] == "GET"
    assert type(transport.chosen) is expected


async def test_auto_transport_default_is_the_wire_engine() -> None:
    """Without a choice, asyncio gets WireTransport."""
    transport = AutoTransport()
    async with (
        web_server(("GET", "/", echo)) as base_url,
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
    ):
        await client.get("/")

    assert type(transport.chosen) is WireTransport


def test_auto_transport_refuses_an_unknown_engine() -> None:
    """A misspelt engine is an error that lists the choices, before any request."""
    with pytest.raises(ValueError, match="'wire', 'aiohttp' or 'httpx'"):
        AutoTransport(asyncio_engine="aiohttpp")  # type: ignore[arg-type]


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_auto_transport_falls_back_to_httpx_on_trio() -> None:
    """Under trio the choice is httpx's own transport, and requests still work."""

    async def ok(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
        await stream.aclose()

    transport = AutoTransport()
    async with (
        raw_server(ok) as base_url,
        httpx.AsyncClient(transport=transport) as client,
    ):
        response = await client.get(base_url)

    assert response.text == "ok"
    assert type(transport.chosen) is httpx.AsyncHTTPTransport


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_transport_refuses_trio_clearly(engine: Engine) -> None:
    """Used under trio, the transport says why it cannot work instead of failing obscurely."""
    async with httpx.AsyncClient(transport=engine()) as client:
        with pytest.raises(RuntimeError, match="needs asyncio but is running under trio"):
            await client.get("http://127.0.0.1:1/")


async def test_auto_transport_honours_an_env_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, requests go through the proxy (httpx's transport), as httpx's do."""
    seen: list[bytes] = []

    async def proxy(stream: anyio.abc.SocketStream) -> None:
        seen.append(await read_request_head(stream))
        await stream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")

    async with raw_server(proxy) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        transport = AutoTransport()
        async with httpx.AsyncClient(transport=transport) as client:
            response = await client.get("http://rungen.test/app/a1")

    assert response.text == "proxied"
    assert seen[0].startswith(b"GET http://rungen.test/app/a1 HTTP/1.1")
    assert type(transport.chosen) is httpx.AsyncHTTPTransport


async def test_loopback_and_trust_env_false_bypass_the_env_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The local emulator is never sent to a proxy; trust_env=False ignores proxies too."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port()}")  # nothing listens
    loopback = AutoTransport()
    ignoring = AutoTransport(trust_env=False)
    async with (
        web_server(("GET", "/", echo)) as base_url,
        httpx.AsyncClient(transport=loopback, base_url=base_url) as client,
    ):
        response = await client.get("/")

    assert response.json()["method"] == "GET"
    assert type(loopback.chosen) is WireTransport
    chosen = ignoring._choose(httpx.URL("http://rungen.test/"))  # chosen, not sent
    assert type(chosen) is WireTransport
    await chosen.aclose()


async def test_aiohttp_streams_downloads_past_the_api_body_cap() -> None:
    """Through httpx (downloads), the body streams in pieces and max_body_bytes does not apply."""
    big = b"x" * (3 * 64 * 1024)

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        await response.write(big)
        await response.write_eof()
        return response

    transport = AiohttpTransport(max_body_bytes=1000)
    async with (
        web_server(("GET", "/image.png", download)) as base_url,
        httpx.AsyncClient(transport=transport, base_url=base_url) as client,
        client.stream("GET", "/image.png") as response,
    ):
        pieces = [piece async for piece in response.aiter_raw()]

    assert b"".join(pieces) == big
    assert len(pieces) > 1
