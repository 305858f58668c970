"""What the emulator remembers about the traffic it saw: request records and counters."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from attrs import field, frozen

from ._http import EmulatorRequest

#: Headers never kept in a record: the API key, and any other credential.
SECRET_HEADERS: Final = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})


def redact(headers: Mapping[str, str]) -> dict[str, str]:
    """Return *headers* (lower-cased names) without credentials."""
    return {name: value for name, value in headers.items() if name not in SECRET_HEADERS}


@frozen(kw_only=True)
class RecordedRequest:
    """One request the emulator received, without its API key.

    Attributes:
        status: The status answered, or `None` when the connection was dropped instead.
        fault: The injected fault's name (``"429"``, ``"503"``, ``"drop"``, ``"drop_after"``,
            ``"connect"``, ``"slow"``, ``"rate_limit"``), if any.
        user_id: The user the API key belongs to, when it was valid.
        time: The emulator clock's reading when the request arrived.
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = field(factory=dict)
    body: bytes = b""
    status: int | None = None
    fault: str | None = None
    user_id: str | None = None
    time: float = 0.0

    @classmethod
    def of(
        cls,
        request: EmulatorRequest,
        *,
        status: int | None,
        fault: str | None,
        user_id: str | None,
        time: float,
    ) -> RecordedRequest:
        """Record *request*, dropping its credentials."""
        return cls(
            method=request.method,
            path=request.path,
            query=request.query,
            headers=redact(request.headers),
            body=request.body,
            status=status,
            fault=fault,
            user_id=user_id,
            time=time,
        )

    @property
    def json(self) -> Any:
        """The body decoded as JSON; `None` when empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON (the admin endpoint's shape)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "json": self.json,
            "status": self.status,
            "fault": self.fault,
            "user_id": self.user_id,
            "time": self.time,
        }


@frozen(kw_only=True)
class EmulatorStats:
    """Counters since the emulator started, and the jobs in flight right now.

    Attributes:
        jobs_created: Jobs actually created; an idempotent replay or a fault creates none.
        responses: Count of responses per status (dropped connections not included).
        faults: Count of injected faults per name (see `RecordedRequest.fault`).
    """

    requests: int = 0
    apps_created: int = 0
    jobs_created: int = 0
    jobs_queued: int = 0
    jobs_running: int = 0
    jobs_completed: int = 0
    jobs_failed: int = 0
    jobs_canceled: int = 0
    idempotent_replays: int = 0
    responses: Mapping[int, int] = field(factory=dict)
    faults: Mapping[str, int] = field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The counters as JSON."""
        return {
            "requests": self.requests,
            "apps_created": self.apps_created,
            "jobs_created": self.jobs_created,
            "jobs_queued": self.jobs_queued,
            "jobs_running": self.jobs_running,
            "jobs_completed": self.jobs_completed,
            "jobs_failed": self.jobs_failed,
            "jobs_canceled": self.jobs_canceled,
            "idempotent_replays": self.idempotent_replays,
            "responses": {str(status): count for status, count in sorted(self.responses.items())},
            "faults": dict(sorted(self.faults.items())),
        }
