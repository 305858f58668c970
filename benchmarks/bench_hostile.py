"""
Memory against hostile servers: resident memory a client gains reading an endless answer.

``python -m benchmarks.bench_hostile [--trailer-mib 200] [--body-mib 256]``

Two loopback servers (raw asyncio, in a thread of their own): one sends a chunked answer whose
trailers never end (*trailer-mib* of them), one a chunked body of *body-mib*. Each client
(the SDK's `WireTransport`, httpx's defaults) reads each in a fresh subprocess, which reports
its peak RSS above the baseline it had before the request, and how the request ended.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from benchmarks.bench_churn import serve_in_thread

MiB = 1 << 20
PIECE = b"a" * 65536


class _Flood(asyncio.Protocol):
    """Answers the first request with a head and then *size* bytes of *kind*."""

    kind = "trailer"
    size = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sent = 0
        self.started = False

    def data_received(self, data: bytes) -> None:
        if not self.started and b"\r\n\r\n" in data:
            self.started = True
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            if self.kind == "trailer":
                head += b"2\r\nok\r\n0\r\nX-T: "
            self.transport.write(head)
            self.resume_writing()

    def resume_writing(self) -> None:
        piece = PIECE if self.kind == "trailer" else b"10000\r\n" + PIECE + b"\r\n"
        while self.sent < self.size and not self.transport.is_closing():
            self.transport.write(piece)
            self.sent += len(PIECE)
            if self.transport.get_write_buffer_size() > 4 * MiB:
                return  # pause_writing follows; resume_writing calls back
        if self.sent >= self.size and not self.transport.is_closing():
            self.transport.write(b"\r\n\r\n" if self.kind == "trailer" else b"0\r\n\r\n")

    def pause_writing(self) -> None:
        pass


@contextmanager
def flood_server(kind: str, size: int) -> Iterator[str]:
    """A flooding server in its own thread and loop; yields its URL."""
    protocol = type("Flood", (_Flood,), {"kind": kind, "size": size})
    with serve_in_thread(protocol) as url:
        yield url


async def _fetch(client_name: str, url: str) -> str:
    from rungen_async import WireTransport

    transport = WireTransport() if client_name == "sdk" else httpx.AsyncHTTPTransport()
    async with httpx.AsyncClient(transport=transport, timeout=60.0) as client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {str(exc)[:60]}"
        return f"{response.status_code}, {len(response.content) / MiB:.0f} MiB body"


def _child(client_name: str, url: str) -> None:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    outcome = asyncio.run(_fetch(client_name, url))
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"outcome": outcome, "rss_mib": (after - before) / 1024}))


def main(argv: list[str] | None = None) -> None:
    """Run each client against each flood in a subprocess and print RSS gained."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_hostile")
    parser.add_argument("--trailer-mib", type=int, default=200)
    parser.add_argument("--body-mib", type=int, default=256)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(*args.child)
        return
    for kind, mib in (("trailer", args.trailer_mib), ("body", args.body_mib)):
        with flood_server(kind, mib * MiB) as url:
            for name in ("sdk", "httpx"):
                command = [sys.executable, "-m", "benchmarks.bench_hostile", "--child", name, url]
                result = json.loads(subprocess.run(command, capture_output=True, check=True).stdout)
                print(
                    f"{mib:5} MiB {kind:7} {name:5} +{result['rss_mib']:7.1f} MiB RSS  "
                    f"{result['outcome']}"
                )


if __name__ == "__main__":
    main()
