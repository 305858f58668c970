"""
The one send path: the respx doors, body caps on every path, errors users can act on,
`with_options()` views and the one-event-loop rule.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import subprocess
from pathlib import Path
from typing import Any, Literal

import anyio
import anyio.abc
import httpx
import pytest
import respx
from anyio.streams.tls import TLSStream

from rungen_async import (
    AmbiguousRequestError,
    APIConnectionError,
    APITimeoutError,
    AsyncRunGen,
    AutoTransport,
    NotFoundError,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    TLSVerificationError,
)
from rungen_async._http._errors import likely_cause
from rungen_async._http._limits import MAX_BODY_BYTES
from rungen_async.testing import respx_mock
from tests.test_http_engines import free_port, raw_server, read_request_head

from .conftest import API_KEY

BASE_URL = "https://api.test"
JOB = {"id": "j1", "status": "COMPLETED"}
NO_WAIT = RetryPolicy(initial_delay=0, max_delay=0, max_retry_after=0)
README = Path(__file__).parent.parent / "README.md"
Engine = Literal["wire", "aiohttp", "httpx"]


def _engines(backend: str) -> list[Engine]:
    return ["wire", "aiohttp", "httpx"] if backend == "asyncio" else ["httpx"]


def answering(body: dict[str, Any], seen: list[bytes] | None = None) -> Any:
    """A raw keep-alive server handler that answers every request with JSON *body*."""
    payload = json.dumps(body).encode()
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"

    async def serve(stream: anyio.abc.SocketStream) -> None:
        while True:
            try:
                request = await read_request_head(stream)
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return
            if seen is not None:
                seen.append(request)
            await stream.send(head % len(payload) + payload)

    return serve


def mock_client(handler: Any, **kwargs: Any) -> AsyncRunGen:
    return AsyncRunGen(API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(handler), **kwargs)


# -- the respx doors ---------------------------------------------------------------------------


def test_readme_respx_recipe_runs_as_shown() -> None:
    """The README's respx recipe, exactly as printed, runs and its assertions hold."""
    text = README.read_text()
    section = text[text.index("### Testing with respx") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None

    exec(compile(code.group(1), "README.md", "exec"), {"__name__": "__main__"})


async def test_respx_mock_using_rungen_sees_every_engine(anyio_backend: str) -> None:
    """respx_mock() intercepts whatever engine the client runs; nothing reaches the network."""
    for engine in _engines(anyio_backend):
        with respx_mock(base_url=BASE_URL, assert_all_called=True) as api:
            route = api.get("/app/a1/job/j1").respond(200, json={"data": JOB})
            transport = AutoTransport(asyncio_engine=engine)
            async with AsyncRunGen(API_KEY, base_url=BASE_URL, transport=transport) as rg:
                job = await rg.get_job("a1", "j1")

        assert job.id == "j1"
        assert route.calls.last.request.headers["x-api-key"] == API_KEY


async def test_respx_side_effects_become_the_sdks_errors() -> None:
    """A route raising httpx.ConnectError is retried, then raised as APIConnectionError."""
    with respx_mock(base_url=BASE_URL) as api:
        route = api.get("/app/a1").mock(side_effect=httpx.ConnectError("refused"))
        async with AsyncRunGen(API_KEY, base_url=BASE_URL, retry=NO_WAIT) as rg:
            with pytest.raises(APIConnectionError):
                await rg.get_app("a1")

    assert route.call_count == NO_WAIT.max_attempts


async def test_respx_mock_started_after_the_client_opened_still_intercepts() -> None:
    """A client that already talked to a real server is mocked from the next call on."""
    async with (
        raw_server(answering({"data": {"id": "real", "status": "RUNNING"}})) as base_url,
        AsyncRunGen(API_KEY, base_url=base_url) as rg,
    ):
        first = await rg.get_job("a1", "real")
        with respx_mock(base_url=base_url) as api:
            api.get("/app/a1/job/j2").respond(200, json={"id": "j2", "status": "FAILED"})
            mocked = await rg.get_job("a1", "j2")

    assert (first.id, mocked.id) == ("real", "j2")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # trio's engine is httpcore itself
async def test_plain_respx_mock_does_not_change_the_clients_path() -> None:
    """The client never asks whether a mock is active: under respx.mock its engine still sends."""
    async with raw_server(answering(JOB)) as base_url:
        with respx.mock(assert_all_called=False):
            async with AsyncRunGen(API_KEY, base_url=base_url) as rg:
                fetched = await rg.get_job("a1", "j1")

    assert fetched.id == "j1"


async def test_pytest_httpx_style_patch_sees_requests_through_httpx_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pytest-httpx patches AsyncHTTPTransport; passing that transport in is the door."""
    calls: list[str] = []

    async def fake_handle(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        return httpx.Response(200, json={"data": JOB})

    monkeypatch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", fake_handle)
    async with AsyncRunGen(API_KEY, base_url=BASE_URL, transport=httpx.AsyncHTTPTransport()) as rg:
        job = await rg.get_job("a1", "j1")

    assert job.id == "j1"
    assert calls == [f"{BASE_URL}/app/a1/job/j1"]


# -- one reply type, bounded --------------------------------------------------------------------


@pytest.mark.parametrize("own_client", [False, True], ids=["transport", "http_client"])
async def test_a_body_over_the_cap_is_refused_and_not_retried(own_client: bool) -> None:
    """Over httpx's path too, a body past MAX_BODY_BYTES raises ResponseTooLargeError once."""
    calls = 0

    def huge(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, content=b"x" * (MAX_BODY_BYTES + 1))

    transport = httpx.MockTransport(huge)
    if own_client:
        async with httpx.AsyncClient(transport=transport) as http:
            rg = AsyncRunGen(API_KEY, base_url=BASE_URL, http_client=http, retry=NO_WAIT)
            with pytest.raises(ResponseTooLargeError) as caught:
                await rg.get_app("a1")
    else:
        async with AsyncRunGen(
            API_KEY, base_url=BASE_URL, transport=transport, retry=NO_WAIT
        ) as rg:
            with pytest.raises(ResponseTooLargeError) as caught:
                await rg.get_app("a1")

    assert calls == 1
    assert caught.value.limit == MAX_BODY_BYTES
    assert "max_body_bytes" in str(caught.value)


async def test_the_cap_counts_decoded_bytes_so_a_gzip_bomb_is_refused() -> None:
    """A small gzip body that inflates past the cap is refused while it is read."""
    bomb = gzip.compress(b"0" * (MAX_BODY_BYTES + 1024))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=bomb, headers={"content-encoding": "gzip"})

    async with mock_client(handler, retry=NO_WAIT) as rg:
        with pytest.raises(ResponseTooLargeError):
            await rg.get_app("a1")

    assert len(bomb) < MAX_BODY_BYTES // 100


# -- errors users can act on ---------------------------------------------------------------------


@pytest.mark.parametrize("header", ["x-request-id", "request-id"])
async def test_status_errors_carry_request_id_method_full_url_and_status(header: str) -> None:
    """The request id, method, full URL and status are attributes and in str(), never the key."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "no job 'j9'"}, headers={header: "req_42"})

    async with mock_client(handler) as rg:
        with pytest.raises(NotFoundError) as caught:
            await rg.get_job("a1", "j9")

    error = caught.value
    url = f"{BASE_URL}/app/a1/job/j9"
    assert (error.request_id, error.method, error.url, error.status_code) == (
        "req_42",
        "GET",
        url,
        404,
    )
    assert error.path == "/app/a1/job/j9"
    assert str(error) == f"404 Not Found on GET {url}: no job 'j9' (request id req_42)"
    assert API_KEY not in str(error)
    assert error.response.request.headers["x-api-key"] == "***"


async def test_an_ambiguous_5xx_keeps_the_request_id() -> None:
    """A POST answered 502 is ambiguous; the error still names the server's request id."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, headers={"x-request-id": "req_7"})

    async with mock_client(handler) as rg:
        with pytest.raises(AmbiguousRequestError) as caught:
            await rg.submit_job("a1", {"prompt": "x"})

    assert caught.value.request_id == "req_7"
    assert caught.value.url == f"{BASE_URL}/app/a1/run_async"
    assert isinstance(caught.value.__cause__, ServerError)


async def test_connection_failure_warns_once_naming_host_and_cause_then_logs_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A refused connection: one WARNING on the first retry (host, cause), INFO after."""
    port = free_port()
    caplog.set_level(logging.INFO, logger="rungen_async")
    async with AsyncRunGen(API_KEY, base_url=f"http://127.0.0.1:{port}", retry=NO_WAIT) as rg:
        with pytest.raises(APIConnectionError) as caught:
            await rg.get_app("a1")

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    infos = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(warnings) == 1
    assert "127.0.0.1" in warnings[0].getMessage()
    assert "nothing listens" in warnings[0].getMessage()
    assert len(infos) == NO_WAIT.max_attempts - 1
    assert caught.value.url == f"http://127.0.0.1:{port}/app/a1"
    assert caught.value.request_id is None


def _chained(outer: Exception, inner: BaseException) -> Exception:
    outer.__cause__ = inner
    return outer


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (httpx.ConnectTimeout("timed out"), "no answer within the connect timeout"),
        (httpx.PoolTimeout("pool"), "every connection of the pool stayed busy"),
        (
            _chained(httpx.ConnectError("[Errno -2]"), socket.gaierror(-2, "Name unknown")),
            "the host name does not resolve",
        ),
        (
            _chained(httpx.ConnectError("connect failed"), ConnectionRefusedError(111, "x")),
            "nothing listens there",
        ),
        (httpx.ConnectError("no route"), "the connection could not be made (no route)"),
        (httpx.ReadError("reset"), "the connection failed after the request was sent"),
    ],
)
def test_the_first_retry_warning_names_the_likely_cause(exc: Exception, cause: str) -> None:
    """What the one WARNING says for each kind of connection failure a user meets."""
    assert likely_cause(exc).startswith(cause)


# -- TLS -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Self-signed certificates: one for 127.0.0.1, one for another host name only."""
    folder = tmp_path_factory.mktemp("tls")
    made: dict[str, Path] = {}
    for name, san in (("loopback", "IP:127.0.0.1"), ("elsewhere", "DNS:elsewhere.test")):
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        subprocess.run(
            [
                *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
                *("-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}"),
                *("-addext", f"subjectAltName={san}"),
            ],
            check=True,
            capture_output=True,
        )
        made[name] = cert
        made[f"{name}.key"] = key
    return made


async def _tls_failure(
    certificates: dict[str, Path], cert: str, engine: Engine, *, trust: bool
) -> tuple[TLSVerificationError, int]:
    import ssl

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(certificates[cert], certificates[f"{cert}.key"])
    connections = 0

    async def serve(stream: anyio.abc.SocketStream) -> None:
        nonlocal connections
        connections += 1
        try:
            tls = await TLSStream.wrap(stream, server_side=True, ssl_context=server)
            await tls.receive()  # never reached: the client refuses the certificate first
        except (ssl.SSLError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            return

    verify: ssl.SSLContext | bool = True
    if trust:
        verify = ssl.create_default_context(cafile=str(certificates[cert]))
    async with raw_server(serve) as base_url:
        url = base_url.replace("http://", "https://")
        transport = AutoTransport(asyncio_engine=engine, verify=verify)
        async with AsyncRunGen(API_KEY, base_url=url, transport=transport, retry=NO_WAIT) as rg:
            with pytest.raises(TLSVerificationError) as caught:
                await rg.get_app("a1")
    return caught.value, connections


async def test_untrusted_certificate_fails_at_once_naming_the_host(
    certificates: dict[str, Path], anyio_backend: str
) -> None:
    """A self-signed certificate is TLSVerificationError on the first try, on every engine."""
    for engine in _engines(anyio_backend):
        error, connections = await _tls_failure(certificates, "loopback", engine, trust=False)

        assert connections == 1, engine  # not retried: it cannot heal
        assert error.host == "127.0.0.1"
        assert "certificate verification failed for host '127.0.0.1'" in str(error)


async def test_hostname_mismatch_fails_at_once(
    certificates: dict[str, Path], anyio_backend: str
) -> None:
    """A trusted certificate for another host name is refused, once, as TLSVerificationError."""
    for engine in _engines(anyio_backend):
        error, connections = await _tls_failure(certificates, "elsewhere", engine, trust=True)

        assert connections == 1, engine
        assert error.host == "127.0.0.1"


# -- with_options() -------------------------------------------------------------------------------


async def test_with_options_is_a_cheap_view_sharing_the_pool() -> None:
    """A view shares the core (and its connections); nothing new is opened for it."""
    async with mock_client(lambda request: httpx.Response(200, json=JOB)) as rg:
        view = rg.with_options(timeout=5, max_retries=0)
        team_view = view.with_team("t1")

        assert view._core is rg._core
        assert team_view._core is rg._core
        assert team_view.team_id == "t1"
        await view.get_job("a1", "j1")
        assert rg._core.http.is_closed is False


async def test_with_options_changes_timeout_and_retries_of_its_calls_only() -> None:
    """The view's calls send its timeout and try once; the client's keep the defaults."""
    seen: list[dict[str, float | None]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.extensions["timeout"])
        return httpx.Response(503)

    async with mock_client(handler, retry=NO_WAIT) as rg:
        with pytest.raises(ServerError):
            await rg.with_options(timeout=2.5, max_retries=0).get_app("a1")
        view_calls = list(seen)
        seen.clear()
        with pytest.raises(ServerError):
            await rg.get_app("a1")

    assert view_calls == [{"connect": 2.5, "read": 2.5, "write": 2.5, "pool": 2.5}]
    assert len(seen) == NO_WAIT.max_attempts
    assert seen[0]["read"] == 60.0


async def test_with_options_timeout_bounds_a_silent_server() -> None:
    """Over a real socket, the view's short timeout ends a call the default would hold."""

    async def silent(stream: anyio.abc.SocketStream) -> None:
        await read_request_head(stream)
        await anyio.sleep_forever()

    async with raw_server(silent) as base_url, AsyncRunGen(API_KEY, base_url=base_url) as rg:
        with anyio.fail_after(5), pytest.raises(APITimeoutError):
            await rg.with_options(timeout=0.05, max_retries=0).get_app("a1")


def test_with_options_refuses_a_negative_retry_count() -> None:
    """max_retries=-1 is an error that names the argument."""
    rg = mock_client(lambda request: httpx.Response(200))

    with pytest.raises(ValueError, match="max_retries"):
        rg.with_options(max_retries=-1)


# -- one event loop ----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_second_event_loop_gets_an_error_that_says_what_to_do(backend: str) -> None:
    """As when a notebook cell re-runs asyncio.run(): the error names the rule and the fix."""
    rg = mock_client(lambda request: httpx.Response(200, json=JOB))

    async def call() -> str:
        return (await rg.get_job("a1", "j1")).id

    assert anyio.run(call, backend=backend) == "j1"
    with pytest.raises(RuntimeError, match="belong to one event loop") as caught:
        anyio.run(call, backend=backend)

    assert "Create the client inside the loop" in str(caught.value)
    assert "Transport" not in str(caught.value)


def test_the_default_engine_gets_the_same_loop_error() -> None:
    """With the SDK's own engine underneath, the error is still about the client."""
    rg: AsyncRunGen | None = None

    async def first_cell() -> None:
        nonlocal rg
        async with raw_server(answering(JOB)) as base_url:
            rg = AsyncRunGen(API_KEY, base_url=base_url)
            await rg.get_job("a1", "j1")
            await rg.aclose()

    async def second_cell() -> None:
        assert rg is not None
        await rg.get_job("a1", "j1")

    anyio.run(first_cell)
    with pytest.raises(RuntimeError, match="an AsyncRunGen and its connections belong"):
        anyio.run(second_cell)


# -- proxies ---------------------------------------------------------------------------------------


async def test_env_proxy_falls_back_to_httpx_and_logs_once_why(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """With HTTP_PROXY set, calls go through the proxy; the reason is logged once."""
    seen: list[bytes] = []
    caplog.set_level(logging.INFO, logger="rungen_async")
    async with raw_server(answering(JOB, seen)) as proxy_url:
        monkeypatch.setenv("HTTP_PROXY", proxy_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        async with AsyncRunGen(
            API_KEY, base_url="http://rungen.test", allow_insecure_http=True
        ) as rg:
            await rg.get_job("a1", "j1")
            await rg.get_job("a1", "j1")

    assert len(seen) == 2
    assert seen[0].startswith(b"GET http://rungen.test/app/a1/job/j1 HTTP/1.1")
    why = [r.getMessage() for r in caplog.records if "proxy" in r.getMessage()]
    assert len(why) == 1
    assert "rungen.test" in why[0]
