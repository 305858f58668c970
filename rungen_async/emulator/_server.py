"""
`EmulatorServer`: uvicorn serving an emulator on loopback from a background thread.

For tests, demos and benchmarks that need a real socket. The socket is bound before the
server starts (port 0 picks a free port), so there is no race for the port.
"""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Any, Self

from ._asgi import EmulatorASGI
from ._emulator import Emulator


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening TCP socket to *host*:*port* (0 picks a free port)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY on accepted sockets only when the
    # listener says TCP, and without it Nagle + delayed ACK add ~40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def uvicorn_config(
    app: EmulatorASGI, *, log_level: str = "warning", access_log: bool = False
) -> Any:
    """A `uvicorn.Config` for *app*: h11 (drops rely on it), no websockets, no lifespan."""
    import uvicorn  # an optional dependency: the ``emulator`` extra

    return uvicorn.Config(
        app,
        http="h11",
        ws="none",
        lifespan="off",
        log_level=log_level,
        access_log=access_log,
        server_header=False,
    )


class EmulatorServer:
    """Serve *emulator* over HTTP on *host*:*port* until stopped; a context manager.

    ``with EmulatorServer() as server:`` starts it and waits until it accepts connections;
    `base_url` is where it listens.
    """

    def __init__(
        self,
        emulator: Emulator | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
    ) -> None:
        self.emulator = emulator or Emulator()
        self.host, self.port = host, port
        self._log_level = log_level
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, *, timeout: float = 10.0) -> Self:
        """Start serving in a daemon thread; return once the server is up.

        Raises:
            RuntimeError: The server did not start within *timeout* seconds.
        """
        import uvicorn

        self._socket = sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn_config(EmulatorASGI(self.emulator), log_level=self._log_level)
        self._server = server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="rungen-emulator", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the emulator server did not start")
            time.sleep(0.005)
        return self

    def stop(self, *, timeout: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()  # uvicorn closes it too; closing twice is harmless
        self._server = self._thread = self._socket = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
