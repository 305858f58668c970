"""
The benchmark API over HTTP/2 without TLS (h2c): ``python -m benchmarks.server_h2``.

Only for the httpx HTTP/2 row: a bare ASGI app served by hypercorn, which costs far more server
CPU than `benchmarks.server`, but runs on the other CPU, so the client's figures stay the
client's. Same endpoints and answers as `benchmarks.server`; same ``READY <port>`` protocol.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.server import completed, run, stop_event, submitted

_counter = itertools.count(1)
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _split(raw: bytes) -> tuple[bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1]
    return status, body


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Answer run_async and job GETs with the same bodies as the HTTP/1.1 server."""
    if scope["type"] != "http":
        return
    more = True
    while more:  # drain the request body
        message = await receive()
        more = message.get("more_body", False)
    parts = scope["path"].split("/")
    if scope["method"] == "POST" and len(parts) == 4 and parts[3] == "run_async":
        status, body = _split(submitted(parts[2].encode(), next(_counter)))
    elif scope["method"] == "GET" and len(parts) == 5 and parts[3] == "job":
        status, body = _split(completed(parts[4].encode()))
    else:
        status, body = b"404", b'{"error": "no such endpoint"}'
    await send(
        {
            "type": "http.response.start",
            "status": int(status),
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def serve(port: int) -> None:
    """Serve h2c until stdin closes or SIGTERM arrives."""
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    sock.close()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    config.errorlog = None
    config.h2_max_concurrent_streams = 1000
    config.keep_alive_max_requests = 10**9  # its default of 1,000 sends GOAWAY mid-run
    stop = stop_event()
    task = asyncio.create_task(hypercorn_serve(app, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    await asyncio.sleep(0.5)  # hypercorn has no "listening" callback
    print(f"READY {port}", flush=True)
    await task


def main() -> None:
    """Parse arguments, pin to a CPU if asked, and serve."""
    run(serve, __doc__.split("\n\n")[0])


if __name__ == "__main__":
    main()
