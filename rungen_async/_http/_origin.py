"""
Where a request goes and the bytes it is written as: `Origin` (one scheme://host:port, with
its idle connections) and the request serialisers of `WireTransport`'s two entry points.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

import httpx

from ._shared import bare_request

if TYPE_CHECKING:
    from ._connection import Connection

__all__ = ["Origin", "origin_of", "request_bytes"]

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_UNSAFE: Final = re.compile(rb"[\r\n\x00]")  # what would split or end a header line
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH"})


class Origin:
    """Where one scheme://host:port leads: the connect arguments and the Host header."""

    __slots__ = ("host", "host_header", "idle", "port", "tls")

    def __init__(self, scheme: str, host: str, port: int | None) -> None:
        default = _DEFAULT_PORTS[scheme]
        self.host = host.strip("[]")  # an IPv6 literal connects without its brackets
        self.port = port or default
        self.tls = scheme == "https"
        self.host_header = host if port in (None, default) else f"{host}:{port}"
        # Idle keep-alive connections, the most recently used last (it is the warmest).
        self.idle: list[Connection] = []

    def request_line(
        self,
        method: str,
        url: str,
        target: str,
        headers: Mapping[str, str],
        body: bytes | None,
    ) -> bytes:
        """The bytes of a fast-lane request (see `WireTransport.exchange`)."""
        if " " in target:
            raise httpx.LocalProtocolError(
                "the URL must be percent-encoded (it contains a space)",
                request=bare_request(method, url),
            )
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host_header}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body is not None or method in _BODY_METHODS:
            lines.append(f"Content-Length: {len(body) if body else 0}")
        lines += ("", "")
        text = "\r\n".join(lines)
        if text.count("\n") != len(lines) - 1 or text.count("\r") != len(lines) - 1:
            raise httpx.LocalProtocolError(
                "header names and values must not contain line breaks",
                request=bare_request(method, url),
            )
        try:
            data = text.encode("ascii")
        except UnicodeEncodeError:
            raise httpx.LocalProtocolError(
                "header names and values must be ASCII", request=bare_request(method, url)
            ) from None
        return data + body if body else data


def origin_of(prefix: str) -> Origin:
    """The `Origin` of "scheme://authority", or `httpx.UnsupportedProtocol`."""
    url = httpx.URL(prefix)
    if url.scheme not in _DEFAULT_PORTS:
        raise httpx.UnsupportedProtocol(
            f"WireTransport speaks http and https, not {url.scheme!r}",
            request=httpx.Request("GET", prefix),
        )
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return Origin(url.scheme, host, url.port)


async def request_bytes(request: httpx.Request) -> tuple[bytes, str]:
    """The bytes of an httpx *request* (its body read first) and its "scheme://authority"."""
    url = request.url
    try:
        body = request.content
    except httpx.RequestNotRead:
        body = await request.aread()
    lines = [request.method.encode("ascii"), b" ", url.raw_path, b" HTTP/1.1\r\n"]
    chunked = False
    for name, value in request.headers.raw:
        if _UNSAFE.search(name) or _UNSAFE.search(value):
            raise httpx.LocalProtocolError(
                f"header {name[:40]!r} has a line break or NUL in its name or value",
                request=bare_request(request.method, str(request.url)),
            )
        lines += (name, b": ", value, b"\r\n")
        if name.lower() == b"transfer-encoding":
            chunked = True
    lines.append(b"\r\n")
    if chunked:  # httpx streamed a body of unknown length; it is read now: one chunk
        if body:
            lines += (f"{len(body):x}\r\n".encode(), body, b"\r\n")
        lines.append(b"0\r\n\r\n")
    elif body:
        lines.append(body)
    return b"".join(lines), f"{url.scheme}://{url.netloc.decode('ascii')}"
