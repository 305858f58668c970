"""``rungen apps ...`` against the in-process emulator."""

from __future__ import annotations

import json

from rungen_async._cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from rungen_async.testing import FakeRunGen

from .conftest import Cli, pairs

MODEL = "https://huggingface.co/black-forest-labs/FLUX.1-schnell"


async def test_apps_list_shows_a_table(cli: Cli, fake: FakeRunGen) -> None:
    """apps list prints one row per app under a header."""
    app_id = fake.create_app("first")

    result = await cli("apps", "list")

    assert result.code == EXIT_OK
    header, row = result.stdout.splitlines()
    assert header.split()[:3] == ["ID", "NAME", "STATUS"]
    assert row.split()[:3] == [app_id, "first", "RUNNING"]


async def test_apps_list_json(cli: Cli, fake: FakeRunGen) -> None:
    """apps list --json prints a JSON list of apps."""
    app_id = fake.create_app("first")

    result = await cli("apps", "list", "--json")

    apps = json.loads(result.stdout)
    assert [app["id"] for app in apps] == [app_id]
    assert apps[0]["status"] == "RUNNING"


async def test_apps_list_empty_says_so(cli: Cli) -> None:
    """An empty scope prints a note on stderr, not an empty table."""
    result = await cli("apps", "list")

    assert (result.code, result.stdout) == (EXIT_OK, "")
    assert "no apps" in result.stderr


async def test_apps_create_then_get(cli: Cli, fake: FakeRunGen) -> None:
    """apps create sends the fields given and prints the new app."""
    created = await cli(
        "apps", "create", "pics", "--gpu-tier", "performance", "--model-url", MODEL,
        "--description", "demo", "--json",
    )  # fmt: skip
    app_id = json.loads(created.stdout)["id"]

    shown = await cli("apps", "get", app_id)

    assert created.code == EXIT_OK
    assert fake.app_status(app_id) == "STOPPED"
    assert pairs(shown.stdout)["gpu tier"] == "PERFORMANCE"
    assert pairs(shown.stdout)["id"] == app_id


async def test_apps_create_with_lora(cli: Cli) -> None:
    """--lora takes a JSON object per LoRA."""
    lora = {"id": "l1", "versionId": "v1", "downloadUrl": "https://x.test/l.safetensors",
            "name": "ink", "weight": 0.7}  # fmt: skip

    result = await cli(
        "apps", "create", "pics", "--gpu-tier", "BASIC", "--model-url", MODEL,
        "--lora", json.dumps(lora),
    )  # fmt: skip

    assert result.code == EXIT_OK
    assert "ink (0.7)" in result.stdout


async def test_apps_create_rejects_bad_lora_json(cli: Cli) -> None:
    """A --lora that is not a JSON object is a usage error; nothing is sent."""
    result = await cli(
        "apps", "create", "pics", "--gpu-tier", "BASIC", "--model-url", MODEL, "--lora", "[1]"
    )

    assert result.code == EXIT_USAGE
    assert "--lora must be a JSON object" in result.stderr


async def test_apps_update_start_stop_delete(cli: Cli, fake: FakeRunGen) -> None:
    """update, start, stop and delete change the emulator's app as asked."""
    app_id = fake.create_app("old", active_workers=0)

    renamed = await cli("apps", "update", app_id, "--name", "new", "--json")
    started = await cli("apps", "start", app_id, "--workers", "3", "--wait")
    stopped = await cli("apps", "stop", app_id)
    deleted = await cli("apps", "delete", app_id, "--json")

    assert json.loads(renamed.stdout)["name"] == "new"
    assert started.code == EXIT_OK
    assert pairs(started.stdout)["status"] == "RUNNING"
    assert pairs(started.stdout)["workers"] == "3"
    assert stopped.code == EXIT_OK
    assert pairs(stopped.stdout)["workers"] == "0"
    assert json.loads(deleted.stdout) == {"id": app_id, "deleted": True}
    assert app_id not in fake.emulator.api.apps


async def test_apps_wait_until_running(cli: Cli, fake: FakeRunGen) -> None:
    """apps wait polls until the app is RUNNING (on the fake clock: no real sleep)."""
    fake.emulator.api.warmup = 30.0
    app_id = fake.create_app("slow")

    result = await cli("apps", "wait", app_id)

    assert result.code == EXIT_OK
    assert "RUNNING" in result.stdout
    assert fake.clock.now() >= 30.0


async def test_apps_delete_running_app_fails_with_the_api_error(cli: Cli, fake: FakeRunGen) -> None:
    """An API refusal exits 1 with the API's own sentence."""
    app_id = fake.create_app("busy")

    result = await cli("apps", "delete", app_id)

    assert result.code == EXIT_FAILED
    assert result.stderr.startswith("rungen: error: 409 Conflict")
    assert "not stopped" in result.stderr


async def test_apps_get_unknown_app_exits_1(cli: Cli) -> None:
    """A 404 is a failure (exit 1), not a usage error."""
    result = await cli("apps", "get", "no-such-app")

    assert result.code == EXIT_FAILED
    assert "404" in result.stderr


async def test_apps_in_team_scope(cli: Cli, fake: FakeRunGen) -> None:
    """--team lists the team's apps, not the personal ones."""
    team_app = fake.create_app("shared", team_id=fake.team_id)
    fake.create_app("mine")

    result = await cli("apps", "list", "--json", "--team", fake.team_id)

    assert [app["id"] for app in json.loads(result.stdout)] == [team_app]
