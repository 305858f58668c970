"""Calling an `Emulator` directly, the way both transports do, for the synchronous tests."""

from __future__ import annotations

import json
from typing import Any, Final

from rungen_async.emulator import (
    DEMO_API_KEY,
    Accounts,
    Emulator,
    EmulatorRequest,
    EmulatorResponse,
)

ALICE_KEY: Final = "rg-alice-key"
BOB_KEY: Final = "rg-bob-key"
CAROL_KEY: Final = "rg-carol-key"
MODEL_URL: Final = "https://huggingface.co/black-forest-labs/FLUX.1-schnell"

#: Alice owns team "acme", where Bob is a MEMBER; Carol is in no team.
ACCOUNTS_CONFIG: Final[dict[str, Any]] = {
    "users": [
        {"name": "alice", "api_key": ALICE_KEY},
        {"name": "bob", "api_keys": [BOB_KEY]},
        {"name": "carol", "api_key": CAROL_KEY},
    ],
    "teams": [{"name": "acme", "members": {"alice": "OWNER", "bob": "MEMBER"}}],
}


def accounts() -> Accounts:
    """The demo account plus alice, bob, carol and team acme."""
    return Accounts.from_dict(ACCOUNTS_CONFIG)


class ManualClock:
    """A clock the test moves by hand (only `now()` is read by the emulator)."""

    def __init__(self) -> None:
        self.time = 1000.0

    def now(self) -> float:
        return self.time

    async def sleep(self, seconds: float, /) -> None:
        self.time += seconds


def call(
    emulator: Emulator,
    method: str,
    path: str,
    body: object = None,
    *,
    key: str | None = DEMO_API_KEY,
    team: str | None = None,
    headers: dict[str, str] | None = None,
) -> EmulatorResponse:
    """Send one request straight to *emulator*."""
    sent = dict(headers or {})
    if key is not None:
        sent["x-api-key"] = key
    if team is not None:
        sent["x-team-id"] = team
    data = b"" if body is None else json.dumps(body).encode()
    return emulator.handle(EmulatorRequest(method=method, path=path, headers=sent, body=data))


def app_body(name: str = "demo", **configuration: Any) -> dict[str, Any]:
    """A valid POST /app body."""
    return {
        "name": name,
        "configuration": {"gpu_tier": "STANDARD", **configuration},
        "workflow": {"model_url": MODEL_URL, "tools": {}},
    }


def create_app(
    emulator: Emulator, *, key: str = DEMO_API_KEY, team: str | None = None, **configuration: Any
) -> str:
    """Create an app and return its id."""
    response = call(emulator, "POST", "/app", app_body(**configuration), key=key, team=team)
    assert response.status == 201, response.json()
    created = response.json()
    return str(created.get("data", created)["id"])


def submit(emulator: Emulator, app_id: str, key: str = DEMO_API_KEY, **job_input: Any) -> str:
    """Submit a job and return its id."""
    response = call(emulator, "POST", f"/app/{app_id}/run_async", {"input": job_input}, key=key)
    assert response.status == 201, response.json()
    created = response.json()
    return str(created["job_id"] if "job_id" in created else created["data"]["id"])


def job_body(emulator: Emulator, app_id: str, job_id: str) -> dict[str, Any]:
    """GET the job and return its ``data``."""
    response = call(emulator, "GET", f"/app/{app_id}/job/{job_id}")
    assert response.status == 200, response.json()
    data: dict[str, Any] = response.json()["data"]
    return data
