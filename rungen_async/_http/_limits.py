"""The client's caps on what a server may send, shared by every engine."""

from __future__ import annotations

import httpx

#: The most bytes a response's status line and headers (or its trailers) may take, as h11.
MAX_HEAD_BYTES = 64 * 1024
#: The most bytes a JSON response body may take; image downloads stream and have no cap.
MAX_BODY_BYTES = 32 * 1024 * 1024


class TooLarge(httpx.RemoteProtocolError):
    """A transport's signal that a response went over a cap; the client raises
    `ResponseTooLargeError` from it, without retrying."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit
