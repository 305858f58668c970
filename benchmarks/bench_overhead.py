"""
Scenario 1, per-request overhead: client CPU per request and requests/s at each concurrency.

Every client makes the same two calls against `benchmarks.server` (a separate process): submit a
job (``POST /app/{id}/run_async`` with a small JSON body, read the job id from the JSON answer)
and fetch a job (``GET /app/{id}/job/{job_id}``, decode the JSON). CPU is this process's CPU
time (`time.process_time`), not wall time, so a slow server cannot flatter a client.

Adding a client is one decorated function: an async context manager that takes the base URL
and yields an `Ops` (see the examples below).
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from benchmarks.server import INPUT

APP_ID = "0b9e4a52-6c1d-4f1e-9a77-3f0c2d8e1a10"
API_KEY = "rg-bench-key-0123456789"
SUBMIT_PATH = f"/app/{APP_ID}/run_async"
HEADERS = {"x-api-key": API_KEY}
OPERATIONS = ("submit_job", "get_job")


@dataclass(frozen=True)
class Ops:
    """The two calls a client makes: submit a job (returning its id) and fetch one."""

    submit_job: Callable[[], Awaitable[str]]
    get_job: Callable[[str], Awaitable[object]]


@dataclass(frozen=True)
class Client:
    """A benchmarked client.

    Args:
        name: Short key used in results and on the command line.
        label: What the table shows.
        open: Opens the client against a base URL and yields its `Ops`.
        same_transport: The raw loop on the same HTTP engine, for the SDK-overhead ratio.
        server: Which server it talks to: ``"h1"`` (`benchmarks.server`) or ``"h2"``
            (`benchmarks.server_h2`, HTTP/2 without TLS).
    """

    name: str
    label: str
    open: Callable[[str], AbstractAsyncContextManager[Ops]]
    same_transport: str | None = None
    server: str = "h1"


CLIENTS: dict[str, Client] = {}

# The baselines every ratio is computed against, measured in the same run.
BASELINES = ("httpx-default", "aiohttp")


def client(
    name: str, label: str, *, same_transport: str | None = None, server: str = "h1"
) -> Callable[[Callable[[str], AsyncIterator[Ops]]], Callable[[str], AsyncIterator[Ops]]]:
    """Register an async-generator function as a benchmarked client."""

    def register(
        func: Callable[[str], AsyncIterator[Ops]],
    ) -> Callable[[str], AsyncIterator[Ops]]:
        CLIENTS[name] = Client(name, label, asynccontextmanager(func), same_transport, server)
        return func

    return register


def _httpx_ops(http: httpx.AsyncClient) -> Ops:
    """What a user hand-writes with httpx: send, check the status, decode the JSON."""

    async def submit_job() -> str:
        response = await http.post(SUBMIT_PATH, json={"input": INPUT})
        response.raise_for_status()
        job_id: str = response.json()["job_id"]
        return job_id

    async def get_job(job_id: str) -> object:
        response = await http.get(f"/app/{APP_ID}/job/{job_id}")
        response.raise_for_status()
        return response.json()["data"]

    return Ops(submit_job, get_job)


@client("httpx-default", "httpx AsyncClient, defaults")
async def httpx_default(base_url: str) -> AsyncIterator[Ops]:
    """httpx 0.28 as most people use it: 100 connections, 20 kept alive."""
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS) as http:
        yield _httpx_ops(http)


@client("httpx-64", "httpx AsyncClient, 64 connections kept alive")
async def httpx_64(base_url: str) -> AsyncIterator[Ops]:
    """httpx with the SDK's limits: no connection churn, so only the pool's own cost remains."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, limits=limits) as http:
        yield _httpx_ops(http)


@client("httpx-http2", "httpx AsyncClient, HTTP/2 (h2c)", server="h2")
async def httpx_http2(base_url: str) -> AsyncIterator[Ops]:
    """httpx over HTTP/2 (prior knowledge, no TLS): one connection multiplexes the requests."""
    async with httpx.AsyncClient(
        base_url=base_url, headers=HEADERS, http1=False, http2=True
    ) as http:
        yield _httpx_ops(http)


@client("httpx-aiohttp", "httpx AsyncClient over AiohttpTransport")
async def httpx_aiohttp(base_url: str) -> AsyncIterator[Ops]:
    """The same httpx code, with rungen_async's aiohttp-backed transport (64 connections)."""
    from rungen_async import AiohttpTransport

    async with _httpx_over(base_url, AiohttpTransport(limit=64)) as ops:
        yield ops


@client("httpx-wire", "httpx AsyncClient over WireTransport")
async def httpx_wire(base_url: str) -> AsyncIterator[Ops]:
    """The same httpx code, with rungen_async's own HTTP/1.1 transport (64 connections)."""
    from rungen_async import WireTransport

    async with _httpx_over(base_url, WireTransport(limit=64)) as ops:
        yield ops


@asynccontextmanager
async def _httpx_over(base_url: str, transport: httpx.AsyncBaseTransport) -> AsyncIterator[Ops]:
    """The hand-written httpx loop over *transport*: a raw loop on one of the SDK's engines."""
    async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, transport=transport) as http:
        yield _httpx_ops(http)


@client("aiohttp", "aiohttp ClientSession, hand-written")
async def aiohttp_raw(base_url: str) -> AsyncIterator[Ops]:
    """A hand-written aiohttp loop with the same 64-connection limit."""
    import aiohttp

    connector = aiohttp.TCPConnector(limit=64)
    async with aiohttp.ClientSession(base_url, headers=HEADERS, connector=connector) as session:

        async def submit_job() -> str:
            async with session.post(SUBMIT_PATH, json={"input": INPUT}) as response:
                response.raise_for_status()
                job_id: str = (await response.json())["job_id"]
                return job_id

        async def get_job(job_id: str) -> object:
            async with session.get(f"/app/{APP_ID}/job/{job_id}") as response:
                response.raise_for_status()
                return (await response.json())["data"]

        yield Ops(submit_job, get_job)


class _FloorConnection(asyncio.Protocol):
    """One HTTP/1.1 connection that parses only what the floor client needs."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data
        end_of_head = buffer.find(b"\r\n\r\n")
        if end_of_head >= 0:
            head = buffer[:end_of_head]
            at = head.lower().find(b"content-length:")
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end >= 0 else None])
            end = end_of_head + 4 + length
            if len(buffer) >= end and self._waiter is not None:
                self._buffer = buffer[end:]
                self._waiter.set_result((int(head[9:12]), buffer[end_of_head + 4 : end]))
                return
        self._buffer = buffer

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("server closed the connection"))

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


@client("floor", "bare asyncio protocol (the floor)")
async def floor(base_url: str) -> AsyncIterator[Ops]:
    """The least Python can do: pre-built request lines, one connection per request in flight."""
    url = httpx.URL(base_url)
    host, port = url.host, url.port or 80
    loop = asyncio.get_running_loop()
    idle: list[_FloorConnection] = []
    opened: list[_FloorConnection] = []
    head = f"Host: {host}:{port}\r\nx-api-key: {API_KEY}\r\n".encode()

    async def exchange(request: bytes) -> tuple[int, bytes]:
        if idle:
            connection = idle.pop()
        else:
            _, connection = await loop.create_connection(_FloorConnection, host, port)
            opened.append(connection)
        result = await connection.exchange(request)
        idle.append(connection)
        return result

    async def submit_job() -> str:
        body = json.dumps({"input": INPUT}).encode()
        status, answer = await exchange(
            b"POST " + SUBMIT_PATH.encode() + b" HTTP/1.1\r\n" + head
            + b"Content-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body
        )  # fmt: skip
        if status != 201:
            raise RuntimeError(f"submit answered {status}")
        job_id: str = json.loads(answer)["job_id"]
        return job_id

    async def get_job(job_id: str) -> object:
        status, answer = await exchange(
            f"GET /app/{APP_ID}/job/{job_id} HTTP/1.1\r\n".encode() + head + b"\r\n"
        )
        if status != 200:
            raise RuntimeError(f"get answered {status}")
        return json.loads(answer)["data"]

    try:
        yield Ops(submit_job, get_job)
    finally:
        for connection in opened:
            if connection.transport is not None:
                connection.transport.close()


def _sdk_ops(rg: Any) -> Ops:
    async def submit_job() -> str:
        job = await rg.submit_job(APP_ID, input=INPUT)
        job_id: str = job.id
        return job_id

    async def get_job(job_id: str) -> object:
        return await rg.get_job(APP_ID, job_id)

    return Ops(submit_job, get_job)


@client("sdk-default", "AsyncRunGen, default transport", same_transport="httpx-wire")
async def sdk_default(base_url: str) -> AsyncIterator[Ops]:
    """The SDK exactly as a user gets it (its default transport, WireTransport, and limits)."""
    from rungen_async import AsyncRunGen

    async with AsyncRunGen(API_KEY, base_url=base_url) as rg:
        yield _sdk_ops(rg)


@client("sdk-aiohttp", "AsyncRunGen over AiohttpTransport", same_transport="httpx-aiohttp")
async def sdk_aiohttp(base_url: str) -> AsyncIterator[Ops]:
    """The SDK with the aiohttp-backed transport (64 connections)."""
    from rungen_async import AsyncRunGen
    from rungen_async._http._aiohttp import AiohttpTransport

    async with AsyncRunGen(API_KEY, base_url=base_url, transport=AiohttpTransport(limit=64)) as rg:
        yield _sdk_ops(rg)


def available_clients() -> list[str]:
    """Registered clients whose imports work here (the SDK, h2 and hypercorn are optional)."""
    names = []
    for name in CLIENTS:
        try:
            if name.startswith("sdk"):
                from rungen_async import AsyncRunGen  # noqa: F401
            if CLIENTS[name].server == "h2":
                import h2  # noqa: F401
                import hypercorn  # noqa: F401
        except ImportError:
            continue
        names.append(name)
    return names


@dataclass(frozen=True)
class Sample:
    """One measured cell: a client doing one operation at one concurrency."""

    client: str
    operation: str
    concurrency: int
    repeat: int
    requests: int
    wall_s: float
    cpu_s: float

    @property
    def cpu_us(self) -> float:
        """Client CPU microseconds per request."""
        return self.cpu_s / self.requests * 1e6

    @property
    def per_s(self) -> float:
        """Requests completed per wall-clock second."""
        return self.requests / self.wall_s

    def as_dict(self) -> dict[str, Any]:
        """The sample with its derived figures, for results.json."""
        return {**asdict(self), "cpu_us": self.cpu_us, "per_s": self.per_s}


async def _drive(
    call: Callable[[], Awaitable[object]], concurrency: int, requests: int, max_seconds: float
) -> tuple[int, float, float]:
    """Run *call* from *concurrency* workers until *requests* were issued or time is up."""
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            await call()

    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tg:
        for _ in range(concurrency):
            tg.create_task(worker())
    return issued, time.perf_counter() - wall0, time.process_time() - cpu0


async def measure_client(
    name: str,
    base_url: str,
    *,
    concurrencies: Sequence[int],
    requests: int,
    max_seconds: float,
    repeat: int,
) -> list[Sample]:
    """Measure every operation at every concurrency for one client, warm connections first."""
    samples = []
    async with CLIENTS[name].open(base_url) as ops:
        job_id = await ops.submit_job()
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "submit_job": ops.submit_job,
            "get_job": lambda: ops.get_job(job_id),
        }
        for operation in OPERATIONS:
            call = calls[operation]
            for concurrency in concurrencies:
                # Warm-up: open the connections this concurrency needs, fill caches.
                await _drive(call, concurrency, max(2 * concurrency, requests // 10), max_seconds)
                done, wall, cpu = await _drive(call, concurrency, requests, max_seconds)
                samples.append(Sample(name, operation, concurrency, repeat, done, wall, cpu))
                print(
                    f"  {name:14} {operation:10} c={concurrency:<4} {done:6} req "
                    f"{samples[-1].cpu_us:9.0f} us CPU/req {samples[-1].per_s:9.0f} req/s",
                    flush=True,
                )
    return samples


def run(
    base_urls: dict[str, str],
    *,
    clients: Sequence[str],
    concurrencies: Sequence[int],
    requests: int,
    max_seconds: float,
    repeats: int,
) -> list[Sample]:
    """Run the scenario; repeats interleave the clients so machine noise spreads evenly."""
    samples: list[Sample] = []
    for repeat in range(repeats):
        print(f"overhead: repeat {repeat + 1}/{repeats}", flush=True)
        for name in clients:
            samples += asyncio.run(
                measure_client(
                    name,
                    base_urls[CLIENTS[name].server],
                    concurrencies=concurrencies,
                    requests=requests,
                    max_seconds=max_seconds,
                    repeat=repeat,
                )
            )
    return samples


def summarise(samples: Sequence[Sample]) -> list[dict[str, Any]]:
    """Median and range per cell, with ratios against the baselines of the same run."""
    cells: dict[tuple[str, str, int], list[Sample]] = {}
    for sample in samples:
        cells.setdefault((sample.client, sample.operation, sample.concurrency), []).append(sample)
    medians = {key: statistics.median(s.cpu_us for s in group) for key, group in cells.items()}
    rows = []
    for (name, operation, concurrency), group in cells.items():
        cpu = medians[(name, operation, concurrency)]
        row: dict[str, Any] = {
            "client": name,
            "label": CLIENTS[name].label,
            "operation": operation,
            "concurrency": concurrency,
            "samples": len(group),
            "requests": sum(s.requests for s in group),
            "cpu_us": cpu,
            "cpu_us_min": min(s.cpu_us for s in group),
            "cpu_us_max": max(s.cpu_us for s in group),
            "per_s": statistics.median(s.per_s for s in group),
            "per_s_min": min(s.per_s for s in group),
            "per_s_max": max(s.per_s for s in group),
        }
        for baseline in BASELINES:
            base = medians.get((baseline, operation, concurrency))
            row[f"vs_{baseline}"] = cpu / base if base else None
        same = CLIENTS[name].same_transport
        base = medians.get((same, operation, concurrency)) if same else None
        row["vs_same_transport"] = cpu / base if base else None
        rows.append(row)
    return rows
