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
    stdout, stop = _Watched("stop it with Ctrl-C"), anyio.Event()
    runtime = Runtime(stdout=stdout, stderr=io.StringIO(), env={}, handle_signals=False)
    codes: list[int] = []

    async def serve() -> None:
        codes.append(
            await run(["emulator", "--port", "0", "--warmup", "0"], evolve(runtime, stop=stop))
        )

    async with anyio.create_task_group() as tg:
        tg.start_soon(serve)
        await stdout.seen.wait()
        match = re.search(r"listening on (http://\S+)", stdout.getvalue())
        assert match is not None
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{match[1]}/app", headers={"x-api-key": "rg-demo-key"})
        stop.set()

    assert response.status_code == 200
    assert codes == [EXIT_OK]


async def test_emulator_rejects_a_bad_flag() -> None:
    """The emulator's own parser refuses unknown flags with exit status 2."""
    runtime = Runtime(stdout=io.StringIO(), stderr=io.StringIO(), env={}, handle_signals=False)

    code = await run(["emulator", "--no-such-flag"], runtime)

    assert code == EXIT_USAGE
