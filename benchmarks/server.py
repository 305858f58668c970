"""
A minimal, fast RunGen API stand-in for benchmarks: ``python -m benchmarks.server``.

A bare asyncio protocol with pre-rendered responses, so that nearly all CPU measured on the
client side is the client's. It answers only the two endpoints the overhead benchmark calls:

* ``POST /app/{id}/run_async`` -> 201 and a new QUEUED job (rungen-api.md section 4.6, variant A)
* ``GET /app/{id}/job/{job_id}`` -> 200 and the job COMPLETED (section 4.7)

It prints ``READY <port>`` once listening, and exits when its stdin closes (so it never
outlives the benchmark that started it) or on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

INPUT = {"prompt": "a lighthouse at dawn, watercolor", "height": 1024, "width": 1024}
_INPUT_JSON = json.dumps(INPUT).encode()
_CREATED_T = b"2025-03-02T09:05:12"
_CREATED_S = b"2025-03-02 09:05:12"


def _response(status: bytes, body: bytes) -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


def _job_id(n: int) -> bytes:
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:]}".encode()


def submitted(app_id: bytes, n: int) -> bytes:
    """The 201 answer to a run_async POST."""
    body = (
        b'{"job_id": "' + _job_id(n) + b'", "status": "QUEUED", "app_id": "' + app_id + b'", '
        b'"created_at": "' + _CREATED_T + b'", "input": ' + _INPUT_JSON + b"}"
    )
    return _response(b"201 Created", body)


def completed(job_id: bytes) -> bytes:
    """The 200 answer to a job GET: the job finished, with one image."""
    body = (
        b'{"data": {"id": "' + job_id + b'", "status": "COMPLETED", '
        b'"created_at": "' + _CREATED_S + b'", "execution_time": "1.0", '
        b'"request": ' + _INPUT_JSON + b', "result": {"images": '
        b'[{"image": "http://127.0.0.1/x.png"}]}}}'
    )
    return _response(b"200 OK", body)


_NOT_FOUND = _response(b"404 Not Found", b'{"error": "no such endpoint"}')
_counter = itertools.count(1)

#: Answers one request: (method, request target, head, lowercased head, body) -> response.
Handler = Callable[[bytes, bytes, bytes, bytes, bytes], bytes]


def handle(method: bytes, target: bytes, head: bytes, lowered: bytes, body: bytes) -> bytes:
    """Answer the two endpoints the overhead benchmark calls."""
    parts = target.partition(b"?")[0].split(b"/")
    # ["", "app", app_id, "run_async"] or ["", "app", app_id, "job", job_id]
    if method == b"POST" and len(parts) == 4 and parts[3] == b"run_async":
        return submitted(parts[2], next(_counter))
    if method == b"GET" and len(parts) == 5 and parts[3] == b"job":
        return completed(parts[4])
    return _NOT_FOUND


class HTTPConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection; answers pipelined requests in order."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        out = []
        close = False
        while True:
            end_of_head = buffer.find(b"\r\n\r\n")
            if end_of_head < 0:
                break
            head = buffer[:end_of_head]
            lowered = head.lower()
            length = 0
            at = lowered.find(b"\r\ncontent-length:")
            if at >= 0:
                line_end = lowered.find(b"\r\n", at + 2)
                length = int(head[at + 17 : line_end if line_end >= 0 else None])
            end = end_of_head + 4 + length
            if len(buffer) < end:
                break
            body = buffer[end_of_head + 4 : end]
            buffer = buffer[end:]
            close = close or b"\r\nconnection: close" in lowered
            method, _, rest = head.partition(b" ")
            out.append(self._handler(method, rest.partition(b" ")[0], head, lowered, body))
        self._buffer = buffer
        assert self._transport is not None
        if out:
            self._transport.write(b"".join(out) if len(out) > 1 else out[0])
        if close:
            self._transport.close()


def stop_event() -> asyncio.Event:
    """An event set by SIGTERM, SIGINT or the end of stdin (the benchmark that started us)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 4096) else None)
    return stop


async def serve_http(port: int, handler: Handler) -> None:
    """Serve *handler* over HTTP/1.1 on loopback until `stop_event()` fires."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: HTTPConnection(handler), "127.0.0.1", port, backlog=4096
    )
    stop = stop_event()
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await stop.wait()
    server.close()


async def serve(port: int) -> None:
    """Serve until stdin closes or SIGTERM arrives."""
    await serve_http(port, handle)


def run(serve: Callable[[int], Coroutine[Any, Any, None]], description: str) -> None:
    """Parse ``--port`` and ``--cpu``, pin to that CPU if asked, and run *serve*."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="pin the server to this CPU")
    args = parser.parse_args()
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    asyncio.run(serve(args.port))


def main() -> None:
    """Parse arguments, pin to a CPU if asked, and serve."""
    run(serve, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
