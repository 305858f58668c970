"""Fixtures for driving ``rungen`` in-process: an emulator on a fake clock and `cli`."""

from __future__ import annotations

import io
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest
from attrs import evolve, frozen

from rungen_async import RetryPolicy
from rungen_async._cli import Runtime, run
from rungen_async.emulator import Accounts
from rungen_async.testing import FakeRunGen

#: A key distinctive enough that finding it anywhere in the output is a real leak.
SECRET_KEY = "rg-cli-secret-7d1f0c9e8b2a4f63"


@frozen
class Result:
    """What one ``rungen`` run returned and printed."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Both streams, for checks that care about neither in particular."""
        return self.stdout + self.stderr


def pairs(text: str) -> dict[str, str]:
    """Read ``name: value`` lines back into a dict."""
    return {
        name.strip(): value.strip()
        for name, _, value in (line.partition(":") for line in text.splitlines())
    }


Cli = Callable[..., Awaitable[Result]]


@pytest.fixture
def fake() -> FakeRunGen:
    """An in-process RunGen API on a fake clock; its demo user's key is `SECRET_KEY`."""
    return FakeRunGen(accounts=Accounts.demo(SECRET_KEY), job_duration=2.0)


@pytest.fixture
def env(fake: FakeRunGen) -> dict[str, str]:
    """The environment a CLI run sees: the fake's key, base URL and user id."""
    return {
        "RUNGEN_API_KEY": SECRET_KEY,
        "RUNGEN_BASE_URL": fake.base_url,
        "RUNGEN_USER_ID": fake.user_id,
    }


@pytest.fixture
def cli(fake: FakeRunGen, env: dict[str, str], tmp_path: Path) -> Cli:
    """Run ``rungen ARGV`` against `fake`; the API key must never show in its output."""

    async def invoke(
        *argv: str,
        env_override: dict[str, str] | None = None,
        stdin: str = "",
        stop: anyio.Event | None = None,
        tty: bool = False,
        runtime_args: Mapping[str, Any] | None = None,
    ) -> Result:
        stdout, stderr = io.StringIO(), io.StringIO()
        runtime = Runtime(
            stdin=io.StringIO(stdin),
            stdout=stdout,
            stderr=stderr,
            env=env if env_override is None else env_override,
            transport=fake.transport,
            download_transport=fake.transport,
            clock=fake.clock,
            retry=RetryPolicy(initial_delay=0, max_delay=0, max_retry_after=0),
            tty=tty,
            handle_signals=False,
            stop=stop,
        )
        runtime = evolve(runtime, **(runtime_args or {}))
        code = await run(list(argv), runtime)
        result = Result(code, stdout.getvalue(), stderr.getvalue())
        assert SECRET_KEY not in result.output
        return result

    return invoke
