"""Defaults and the names of the environment variables rungen_async reads."""

from __future__ import annotations

from typing import Final

from ._version import __version__

ENV_API_KEY: Final = "RUNGEN_API_KEY"
ENV_BASE_URL: Final = "RUNGEN_BASE_URL"
ENV_TEAM_ID: Final = "RUNGEN_TEAM_ID"
ENV_USER_ID: Final = "RUNGEN_USER_ID"

DEFAULT_BASE_URL: Final = "https://api.rungen.ai"
USER_AGENT: Final = f"rungen-async/{__version__}"

# Explicit, finite timeouts: an SDK that can hang forever on a dead socket is a bug.
DEFAULT_CONNECT_TIMEOUT: Final = 10.0
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_WRITE_TIMEOUT: Final = 30.0
DEFAULT_POOL_TIMEOUT: Final = 60.0

# HTTP concurrency stays bounded however many jobs are in flight.
DEFAULT_MAX_CONNECTIONS: Final = 64
DEFAULT_MAX_KEEPALIVE_CONNECTIONS: Final = 64

DEFAULT_MAX_ATTEMPTS: Final = 5
DEFAULT_INITIAL_RETRY_DELAY: Final = 0.5
DEFAULT_MAX_RETRY_DELAY: Final = 8.0
DEFAULT_MAX_RETRY_AFTER: Final = 60.0
# The most one call waits in all for rate limits (429s and pauses) before RateLimitError.
DEFAULT_MAX_RATE_LIMIT_WAIT: Final = 60.0
