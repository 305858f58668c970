"""
The client's fast lane: what goes on the wire, errors and decoding.

With its own pool on asyncio, `AsyncRunGen` sends through its engine (`WireTransport` by
default, or aiohttp) without building httpx objects. These tests hold both engines to the
httpx path's behaviour, against real loopback servers.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Literal

import httpx
import pytest
from aiohttp import web

from rungen_async import AsyncRunGen, AutoTransport, NotFoundError, RetryPolicy
from rungen_async._exceptions import APIConnectionError
from rungen_async._http._aiohttp import AiohttpTransport
from rungen_async._http._pool import WireTransport
from tests.test_http_engines import free_port, web_server

KEY = "rg-fast-lane-secret-0123456789"
JOB = {"id": "j1", "status": "COMPLETED", "output": {"url": "https://x.test/1.png"}}
NO_WAIT = RetryPolicy(initial_delay=0, max_delay=0, max_retry_after=0)


LANES: dict[str, type[WireTransport] | type[AiohttpTransport]] = {
    "wire": WireTransport,
    "aiohttp": AiohttpTransport,
}


@pytest.fixture
def anyio_backend() -> str:
    """The fast lane exists only on asyncio."""
    return "asyncio"


@pytest.fixture(params=list(LANES))
def lane(request: pytest.FixtureRequest) -> Literal["wire", "aiohttp"]:
    """The engine under the fast lane: every test runs over both."""
    name: Literal["wire", "aiohttp"] = request.param
    return name


def client(lane: Literal["wire", "aiohttp"], base_url: str, **kwargs: Any) -> AsyncRunGen:
    """A client with its own pool over *lane*'s engine."""
    return AsyncRunGen(
        KEY, base_url=base_url, transport=AutoTransport(asyncio_engine=lane), **kwargs
    )


class Recorder:
    """An aiohttp.web app that records each request and answers from a script."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.script: list[web.Response] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(
            {
                "method": request.method,
                "raw_path": request.raw_path,
                "headers": {k.lower(): v for k, v in request.headers.items()},
                "body": await request.read(),
            }
        )
        if self.script:
            return self.script.pop(0)
        if request.method == "POST":
            return web.json_response({"id": "j1", "status": "IN_QUEUE"}, status=201)
        return web.json_response({"data": JOB})


@asynccontextmanager
async def recording_server() -> AsyncIterator[tuple[str, Recorder]]:
    recorder = Recorder()
    async with web_server(
        ("*", "/{tail:.*}", recorder.handle),
    ) as base_url:
        yield base_url, recorder


async def test_fast_lane_is_taken_and_parses_jobs(lane: Literal["wire", "aiohttp"]) -> None:
    async with recording_server() as (base_url, _), client(lane, base_url) as rg:
        submitted = await rg.submit_job("a1", {"prompt": "fox"})
        job = await rg.get_job("a1", "j1")

        assert isinstance(rg._core.fast, LANES[lane])
    assert submitted.id == "j1"
    assert job.status == "COMPLETED"
    assert job.app_id == "a1"


async def test_wire_is_the_same_as_through_httpx(lane: Literal["wire", "aiohttp"]) -> None:
    """Method, path, headers and body match what httpx's own transport sends."""
    async with recording_server() as (base_url, recorder):
        for transport in (AutoTransport(asyncio_engine=lane), httpx.AsyncHTTPTransport()):
            async with AsyncRunGen(KEY, base_url=base_url, team_id="t1", transport=transport) as rg:
                await rg.submit_job("a1", {"prompt": "fox"}, idempotency_key="k-1")
                await rg.get_job("a1", "j1")
    fast, plain = recorder.seen[:2], recorder.seen[2:]

    def comparable(seen: dict[str, Any]) -> dict[str, Any]:
        headers = dict(seen["headers"])
        headers.pop("host")  # the same, but httpx and aiohttp differ on the port's presence
        return {**seen, "headers": headers}

    assert [comparable(s) for s in fast] == [comparable(s) for s in plain]
    post = fast[0]
    assert post["headers"]["x-api-key"] == KEY
    assert post["headers"]["x-team-id"] == "t1"
    assert post["headers"]["idempotency-key"] == "k-1"
    assert post["headers"]["content-type"] == "application/json"
    assert json.loads(post["body"]) == {"input": {"prompt": "fox"}}


async def test_gzip_body_is_decoded(lane: Literal["wire", "aiohttp"]) -> None:
    async with (
        recording_server() as (base_url, recorder),
        client(lane, base_url) as rg,
    ):
        recorder.script.append(
            web.Response(
                body=gzip.compress(json.dumps({"data": JOB}).encode()),
                headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
            )
        )
        job = await rg.get_job("a1", "j1")
    assert job.id == "j1"
    assert job.status == "COMPLETED"


async def test_error_status_raises_typed_error_without_the_key(
    lane: Literal["wire", "aiohttp"],
) -> None:
    async with (
        recording_server() as (base_url, recorder),
        client(lane, base_url) as rg,
    ):
        recorder.script.append(web.json_response({"error": "no such job"}, status=404))
        with pytest.raises(NotFoundError) as caught:
            await rg.get_job("a1", "missing")
    error = caught.value
    assert error.status_code == 404
    assert "no such job" in str(error)
    assert error.response.request.headers["x-api-key"] == "***"
    assert KEY not in repr(error)
    assert KEY not in str(error)


async def test_429_is_retried_after_its_retry_after(lane: Literal["wire", "aiohttp"]) -> None:
    async with (
        recording_server() as (base_url, recorder),
        client(lane, base_url, retry=NO_WAIT) as rg,
    ):
        recorder.script.append(web.json_response({}, status=429, headers={"Retry-After": "0"}))
        job = await rg.get_job("a1", "j1")
    assert job.id == "j1"
    assert len(recorder.seen) == 2
    assert rg._core.retry_count == 1


async def test_refused_connection_is_a_connection_error_without_the_key(
    lane: Literal["wire", "aiohttp"],
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}"
    async with client(lane, base_url, retry=NO_WAIT) as rg:
        fast = rg._core.fast = LANES[lane]()  # as if a first request had chosen the engine
        with pytest.raises(APIConnectionError) as caught:
            await rg.get_job("a1", "j1")
        await fast.aclose()
    cause = caught.value.__cause__
    assert isinstance(cause, httpx.ConnectError)
    assert "x-api-key" not in cause.request.headers
    assert KEY not in str(caught.value)
    assert KEY not in repr(cause)


async def test_base_url_that_needs_encoding_takes_the_httpx_path(
    lane: Literal["wire", "aiohttp"],
) -> None:
    """The fast lane takes URLs as already encoded, so such a base URL goes through httpx."""
    async with (
        recording_server() as (base_url, recorder),
        client(lane, base_url + "/café") as rg,
    ):
        job = await rg.get_job("a1", "j1")
        assert rg._core.fast is None
    assert job.id == "j1"
    assert recorder.seen[0]["raw_path"] == "/caf%C3%A9/app/a1/job/j1"
