"""``python -m rungen_async.emulator``: flags, the banner, and a real server process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rungen_async.emulator import DEMO_API_KEY
from rungen_async.emulator.__main__ import _parser, build_emulator

from ._helpers import ACCOUNTS_CONFIG, ALICE_KEY


def test_flags_build_the_emulator() -> None:
    """Fault, timing and variant flags reach the emulator."""
    args = _parser().parse_args(
        [
            "--warmup=2",
            "--job-duration=4",
            "--variants=alternate",
            "--fault-429=0.1",
            "--fault-5xx=0.2",
            "--rate-limit=5",
            "--fault-route=POST /app/*/run_async",
            "--fault-seed=9",
            "--no-idempotency",
        ]
    )

    emulator = build_emulator(args)
    assert emulator.idempotency_keys is False
    assert build_emulator(_parser().parse_args([])).idempotency_keys is True

    config = emulator.faults.config
    assert (config.rate_429, config.rate_5xx, config.rate_limit, config.seed) == (0.1, 0.2, 5, 9)
    assert config.routes == ("POST /app/*/run_async",)
    assert (emulator.api.warmup, emulator.api.job_duration) == (2.0, 4.0)
    assert emulator.variants == "alternate"
    assert emulator.accounts.authenticate(DEMO_API_KEY) is not None


def test_config_file_sets_accounts(tmp_path: Path) -> None:
    """--config reads users and teams from a JSON file."""
    config = tmp_path / "accounts.json"
    config.write_text(json.dumps(ACCOUNTS_CONFIG))

    emulator = build_emulator(_parser().parse_args(["--config", str(config)]))

    alice = emulator.accounts.authenticate(ALICE_KEY)
    assert alice is not None
    assert alice.name == "alice"
    assert ALICE_KEY not in repr(alice)


@pytest.fixture
def process() -> Iterator[subprocess.Popen[str]]:
    """The emulator as a child process on a free port; terminated by its PID after."""
    child = subprocess.Popen(
        [sys.executable, "-m", "rungen_async.emulator", "--port=0", "--warmup=0", "--seed=1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield child
    finally:
        child.terminate()
        child.wait(timeout=10)
        assert child.stdout is not None
        assert child.stderr is not None
        child.stdout.close()
        child.stderr.close()


def test_cli_serves_and_prints_the_demo_key(process: subprocess.Popen[str]) -> None:
    """The banner gives the URL and the demo key, which then works; the logs hide the key."""
    assert process.stdout is not None
    banner = [process.stdout.readline() for _ in range(2)]
    url = banner[0].split()[-1]

    listed = httpx.get(f"{url}/app", headers={"x-api-key": DEMO_API_KEY}, timeout=10)
    refused = httpx.get(f"{url}/app", headers={"x-api-key": "rg-wrong"}, timeout=10)
    process.terminate()
    out, err = process.communicate(timeout=10)
    logs = out + err

    assert url.startswith("http://127.0.0.1:")
    assert DEMO_API_KEY in banner[1]
    assert listed.json() == {"data": []}
    assert refused.status_code == 403
    assert '"GET /app HTTP/1.1" 200' in logs
    assert DEMO_API_KEY not in logs


def test_user_and_team_flags() -> None:
    """--user NAME=KEY and --team NAME=USER:ROLE,... add accounts next to the demo user."""
    args = _parser().parse_args(
        ["--user=bob=rg-bob", "--team=acme=demo:OWNER,bob:MEMBER", "--api-key=rg-mine"]
    )

    accounts = build_emulator(args).accounts

    bob = accounts.authenticate("rg-bob")
    demo = accounts.authenticate("rg-mine")
    acme = accounts.team_named("acme")
    assert bob is not None
    assert demo is not None
    assert accounts.role_of(bob, acme.id) == "MEMBER"
    assert accounts.role_of(demo, acme.id) == "OWNER"


@pytest.mark.parametrize(
    "flag",
    [
        pytest.param("--user=nokey", id="user"),
        pytest.param("--team=acme=nobody:OWNER", id="unknown-member"),
        pytest.param("--team=acme=demo:KING", id="role"),
    ],
)
def test_bad_account_flags(flag: str) -> None:
    """Malformed account flags raise ValueError, which main() reports."""
    with pytest.raises(ValueError, match=r"."):
        build_emulator(_parser().parse_args([flag]))
