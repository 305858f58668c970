"""
The ASGI application that serves an `Emulator` over HTTP, and uvicorn glue.

A dropped connection needs the server's cooperation: an ASGI app cannot close its socket.
uvicorn closes the transport without writing a byte when the app *returns a value* instead
of `None` before starting a response (`uvicorn/protocols/http/h11_impl.py`, ``run_asgi``),
so that is how a drop is made; the client sees the connection close with no response
(httpx: ``RemoteProtocolError: Server disconnected without sending a response``). uvicorn
logs that return value as an error, so `quiet_dropped_connections()` filters exactly those
records out of ``uvicorn.error``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

import anyio

from ._emulator import Emulator
from ._http import EmulatorRequest

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: What the app returns to make uvicorn drop the connection.
DROP_CONNECTION: Final = "rungen-emulator: dropped connection (injected fault)"


class _DropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.args, tuple) and DROP_CONNECTION in record.args)


def quiet_dropped_connections() -> None:
    """Stop uvicorn logging an error for each injected dropped connection (idempotent)."""
    uvicorn_logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(existing, _DropFilter) for existing in uvicorn_logger.filters):
        uvicorn_logger.addFilter(_DropFilter())


def _base_url(scope: Scope, headers: dict[str, str]) -> str:
    scheme = scope.get("scheme", "http")
    host = headers.get("host")
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}"


class EmulatorASGI:
    """An ASGI 3 application around *emulator*; serve it with uvicorn (``http="h11"``).

    Injected latency sleeps on the server's event loop, so slow responses do not hold up
    other requests.
    """

    def __init__(self, emulator: Emulator | None = None) -> None:
        self.emulator = emulator or Emulator()
        quiet_dropped_connections()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> str | None:
        """Serve one ASGI connection scope."""
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return None
        if scope["type"] != "http":
            return None
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1")
            for name, value in scope.get("headers", [])
        }
        request = EmulatorRequest(
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            body=bytes(body),
            query=scope.get("query_string", b"").decode("latin-1"),
            base_url=_base_url(scope, headers),
        )
        response = self.emulator.handle(request)
        if response.delay > 0:
            await anyio.sleep(response.delay)
        if response.drop is not None:
            return DROP_CONNECTION
        response_headers = [
            (name.encode("latin-1"), value.encode("latin-1")) for name, value in response.headers
        ]
        if response.status != 204:
            response_headers.append((b"content-length", str(len(response.body)).encode()))
        await send(
            {"type": "http.response.start", "status": response.status, "headers": response_headers}
        )
        await send({"type": "http.response.body", "body": response.body})
        return None

    @staticmethod
    async def _lifespan(receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
