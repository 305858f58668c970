"""
The emulator's transport-neutral request and response, and the tiny router between them.

`Emulator.handle()` takes an `EmulatorRequest` and returns an `EmulatorResponse`; the ASGI
app (`_asgi.py`) and the in-process httpx transport (`rungen_async.testing`) only translate
to and from these two classes, so both reach exactly the same implementation of the API.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from attrs import field, frozen

#: How a response is delivered: normally, or by dropping the connection instead.
#: ``"before"`` drops it without handling the request; ``"after"`` handles the request and
#: then loses the response; ``"connect"`` refuses the connection (in-process transport only;
#: over TCP it behaves like ``"before"``).
DropMode = Literal["before", "after", "connect"]

JSON_HEADERS: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


@frozen(kw_only=True)
class EmulatorRequest:
    """One HTTP request as the emulator sees it.

    Args:
        headers: Header names are folded to lower case.
        base_url: Scheme and authority the client used (``http://127.0.0.1:8080``); output
            URLs in job results are built from it.
    """

    method: str
    path: str
    headers: dict[str, str] = field(factory=dict, converter=_lower_headers)
    body: bytes = b""
    query: str = ""
    base_url: str = "http://127.0.0.1"


@frozen(kw_only=True)
class EmulatorResponse:
    """What to send back, plus how: after *delay* seconds, or not at all (*drop*)."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    drop: DropMode | None = None

    def json(self) -> Any:
        """Decode the body as JSON (`None` when it is empty)."""
        return json.loads(self.body) if self.body else None

    def header(self, name: str) -> str | None:
        """Return the first header called *name* (case-insensitive), or `None`."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


class HTTPError(Exception):
    """Raised by handlers to answer ``{"error": message}`` with *status*."""

    def __init__(self, status: int, message: str, *, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def json_response(
    status: int, payload: object, *, headers: tuple[tuple[str, str], ...] = ()
) -> EmulatorResponse:
    """Serialise *payload* as a JSON response."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    return EmulatorResponse(status=status, headers=JSON_HEADERS + headers, body=body)


def error_response(
    status: int, message: str, *, headers: tuple[tuple[str, str], ...] = ()
) -> EmulatorResponse:
    """The documented error shape: ``{"error": "..."}``."""
    return json_response(status, {"error": message}, headers=headers)


def parse_json_body(request: EmulatorRequest) -> Any:
    """Decode the request body, or raise a 400 `HTTPError`."""
    if not request.body:
        raise HTTPError(400, "request body is missing; send a JSON object")
    try:
        return json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HTTPError(400, f"request body is not valid JSON: {exc}") from exc


Handler = Callable[..., EmulatorResponse]


class Router:
    """Match ``(method, path)`` against ``/app/{app_id}``-style patterns."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], str, Handler]] = []

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        """Route *method* requests for *pattern* (``{name}`` matches one path segment)."""
        regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{regex}$"), pattern, handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        """Return the handler and path parameters, or raise 404/405 as `HTTPError`."""
        allowed: list[str] = []
        for route_method, regex, _, handler in self._routes:
            found = regex.match(path)
            if found is None:
                continue
            if route_method == method:
                return handler, found.groupdict()
            allowed.append(route_method)
        if allowed:
            raise HTTPError(
                405,
                f"method {method} is not allowed on {path}",
                headers=(("allow", ", ".join(allowed)),),
            )
        raise HTTPError(404, f"no such endpoint: {method} {path}")

    def pattern_of(self, method: str, path: str) -> str | None:
        """Return the route pattern (``/app/{app_id}``) that *path* matches, if any."""
        for route_method, regex, pattern, _ in self._routes:
            if route_method == method and regex.match(path):
                return pattern
        return None
