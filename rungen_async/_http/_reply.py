"""
The one response type of the send path: whatever the engine, an answer becomes a `Reply`.

The SDK's own engines return a `Reply`; an httpx response (any other transport, the user's
``http_client``, a respx route) is read into one here, its body decoded and counted against
the client's cap. Only an error status is turned back into an `httpx.Response`, the one
`APIStatusError.response` carries.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Final, cast

import httpx

from .._exceptions import ResponseValidationError, body_preview
from ._limits import TooLarge
from ._shared import Reply

__all__ = ["Reply", "decoded", "error_response", "json_body", "read_reply"]

_UNDONE: Final = (b"content-encoding", b"content-length")  # untrue of a decoded body


async def read_reply(response: httpx.Response, limit: int) -> Reply:
    """Read an httpx *response* into a `Reply` (body decoded, at most *limit* bytes)."""
    info = response.extensions
    return await _read(
        response, limit, info.get("http_version", b"HTTP/1.1"), info.get("reason_phrase", b"")
    )


async def decoded(reply: Reply, limit: int) -> Reply:
    """*reply* with its Content-Encoding undone, at most *limit* bytes of it."""
    stream = httpx.ByteStream(reply.content)
    response = httpx.Response(reply.status_code, headers=reply.headers, stream=stream)
    return await _read(response, limit, reply.version, reply.reason)


async def _read(response: httpx.Response, limit: int, version: bytes, reason: bytes) -> Reply:
    chunks: list[bytes] = []
    size = 0
    try:
        # An AsyncGenerator, closed at once even when the cap stops the loop (trio insists).
        body = cast("AsyncGenerator[bytes, None]", response.aiter_bytes())
        async with contextlib.aclosing(body):
            async for chunk in body:
                size += len(chunk)
                if size > limit:
                    raise TooLarge(
                        f"the response body is larger than {limit:,} bytes (the client's "
                        "max_body_bytes); raise it with AsyncRunGen(max_body_bytes=...)",
                        limit=limit,
                    )
                chunks.append(chunk)
    except httpx.DecodingError as exc:  # a bad gzip stream: the server broke the protocol
        raise httpx.RemoteProtocolError(f"the body could not be decoded: {exc}") from exc
    finally:
        await response.aclose()
    content = b"".join(chunks)
    status = response.status_code
    if status < 400:
        return Reply(status, content)
    headers = [(k, v) for k, v in response.headers.raw if k.lower() not in _UNDONE]
    return Reply(status, content, headers, version=version, reason=reason)


def error_response(
    reply: Reply, method: str, url: str, headers: Mapping[str, str]
) -> httpx.Response:
    """The `httpx.Response` an `APIStatusError` carries; its request has the key masked."""
    sent = [(name, "***" if name.lower() == "x-api-key" else v) for name, v in headers.items()]
    extensions: dict[str, Any] = {"http_version": reply.version}
    if reply.reason:
        extensions["reason_phrase"] = reply.reason
    return httpx.Response(
        reply.status_code,
        headers=[(k, v) for k, v in reply.headers if k.lower() not in _UNDONE],
        content=reply.content,
        request=httpx.Request(method, url, headers=sent),
        extensions=extensions,
    )


def json_body(reply: Reply, method: str, url: str) -> Any:
    """The decoded JSON of a success, unwrapped from ``{"data": ...}`` where it is wrapped."""
    content = reply.content
    if not content:
        return None
    try:
        body = json.loads(content)
    except ValueError:
        raise ResponseValidationError(
            f"{reply.status_code} on {method} {url} is not JSON: {body_preview(content)!r}",
            status_code=reply.status_code,
        ) from None
    # Some endpoints wrap their payload in {"data": ...} and some don't.
    return body["data"] if type(body) is dict and "data" in body else body
