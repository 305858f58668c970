"""``rungen emulator``: serves the emulator over real TCP until interrupted."""

from __future__ import annotations

import io
import re

import anyio
import httpx
from attrs import evolve

from rungen_async._cli import EXIT_OK, EXIT_USAGE, Runtime, run


class _Watched(io.StringIO):
    """A stdout that sets *seen* once *text* has been written."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = anyio.Event()

    def write(self, s: str) -> int:
        written = super().write(s)
        if self.text in self.getvalue():
            self.seen.set()
        return written


async def test_emulator_serves_until_stopped() -> None:
    """rungen emulator serves the API on a free port and exits 0 when interrupted."""
    stdout, stop = _Watched("Stop it with Ctrl-C."), anyio.Event()
    runtime = Runtime(stdout=stdout, stderr=io.StringIO(), env={}, handle_signals=False)
    codes: list[int] = []

    async def serve() -> None:
        codes.append(
            await run(["emulator", "--port", "0", "--warmup", "0"], evolve(runtime, stop=stop))
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        with anyio.fail_after(60):  # a banner that never comes fails, not hangs
            await stdout.seen.wait()
        match = re.search(r"listening on (http://\S+)", stdout.getvalue())
        assert match is not None
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{match[1]}/app", headers={"x-api-key": "rg-demo-key"})
        stop.set()

    assert response.status_code == 200
    assert codes == [EXIT_OK]


async def test_emulator_rejects_a_bad_flag() -> None:
    """The emulator's own parser refuses unknown flags with exit status 2, naming the flag."""
    stderr = io.StringIO()
    runtime = Runtime(stdout=io.StringIO(), stderr=stderr, env={}, handle_signals=False)

    code = await run(["emulator", "--no-such-flag"], runtime)

    assert code == EXIT_USAGE
    assert "--no-such-flag" in stderr.getvalue()
    assert "rungen emulator" in stderr.getvalue()


async def test_emulator_banner_gives_what_to_paste() -> None:
    """The banner names the key, user id and team id, and the export lines to paste."""
    stdout, stop = _Watched("Stop it with Ctrl-C."), anyio.Event()
    runtime = Runtime(stdout=stdout, stderr=io.StringIO(), env={}, handle_signals=False)

    async with anyio.create_task_group() as tg:
        tg.start_soon(run, ["emulator", "--port", "0", "--warmup", "0"], evolve(runtime, stop=stop))
        with anyio.fail_after(60):
            await stdout.seen.wait()
        stop.set()
    text = stdout.getvalue()
    url = re.search(r"listening on (http://\S+)", text)
    user = re.search(r"user id: (\S+)", text)
    team = re.search(r"team id: (\S+)", text)

    assert url is not None
    assert user is not None
    assert team is not None
    assert "API key: rg-demo-key" in text
    assert "export RUNGEN_API_KEY=rg-demo-key" in text
    assert f"export RUNGEN_BASE_URL={url[1]}" in text
    assert f"export RUNGEN_USER_ID={user[1]}" in text
    assert f"export RUNGEN_TEAM_ID={team[1]}" in text


async def test_emulator_help_names_the_command_typed() -> None:
    """rungen emulator --help prints its usage as "rungen emulator" on stdout and exits 0."""
    stdout = io.StringIO()
    runtime = Runtime(stdout=stdout, stderr=io.StringIO(), env={}, handle_signals=False)

    code = await run(["emulator", "--help"], runtime)

    assert code == EXIT_OK
    assert stdout.getvalue().startswith("usage: rungen emulator")
    assert "python -m" not in stdout.getvalue()
