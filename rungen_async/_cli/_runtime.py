"""
What a CLI run talks to, and the settings it resolves from flags and the environment.

`Runtime` bundles the process's streams and environment with optional test doubles (an
in-process transport, a fake clock); `Session` is one command's view of it: the console,
the parsed arguments, and factories for the API client and the plain download client.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Mapping
from typing import TextIO

import anyio
import httpx
from attrs import field, frozen

from .._client import AsyncRunGen
from .._clock import Clock
from .._config import ENV_API_KEY, ENV_BASE_URL, ENV_TEAM_ID, ENV_USER_ID
from .._http._retry import RetryPolicy
from ._output import Console
from ._parser import UsageError

#: The progress bar's width when the terminal does not say.
DEFAULT_COLUMNS = 80
#: Output files are fetched from storage, not the API: generous, finite timeouts.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)


@frozen(kw_only=True)
class Runtime:
    """
    The world one ``rungen`` run sees; tests replace any part of it.

    Args:
        env: Where ``RUNGEN_*`` settings are read (the process environment by default).
        transport: httpx transport for the API client (default: real HTTP).
        download_transport: httpx transport for downloading output files.
        clock: The clock for the API client and its waits.
        progress_clock: The clock the progress bar redraws by (default: real time, also
            when *clock* is a test's fake one).
        retry: The API client's retry policy (default: `RetryPolicy()`).
        tty: Whether stderr is a terminal (default: ask the stream).
        columns: The terminal's width for the progress bar (default: ``$COLUMNS``, else
            the width of the terminal stderr is on, else 80).
        handle_signals: Turn SIGINT and SIGTERM into a clean stop with exit status 130.
        stop: Setting this event acts like Ctrl-C (tests use it instead of a signal).
    """

    stdin: TextIO = field(factory=lambda: sys.stdin)
    stdout: TextIO = field(factory=lambda: sys.stdout)
    stderr: TextIO = field(factory=lambda: sys.stderr)
    env: Mapping[str, str] = field(factory=lambda: dict(os.environ))
    transport: httpx.AsyncBaseTransport | None = None
    download_transport: httpx.AsyncBaseTransport | None = None
    clock: Clock | None = None
    progress_clock: Clock | None = None
    retry: RetryPolicy | None = None
    tty: bool | None = None
    columns: int | None = None
    handle_signals: bool = True
    stop: anyio.Event | None = None

    def is_tty(self) -> bool:
        """Whether the progress bar may redraw itself in place on stderr."""
        if self.tty is not None:
            return self.tty
        isatty = getattr(self.stderr, "isatty", None)
        return bool(isatty and isatty())

    def terminal_width(self) -> int:
        """The columns the progress bar may use, asked again at each redraw (resizing)."""
        if self.columns is not None:
            return self.columns
        with contextlib.suppress(ValueError):
            if (columns := int(self.env.get("COLUMNS", ""))) > 0:
                return columns
        try:
            return os.get_terminal_size(self.stderr.fileno()).columns or DEFAULT_COLUMNS
        except (AttributeError, OSError, ValueError):  # not a terminal, or no file at all
            return DEFAULT_COLUMNS


class Session:
    """One command's arguments, console and runtime, and the clients built from them."""

    def __init__(self, args: argparse.Namespace, runtime: Runtime, console: Console) -> None:
        self.args = args
        self.runtime = runtime
        self.console = console

    def setting(self, flag: str, env_name: str) -> str | None:
        """The value of ``--flag``, else ``$env_name``, else None (empty counts as unset)."""
        value = getattr(self.args, flag, None) or self.runtime.env.get(env_name) or None
        return value if isinstance(value, str) else None

    def api_key(self) -> str:
        """
        The API key from ``--api-key`` or ``$RUNGEN_API_KEY``.

        Raises:
            UsageError: There is none.
        """
        key = self.setting("api_key", ENV_API_KEY)
        if key is None:
            raise UsageError(f"no API key: set ${ENV_API_KEY} or pass --api-key")
        self.console.add_secret(key)
        return key

    def client(
        self,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        retry: RetryPolicy | None = None,
    ) -> AsyncRunGen:
        """
        Build the API client from flags, the environment and the runtime.

        Raises:
            UsageError: No API key, or a setting the client refuses (an insecure URL).
        """
        key = api_key or self.api_key()
        self.console.add_secret(key)
        try:
            return AsyncRunGen(
                key,
                base_url=base_url or self.setting("base_url", ENV_BASE_URL),
                team_id=self.setting("team", ENV_TEAM_ID),
                user_id=self.setting("user_id", ENV_USER_ID),
                retry=retry or self.runtime.retry,
                transport=self.runtime.transport,
                clock=self.runtime.clock,
            )
        except ValueError as exc:
            raise UsageError(str(exc)) from None

    def download_client(self) -> httpx.AsyncClient:
        """A plain HTTP client for output files: it never carries the API key."""
        return httpx.AsyncClient(
            transport=self.runtime.download_transport,
            timeout=DOWNLOAD_TIMEOUT,
            follow_redirects=True,
        )
