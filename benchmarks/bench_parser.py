"""
Parser cost: CPU per small JSON response, for the SDK's connection and for bare parsers.

``python -m benchmarks.bench_parser [--responses N] [--legacy REF]``

Feeds the same typical API answer (a 200 with a ~200-byte JSON job, as `benchmarks.server`
sends) N times to: the SDK's `Connection` (httptools/llhttp plus the SDK's glue, through its
real ``send``/``data_received`` path on a fake transport); bare httptools; bare h11; and, with
``--legacy REF``, the hand-written parser `WireTransport` had at git revision REF (read with
``git show REF:rungen_async/_http/_wire.py``), through the same path.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import time
import types
from collections.abc import Callable
from typing import Any

import h11
import httptools

from rungen_async._http._connection import Connection

BODY = (
    b'{"id":"job_0123456789abcdef","status":"COMPLETED","createdAt":"2026-01-01T00:00:00Z",'
    b'"result":{"images":["https://cdn.example/a.png"]},"executionTime":1234,"delayTime":5}'
)
RESPONSE = (
    b"HTTP/1.1 200 OK\r\ndate: Sun, 06 Dec 2026 12:00:00 GMT\r\nserver: uvicorn\r\n"
    b"content-type: application/json\r\n" + f"content-length: {len(BODY)}\r\n\r\n".encode() + BODY
)
REQUEST = b"GET /app/a/job/j HTTP/1.1\r\nHost: api.test\r\n\r\n"


class _Sink(asyncio.Transport):
    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return False


async def _through_connection(make: Callable[[asyncio.AbstractEventLoop], Any], n: int) -> float:
    loop = asyncio.get_running_loop()
    connection = make(loop)
    connection.connection_made(_Sink())
    start = time.process_time()
    for _ in range(n):
        task = loop.create_task(connection.send(REQUEST, False, 5.0, None))
        await asyncio.sleep(0)  # the request is written, the response awaited
        connection.data_received(RESPONSE)
        reply = await task
    elapsed = time.process_time() - start
    assert reply.content == BODY
    return elapsed


def _bare_httptools(n: int) -> float:
    class Sink:
        def on_header(self, name: bytes, value: bytes) -> None:
            pass

        def on_body(self, body: bytes) -> None:
            pass

    start = time.process_time()
    for _ in range(n):
        httptools.HttpResponseParser(Sink()).feed_data(RESPONSE)
    return time.process_time() - start


def _bare_h11(n: int) -> float:
    start = time.process_time()
    for _ in range(n):
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "api.test")]))
        conn.send(h11.EndOfMessage())
        conn.receive_data(RESPONSE)
        while not isinstance(conn.next_event(), h11.EndOfMessage):
            pass
    return time.process_time() - start


def _legacy(ref: str) -> type[Any] | None:
    """The hand-written `_Connection` of *ref*, or ``None`` where git or the file is missing."""
    try:
        source = subprocess.run(
            ["git", "show", f"{ref}:rungen_async/_http/_wire.py"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    module = types.ModuleType("legacy_wire")
    exec(compile(source, "legacy_wire.py", "exec"), module.__dict__)
    legacy: type[Any] = module._Connection
    return legacy


def main(argv: list[str] | None = None) -> None:
    """Time each parser and print microseconds of CPU per response."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_parser")
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--legacy", help="git revision with the hand-written parser, e.g. main")
    args = parser.parse_args(argv)
    n = args.responses
    rows: list[tuple[str, float]] = [
        ("SDK Connection (httptools)", asyncio.run(_through_connection(Connection, n))),
        ("bare httptools", _bare_httptools(n)),
        ("bare h11", _bare_h11(n)),
    ]
    legacy = _legacy(args.legacy) if args.legacy else None
    if legacy is not None:
        seconds = asyncio.run(_through_connection(legacy, n))
        rows.insert(1, (f"hand-written ({args.legacy})", seconds))
    for label, seconds in rows:
        print(f"{label:32} {seconds / n * 1e6:8.2f} us CPU/response")


if __name__ == "__main__":
    main()
