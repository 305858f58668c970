"""
A local RunGen API for demos, integration tests and benchmarks: ``python -m rungen_async.emulator``.

One implementation of the API, `Emulator`, reached two ways: over TCP through the ASGI app
`EmulatorASGI` (served by uvicorn, the ``emulator`` extra; `EmulatorServer` runs it in a
thread), and in process through `rungen_async.testing.EmulatorTransport`, with no socket.

Jobs are simulated lazily: each request replays the affected app's queue up to the clock's
current reading, so the emulator works the same under real time and a fake clock.
"""

from __future__ import annotations

from ._accounts import DEMO_API_KEY, DEMO_TEAM_NAME, DEMO_USER_NAME, Accounts, Role, Team, User
from ._asgi import EmulatorASGI
from ._emulator import Emulator, MonotonicClock, Variants
from ._faults import FaultConfig, FaultKind
from ._http import EmulatorRequest, EmulatorResponse
from ._png import read_png_header, render_prompt
from ._records import EmulatorStats, RecordedRequest
from ._server import EmulatorServer
from ._state import TIER_SPEED, App, Job, JobState

__all__ = [
    "DEMO_API_KEY",
    "DEMO_TEAM_NAME",
    "DEMO_USER_NAME",
    "TIER_SPEED",
    "Accounts",
    "App",
    "Emulator",
    "EmulatorASGI",
    "EmulatorRequest",
    "EmulatorResponse",
    "EmulatorServer",
    "EmulatorStats",
    "FaultConfig",
    "FaultKind",
    "Job",
    "JobState",
    "MonotonicClock",
    "RecordedRequest",
    "Role",
    "Team",
    "User",
    "Variants",
    "read_png_header",
    "render_prompt",
]
