"""
The one place an engine's failure becomes an exception of the SDK's tree.

Every engine (the SDK's own, aiohttp, httpx's, a user's transport) reports failures as httpx
exceptions whose class carries the retry meaning (see `_retry`). `to_sdk_error` turns one
into the SDK's class, chained ``from`` the original, as httpx's
``_transports/default.py`` maps httpcore's; nothing else translates engine errors.

    httpx.TimeoutException ........ APITimeoutError
    _limits.TooLarge .............. ResponseTooLargeError (not retried)
    ConnectError from a bad cert .. TLSVerificationError (not retried; it cannot heal)
    httpx.RemoteProtocolError ..... APIProtocolError
    any other failure ............. APIConnectionError
"""

from __future__ import annotations

import errno
import socket
import ssl
from typing import Final

import httpx

from .._exceptions import (
    APIConnectionError,
    APIProtocolError,
    APITimeoutError,
    ResponseTooLargeError,
    TLSVerificationError,
)
from ._limits import TooLarge

_CHAIN_DEPTH: Final = 8


def to_sdk_error(exc: BaseException, *, method: str, url: str, path: str) -> APIConnectionError:
    """The SDK's exception for the transport failure *exc* of ``method url``, chained to it."""
    error = _translate(exc, method=method, url=url, path=path)
    error.__cause__ = exc
    return error


def _translate(exc: BaseException, *, method: str, url: str, path: str) -> APIConnectionError:
    where = f"{method} {url}"
    if isinstance(exc, TooLarge):
        return ResponseTooLargeError(
            f"{where}: {exc}", method=method, path=path, url=url, limit=exc.limit
        )
    if isinstance(exc, httpx.TimeoutException):
        return APITimeoutError(
            f"{where} timed out ({type(exc).__name__}: {exc})", method=method, path=path, url=url
        )
    tls = tls_failure(exc)
    if tls is not None:
        host = httpx.URL(url).host
        return TLSVerificationError(
            f"{where} failed: TLS certificate verification failed for host {host!r} ({tls}). "
            "Check the base URL, or pass verify= a CA bundle (or set SSL_CERT_FILE)",
            method=method,
            path=path,
            url=url,
            host=host,
        )
    if isinstance(exc, httpx.RemoteProtocolError):
        return APIProtocolError(
            f"{where} failed: the server broke HTTP/1.1: {exc}", method=method, path=path, url=url
        )
    return APIConnectionError(
        f"{where} failed: {type(exc).__name__}: {exc}", method=method, path=path, url=url
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """*exc* and its causes (or contexts: an engine may raise ``from None``), and the members
    of any exception group among them (trio reports each address it tried)."""
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo and len(seen) < _CHAIN_DEPTH * 4:
        current = todo.pop(0)
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        link = current.__cause__ or current.__context__
        if link is not None:
            todo.append(link)
    return seen


def tls_failure(exc: BaseException) -> str | None:
    """What failed, if *exc* is a connect failure caused by certificate verification."""
    if not isinstance(exc, httpx.ConnectError):
        return None
    for link in _chain(exc):
        # aiohttp wraps the ssl module's error, and keeps it as certificate_error.
        link = getattr(link, "certificate_error", None) or link
        if isinstance(link, ssl.SSLCertVerificationError):
            return str(getattr(link, "verify_message", None) or link)
    text = str(exc)
    if "CERTIFICATE_VERIFY_FAILED" in text or "SSLCertVerificationError" in text:
        return text
    return None


def likely_cause(exc: BaseException) -> str:
    """A guess, for a person, at why a connection failed."""
    chain = _chain(exc)
    if isinstance(exc, httpx.ConnectTimeout):
        return "no answer within the connect timeout (a firewall, or a proxy needed?)"
    if isinstance(exc, httpx.PoolTimeout):
        return "every connection of the pool stayed busy (raise max_connections?)"
    if any(isinstance(link, socket.gaierror) for link in chain) or "Name or service" in str(exc):
        return "the host name does not resolve (a typo in the base URL, or no DNS?)"
    refused = any(
        isinstance(link, ConnectionRefusedError)
        or getattr(link, "errno", None) == errno.ECONNREFUSED
        for link in chain
    )
    if refused or "refused" in str(exc):
        return "nothing listens there (the server is down, or the port is wrong)"
    if isinstance(exc, httpx.ConnectError):
        return f"the connection could not be made ({exc})"
    return f"the connection failed after the request was sent ({type(exc).__name__}: {exc})"
