"""
Which engine sends a client's requests: the running async library, proxies, the user's choice.

On asyncio `AutoTransport` picks the SDK's own `WireTransport` (the cheapest), or aiohttp's
client on request; on trio, and wherever a proxy must be used, httpx's own transport. The
choice is made once, on first use, and logged when it is a fallback.
"""

from __future__ import annotations

import logging
import ssl
import urllib.request
from typing import Final, Literal

import httpx
import sniffio

from .._validation import _is_loopback
from ._aiohttp import AiohttpTransport
from ._limits import MAX_BODY_BYTES, MAX_HEAD_BYTES
from ._pool import WireTransport
from ._shared import DEFAULT_KEEPALIVE_EXPIRY, DEFAULT_LIMIT

__all__ = ["FAST_ENGINES", "AutoTransport", "default_transport"]

logger = logging.getLogger("rungen_async")

#: Engines with an ``exchange()`` that the client calls without building httpx objects.
FAST_ENGINES: Final = (WireTransport, AiohttpTransport)


class AutoTransport(httpx.AsyncBaseTransport):
    """
    Picks the fastest transport for the running async library on first use.

    On asyncio that is `WireTransport` (the SDK's own HTTP/1.1 client), or `AiohttpTransport`
    if *asyncio_engine* is ``"aiohttp"`` (and aiohttp is installed), or httpx's own if it is
    ``"httpx"``. On trio it is always `httpx.AsyncHTTPTransport`. Every choice is configured
    from the same *limits* and *verify*.

    With *trust_env* (the default, as in httpx), a proxy named by ``HTTPS_PROXY``,
    ``HTTP_PROXY`` or ``ALL_PROXY`` for the first request's URL (and not bypassed by
    ``NO_PROXY``) is honoured: the SDK's own engines speak no proxy, so the choice is then
    httpx's transport through that proxy, and the ``rungen_async`` logger says so once.
    *max_body_bytes* caps the bodies aiohttp's ``exchange()`` and `WireTransport` read (the
    client caps every other path itself); *max_head_bytes* caps `WireTransport`'s heads and
    trailers.
    """

    def __init__(
        self,
        *,
        limits: httpx.Limits | None = None,
        verify: ssl.SSLContext | bool = True,
        asyncio_engine: Literal["wire", "aiohttp", "httpx"] = "wire",
        trust_env: bool = True,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_head_bytes: int = MAX_HEAD_BYTES,
    ) -> None:
        if asyncio_engine not in ("wire", "aiohttp", "httpx"):
            raise ValueError(
                f"asyncio_engine must be 'wire', 'aiohttp' or 'httpx', not {asyncio_engine!r}"
            )
        self._limits = limits or httpx.Limits(
            max_connections=DEFAULT_LIMIT, max_keepalive_connections=DEFAULT_LIMIT
        )
        self._verify = verify
        self._engine = asyncio_engine
        self._trust_env = trust_env
        self._max_body_bytes = max_body_bytes
        self._max_head_bytes = max_head_bytes
        self._inner: httpx.AsyncBaseTransport | None = None

    @property
    def chosen(self) -> httpx.AsyncBaseTransport | None:
        """The transport picked on first use, or ``None`` before any request."""
        return self._inner

    def select(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """The transport for requests to *url*'s origin: chosen on the first call, then kept."""
        return self._inner or self._choose(url)

    def _choose(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        limits = self._limits
        proxy = _env_proxy(url) if self._trust_env else None
        if proxy is not None:
            if self._engine != "httpx":
                logger.info(
                    "A proxy is set for %s (HTTP(S)_PROXY/ALL_PROXY); the %s engine speaks no "
                    "proxy, so requests go through httpx's transport and that proxy",
                    url.host,
                    self._engine,
                )
            self._inner = httpx.AsyncHTTPTransport(limits=limits, verify=self._verify, proxy=proxy)
            return self._inner
        engine = self._engine if sniffio.current_async_library() == "asyncio" else "httpx"
        expiry = (
            DEFAULT_KEEPALIVE_EXPIRY if limits.keepalive_expiry is None else limits.keepalive_expiry
        )
        inner: httpx.AsyncBaseTransport
        if engine == "wire":
            inner = WireTransport(
                limits=limits,
                verify=self._verify,
                max_head_bytes=self._max_head_bytes,
                max_body_bytes=self._max_body_bytes,
            )
        elif engine == "aiohttp":
            inner = AiohttpTransport(
                limit=limits.max_connections,
                keepalive_expiry=expiry,
                verify=self._verify,
                max_body_bytes=self._max_body_bytes,
            )
        else:
            inner = httpx.AsyncHTTPTransport(limits=limits, verify=self._verify)
        self._inner = inner
        return inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send *request* through the chosen transport, choosing it on the first call."""
        return await self.select(request.url).handle_async_request(request)

    async def aclose(self) -> None:
        """Close the chosen transport, if one was chosen."""
        if self._inner is not None:
            await self._inner.aclose()


def _env_proxy(url: httpx.URL) -> str | None:
    """
    The proxy the environment names for *url*, if any (as httpx's trust_env reads it).

    Loopback hosts never go through one: a proxy elsewhere cannot reach this machine's
    loopback (where the local emulator runs).
    """
    if _is_loopback(url.host):
        return None
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    bypass = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]  # (not in typeshed)
    if not proxy or bypass(url.host):
        return None
    return proxy


def default_transport(
    *,
    limits: httpx.Limits | None = None,
    verify: ssl.SSLContext | bool = True,
    max_head_bytes: int = MAX_HEAD_BYTES,
    max_body_bytes: int = MAX_BODY_BYTES,
) -> httpx.AsyncBaseTransport:
    """Return the transport the SDK uses when the caller passes none: an `AutoTransport`."""
    return AutoTransport(
        limits=limits,
        verify=verify,
        max_head_bytes=max_head_bytes,
        max_body_bytes=max_body_bytes,
    )
