"""
Idle-close churn: requests lost when a server closes kept-alive connections after 1 s idle.

``python -m benchmarks.bench_churn [--connections 32] [--rounds 4]``

A raw asyncio server (in its own thread and event loop) closes every connection that has been
idle for exactly 1 s, as nginx does with ``keepalive_timeout 1s``; nginx itself is measured
too where it is installed. Each client keeps *connections* requests going, each pausing a time
drawn around 1 s between two requests, so connections are reused just as the server closes
them. Reported per client, in the same run: failed GETs, and POSTs whose outcome is unknown
(an error that does not prove the request unsent).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import subprocess
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import httpx

from rungen_async import WireTransport

IDLE_TIMEOUT = 1.0
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}"
UNSENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _IdleClosing(asyncio.Protocol):
    """Answers each request; closes the connection after IDLE_TIMEOUT seconds without one."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.buffer = b""
        self.loop = asyncio.get_running_loop()
        self.timer = self.loop.call_later(IDLE_TIMEOUT, transport.close)

    def data_received(self, data: bytes) -> None:
        self.timer.cancel()
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                break
            self.buffer = rest[length:]
            self.transport.write(ANSWER)
        self.timer = self.loop.call_later(IDLE_TIMEOUT, self.transport.close)


@contextmanager
def python_server() -> Iterator[str]:
    """The idle-closing server in a thread (and event loop) of its own; yields its URL."""
    with serve_in_thread(_IdleClosing) as url:
        yield url


@contextmanager
def serve_in_thread(protocol: Callable[[], asyncio.Protocol]) -> Iterator[str]:
    """Serve *protocol* on 127.0.0.1 from a thread with its own event loop; yields the URL."""
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(protocol, "127.0.0.1", 0))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(server.close)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@contextmanager
def nginx_server() -> Iterator[str | None]:
    """nginx with ``keepalive_timeout 1s`` where installed (``None`` otherwise)."""
    binary = shutil.which("nginx")
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory() as directory:
        port = _free_port()
        conf = Path(directory, "nginx.conf")
        conf.write_text(
            f"daemon off; worker_processes 1; pid {directory}/nginx.pid; error_log stderr;\n"
            "events {}\nhttp { access_log off; keepalive_timeout 1s; keepalive_requests 100000;"
            f" server {{ listen 127.0.0.1:{port}; location / {{ return 200 '{{}}'; }} }} }}\n"
        )
        process = subprocess.Popen([binary, "-p", directory, "-c", str(conf)])
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(10)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@asynccontextmanager
async def _client(name: str) -> AsyncIterator[httpx.AsyncClient]:
    transport = WireTransport() if name == "sdk" else httpx.AsyncHTTPTransport()
    async with httpx.AsyncClient(transport=transport, timeout=5.0) as client:
        yield client


async def churn(url: str, name: str, method: str, connections: int, rounds: int) -> tuple[int, int]:
    """(requests, lost) for *rounds* requests on each of *connections* concurrent lanes."""
    lost = 0
    rng = random.Random(1)

    async def lane(client: httpx.AsyncClient) -> None:
        nonlocal lost
        for _ in range(rounds):
            try:
                await client.request(method, url, content=b"{}" if method == "POST" else None)
            except UNSENT:
                pass  # provably unsent: a POST may be re-sent, a GET was not lost
            except httpx.TransportError:
                lost += 1
            await asyncio.sleep(IDLE_TIMEOUT + rng.uniform(-0.01, 0.01))

    async with _client(name) as client:
        await asyncio.gather(*(lane(client) for _ in range(connections)))
    return connections * rounds, lost


def main(argv: list[str] | None = None) -> None:
    """Run each client against each server and print what was lost."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_churn")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    with python_server() as python_url, nginx_server() as nginx_url:
        servers = {"python": python_url, "nginx": nginx_url}
        for server, url in servers.items():
            if url is None:
                print(f"{server}: not installed, skipped")
                continue
            for name in ("sdk", "httpx"):
                for method, what in (("GET", "failed GETs"), ("POST", "ambiguous POSTs")):
                    sent, lost = asyncio.run(
                        churn(url, name, method, args.connections, args.rounds)
                    )
                    print(f"{server:6} {name:5} {what:15} {lost:4} of {sent}")


if __name__ == "__main__":
    main()
