"""
Exceptions raised by rungen_async.

* RunGenError
  * APIConnectionError ........ no HTTP response arrived
    * APITimeoutError
    * APIProtocolError ........ the server sent something that is not valid HTTP/1.1
      * ResponseTooLargeError . a response section went over one of the client's caps
    * TLSVerificationError .... the server's certificate or host name failed verification
  * InvalidInputError ......... the SDK refused a call's arguments before sending anything
  * AmbiguousRequestError ..... a POST may or may not have been carried out; carries its key
  * APIStatusError ............ the API answered 4xx or 5xx
    * BadRequestError (400, 422), AuthenticationError (401, and 403: a bad key),
      NotFoundError (404), ConflictError (409), RateLimitError (429), ServerError (5xx)
  * ResponseValidationError ... a 2xx body was not JSON or did not fit its model
  * JobFailedError ............ a waited-for job ended FAILED or CANCELED
  * JobTimeoutError ........... a wait's deadline passed; the job keeps running remotely
  * AppFailedError ............ a waited-for app cannot become RUNNING (stopped, failed)
    * AppTimeoutError ......... it did not become RUNNING before the wait's deadline

Misuse (a missing API key, an empty id, a job input that is not a JSON object) raises
`InvalidInputError` before anything is sent; it is a `ValueError` and a `TypeError` too.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from ._models import App, Job

_BODY_PREVIEW = 200


class RunGenError(Exception):
    """Base class of everything the API, the network or a job can cause."""


class APIConnectionError(RunGenError):
    """No HTTP response arrived: the connection failed, was refused or dropped.

    ``str()`` names the method and the full URL (never the key); *url*, *method* and *path*
    are attributes too. *request_id* is always None here (no answer carried one).
    """

    def __init__(self, message: str, *, method: str, path: str, url: str = "") -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        #: The full URL of the request (base URL and path; the key is a header, never in it).
        self.url = url or path
        #: The server's request id; no response arrived, so None.
        self.request_id: str | None = None


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request timed out before a response arrived."""


class APIProtocolError(APIConnectionError):
    """The server sent bytes that are not a valid HTTP/1.1 response; nothing of it was used."""


class ResponseTooLargeError(APIProtocolError):
    """A response's header section, trailers or body went over one of the client's caps.

    The message names the cap and the `AsyncRunGen` argument that raises it.
    """

    def __init__(self, message: str, *, method: str, path: str, limit: int, url: str = "") -> None:
        super().__init__(message, method=method, path=path, url=url)
        #: The cap, in bytes, that was exceeded.
        self.limit = limit


class TLSVerificationError(APIConnectionError):
    """The server's certificate or host name failed verification; not retried (it cannot heal).

    Check the URL, or pass ``verify=`` (a CA bundle path or an `ssl.SSLContext`), or set
    ``SSL_CERT_FILE``.
    """

    def __init__(self, message: str, *, method: str, path: str, host: str, url: str = "") -> None:
        super().__init__(message, method=method, path=path, url=url)
        #: The host whose certificate failed.
        self.host = host


class InvalidInputError(RunGenError, ValueError, TypeError):
    """The SDK refused a call's arguments before anything was sent; the message says what to fix.

    A `ValueError` and a `TypeError` as well, so code written for the builtins keeps working.
    """


class AmbiguousRequestError(RunGenError):
    """
    A POST failed in a way that leaves open whether the API carried it out.

    Nothing was retried, so nothing was created twice. Re-send the call with the same
    *idempotency_key* (for example ``submit_job(..., idempotency_key=exc.idempotency_key)``)
    to get the original result if the first attempt did go through.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        idempotency_key: str,
        status_code: int | None = None,
        url: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.method = method
        self.path = path
        self.idempotency_key = idempotency_key
        self.status_code = status_code
        #: The full URL of the request.
        self.url = url or path
        #: The server's request id, when an answer (a 5xx) carried one.
        self.request_id = request_id


class APIStatusError(RunGenError):
    """The API answered with a 4xx or 5xx status.

    ``str()`` is one sentence: status, method, full URL, the API's ``error`` text and the
    server's request id when it sent one (quote it to support).
    """

    def __init__(
        self,
        message: str,
        *,
        response: httpx.Response,
        method: str,
        path: str,
        error: str | None = None,
        url: str = "",
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.method = method
        self.path = path
        #: The ``error`` string of the API's body, when it sent one.
        self.error = error
        #: The full URL of the request (the key is a header, never in it).
        self.url = url or path
        #: The ``x-request-id`` (or ``request-id``) header of the answer, if any.
        self.request_id = request_id


class BadRequestError(APIStatusError):
    """400 or 422: the API rejected the request body or parameters."""


class AuthenticationError(APIStatusError):
    """401 or 403: the API key is invalid or lacks access (the API documents 403 for both)."""


class NotFoundError(APIStatusError):
    """404: no such app or job in this scope (personal, or the ``x-team-id`` team)."""


class ConflictError(APIStatusError):
    """409: the resource's state forbids the action, e.g. cancelling a finished job."""


class RateLimitError(APIStatusError):
    """429: too many requests."""

    @property
    def retry_after(self) -> float | None:
        """The server's ``Retry-After`` hint in seconds, if it sent one."""
        from ._http._retry import parse_retry_after  # a cycle at import time otherwise

        return parse_retry_after(self.response.headers.get("retry-after"))


class ServerError(APIStatusError):
    """5xx: the API or a proxy in front of it failed."""

    @property
    def retry_after(self) -> float | None:
        """The server's ``Retry-After`` hint in seconds (a 503 may send one), if any."""
        from ._http._retry import parse_retry_after  # a cycle at import time otherwise

        return parse_retry_after(self.response.headers.get("retry-after"))


class ResponseValidationError(RunGenError):
    """A successful response's body was not JSON, or did not fit the expected model."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class JobFailedError(RunGenError):
    """A waited-for job ended FAILED or CANCELED; *job* is its final state."""

    def __init__(self, job: Job) -> None:
        reason = f": {job.error}" if job.error else ""
        super().__init__(f"job {job.id!r} ended {job.status.value}{reason}")
        self.job = job


class JobTimeoutError(RunGenError, TimeoutError):
    """A wait's deadline passed; the job keeps running remotely and can be waited on again."""

    def __init__(self, message: str, *, app_id: str, job_id: str, job: Job | None) -> None:
        super().__init__(message)
        self.app_id = app_id
        self.job_id = job_id
        #: The last state seen before the deadline, if any.
        self.job = job


class AppFailedError(RunGenError):
    """A waited-for app cannot become RUNNING; *app* is its last state."""

    def __init__(self, message: str, *, app: App) -> None:
        super().__init__(message)
        self.app = app


class AppTimeoutError(AppFailedError, TimeoutError):
    """A waited-for app was not RUNNING by the wait's deadline."""


_STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    422: BadRequestError,
    429: RateLimitError,
}


def body_preview(content: bytes) -> str:
    """Return the start of a body as one readable line, for error messages."""
    text = content[:_BODY_PREVIEW].decode("utf-8", "replace")
    text = " ".join(text.split())
    return text + ("…" if len(content) > _BODY_PREVIEW else "")


def request_id_of(headers: httpx.Headers) -> str | None:
    """The server's id for a request, from ``x-request-id`` or ``request-id``."""
    value: str | None = headers.get("x-request-id") or headers.get("request-id")
    return value


def error_from_response(
    response: httpx.Response, *, method: str, path: str, url: str = ""
) -> APIStatusError:
    """Build the exception for a 4xx or 5xx *response*, from its ``{"error": ...}`` body."""
    status = response.status_code
    content = response.content
    error: str | None = None
    try:
        body: Any = json.loads(content) if content else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        value = body.get("error", body.get("message"))
        if isinstance(value, str):
            error = value
        elif value is not None:
            error = json.dumps(value)
    detail = error if error is not None else (body_preview(content) or "no body")
    request_id = request_id_of(response.headers)
    message = f"{status} {response.reason_phrase or 'Error'} on {method} {url or path}: {detail}"
    if request_id:
        message += f" (request id {request_id})"
    cls = _STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIStatusError)
    return cls(
        message,
        response=response,
        method=method,
        path=path,
        error=error,
        url=url,
        request_id=request_id,
    )
