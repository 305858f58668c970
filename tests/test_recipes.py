"""README recipes that cannot run as plain programs, exercised against the emulator."""

from __future__ import annotations

import types
from collections.abc import Iterator

import httpx
import pytest

from rungen_async.emulator import Emulator, EmulatorServer
from rungen_async.emulator._accounts import DEMO_API_KEY

from .test_readme import BLOCKS


def recipe(name: str) -> types.ModuleType:
    """The README block marked ``<!-- readme-test: recipe NAME -->``, as a module."""
    [code] = [code for _, mark, code in BLOCKS if mark == f"recipe {name}"]
    module = types.ModuleType(f"readme_recipe_{name}")
    exec(compile(code, f"README:{name}", "exec"), module.__dict__)
    return module


@pytest.fixture
def emulator_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorServer]:
    with EmulatorServer(Emulator(warmup=0, job_duration=0, seed=9)) as server:
        monkeypatch.setenv("RUNGEN_API_KEY", DEMO_API_KEY)
        monkeypatch.setenv("RUNGEN_BASE_URL", server.base_url)
        monkeypatch.delenv("RUNGEN_TEAM_ID", raising=False)
        yield server


async def test_fastapi_recipe_submits_then_polls(emulator_env: EmulatorServer) -> None:
    """The FastAPI recipe answers a submit at once with the id, and the poll gives images."""
    module = recipe("fastapi")
    async with module.lifespan(module.app):
        rg = module.app.state.rg
        app = await rg.create_app("web", gpu_tier="STANDARD", model_url="https://hf.co/a/b")
        await rg.start_app(app.id)
        await rg.wait_for_app(app.id)
        transport = httpx.ASGITransport(app=module.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://recipe") as http:
            submitted = await http.post(f"/apps/{app.id}/jobs", json={"prompt": "a fox"})
            job_id = submitted.json()["job_id"]
            done = await http.get(f"/apps/{app.id}/jobs/{job_id}", params={"wait": 5})

    assert submitted.status_code == 200
    assert done.json()["status"] == "COMPLETED"
    assert len(done.json()["images"]) == 1
