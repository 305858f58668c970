"""
One response read off the wire: httptools (llhttp, the parser behind Node.js and uvicorn)
does the parsing; `ResponseReader` keeps what it reports and holds it to the SDK's caps.
"""

from __future__ import annotations

from typing import Final

import httptools
import httpx

from ._limits import TooLarge
from ._shared import Reply

__all__ = ["Failure", "ResponseReader"]

_OWS: Final = (b" ", b"\t")
#: len() of content-length, content-encoding, transfer-encoding: only these frame the body.
_FRAMING_LENGTHS: Final = frozenset({14, 16, 17})
_CHUNK_ALLOWANCE: Final = 32  # framing bytes per chunk (size line, CRLFs) not counted as head


class Failure(Exception):
    """Why a connection could not deliver a response (turned into an httpx error later)."""

    def __init__(self, kind: type[httpx.TransportError], message: str) -> None:
        super().__init__(message)
        self.kind = kind


class _HeadOnly(Exception):
    """Stops the parser after the head of a response to HEAD (llhttp would read a body)."""


def too_large(what: str, limit: int, knob: str) -> TooLarge:
    """The error for a response part over its cap, saying how to raise the cap."""
    message = (
        f"the server sent a {what} over {limit:,} bytes (the {knob} limit); raise it with "
        f"AsyncRunGen({knob}=...) or WireTransport({knob}=...)"
    )
    return TooLarge(message, limit=limit)


class ResponseReader:
    """
    Reads one response (after any 1xx answers) from the bytes handed to `feed`.

    The head (status line and headers, through the blank line) may take *max_head* bytes,
    the trailers as much again, and the body *max_body* (``None``: no cap).
    """

    __slots__ = (
        "_after_head",
        "_body",
        "_body_size",
        "_chunks",
        "_encoded",
        "_framing",
        "_head_only",
        "_head_seen",
        "_headers",
        "_max_body",
        "_max_head",
        "_parser",
        "_reason",
        "_status",
        "complete",
        "head_done",
        "keep_alive",
        "until_close",
    )

    def __init__(self, *, max_head: int, max_body: int | None, head_only: bool) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._parser.set_dangerous_leniencies(lenient_optional_cr_before_lf=True)  # as h11
        self._max_head = max_head
        self._max_body = max_body
        self._head_only = head_only
        self._status = 0
        self._reason = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._framing: list[tuple[bytes, bytes]] = []  # the headers that frame the body
        self._body: list[bytes] = []
        self._body_size = 0
        self._head_seen = 0  # bytes fed before the head was complete
        self._after_head = 0  # bytes fed since (body, chunk framing, trailers)
        self._chunks = 0
        self._encoded = False
        self.head_done = False
        self.until_close = False  # the body ends where the connection does
        self.complete = False
        self.keep_alive = False

    def feed(self, data: bytes) -> bool:
        """Parse *data*; return whether the response is complete. Raises `Failure`/`TooLarge`."""
        try:
            self._feed(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _HeadOnly):
                self.complete, self.keep_alive = True, False  # the rest is not ours to parse
            elif isinstance(cause, Failure | TooLarge):
                raise cause from None
            else:
                raise self._bad(exc) from None
        except httptools.HttpParserError as exc:
            if not self.complete:
                raise self._bad(exc) from None
            self.keep_alive = False  # garbage after a whole response: never reuse
        return self.complete

    def _feed(self, data: bytes) -> None:
        parser = self._parser
        if not self.head_done:
            budget = self._max_head - self._head_seen
            if len(data) <= budget:
                self._head_seen += len(data)
                parser.feed_data(data)
                return
            parser.feed_data(memoryview(data)[:budget])
            if not self.head_done:
                raise too_large("response head", self._max_head, "max_head_bytes")
            data = data[budget:]
        self._after_head += len(data)
        parser.feed_data(data)
        if self._after_head - self._body_size > self._max_head + _CHUNK_ALLOWANCE * self._chunks:
            raise too_large("trailer section", self._max_head, "max_head_bytes")

    def close(self) -> None:
        """Let go of the parser: it refers back to this reader, a cycle only the GC breaks."""
        self._parser = None  # type: ignore[assignment]

    def reply(self) -> Reply:
        """What was read, as the fast lane's `Reply`."""
        return Reply(
            self._status,
            b"".join(self._body),
            self._headers,
            encoded=self._encoded,
            version=b"HTTP/" + self._parser.get_http_version().encode(),
            reason=self._reason,
        )

    @staticmethod
    def _bad(exc: Exception) -> Failure:
        return Failure(httpx.RemoteProtocolError, f"malformed response from the server: {exc}")

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.complete:  # a second response where one was asked for
            self.keep_alive = False

    def on_status(self, reason: bytes) -> None:
        if not self.complete:
            self._reason += reason

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.head_done:  # trailers are read (and capped) but not kept
            if value[-1:] in _OWS:  # llhttp trims it only from a value's last piece
                value = value.strip(b" \t")
            self._headers.append((name, value))
            if len(name) in _FRAMING_LENGTHS:
                self._framing.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self._parser.get_status_code()
        if not 100 <= status <= 599:
            message = f"the server sent status {status:03d}, outside 100-599"
            raise Failure(httpx.RemoteProtocolError, message)
        if status == 101:
            raise Failure(httpx.RemoteProtocolError, "the server switched protocols")
        self._check_framing(has_body=status >= 200 and status not in (204, 304))
        if status < 200:
            return  # informational: llhttp ends it here, and the real response follows
        self._status = status
        self.head_done = True
        if self._head_only:
            raise _HeadOnly

    def _check_framing(self, *, has_body: bool) -> None:
        length = chunked = False
        for lower, value in self._framing:
            if lower == b"transfer-encoding":
                if value.lower() != b"chunked":  # no other coding is undone here
                    message = f"unsupported Transfer-Encoding {value[:40]!r}"
                    raise Failure(httpx.RemoteProtocolError, message)
                chunked = True
            elif lower == b"content-length":
                length = True
                limit = self._max_body if has_body and not self._head_only else None
                if limit is not None and value.isdigit() and int(value) > limit:
                    raise too_large("response body", limit, "max_body_bytes")
            elif lower == b"content-encoding":
                self._encoded = value.lower() not in (b"", b"identity")
        self.until_close = not length and not chunked

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._max_body is not None and self._body_size > self._max_body:
            raise too_large("response body", self._max_body, "max_body_bytes")
        self._body.append(body)

    def on_chunk_header(self) -> None:
        self._chunks += 1

    def on_message_complete(self) -> None:
        if self.complete:
            return
        if not self._status:  # the end of a 1xx: start the real response afresh
            self._reason, self._headers, self._framing, self._encoded = b"", [], [], False
            return
        self.complete = True
        self.keep_alive = not self._head_only and self._parser.should_keep_alive()
