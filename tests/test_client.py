"""Every endpoint of AsyncRunGen against the fake API: what is sent and what comes back."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from rungen_async import (
    App,
    AppStatus,
    AsyncRunGen,
    GpuTier,
    JobStatus,
    Lora,
)
from rungen_async._config import USER_AGENT

from . import payloads
from .conftest import API_KEY, BASE_URL

APP = payloads.APP_ID
JOB = payloads.JOB_ID


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


async def test_create_app_sends_the_documented_body(rungen: AsyncRunGen, api: respx.Router) -> None:
    """create_app() posts name, configuration and workflow with LoRAs in wire spelling."""
    route = api.post("/app").respond(201, json=payloads.created_app_bare())

    app = await rungen.create_app(
        "portrait-app",
        gpu_tier="standard",
        model_url=payloads.MODEL_URL,
        description="FLUX dev with one style LoRA",
        loras=[
            Lora(
                id="100001",
                version_id="200002",
                download_url="https://civitai.com/api/download/models/200002",
                name="Example Style LoRA",
                weight=0.75,
            )
        ],
    )

    assert sent_json(route) == {
        "name": "portrait-app",
        "description": "FLUX dev with one style LoRA",
        "configuration": {"gpu_tier": "STANDARD"},
        "workflow": {"model_url": payloads.MODEL_URL, "tools": {"loras": [payloads.LORA_IN]}},
    }
    request = route.calls.last.request
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-api-key"] == API_KEY
    assert request.headers["user-agent"] == USER_AGENT
    assert request.headers["idempotency-key"]
    assert app.id == APP
    assert app.configuration.gpu_tier is GpuTier.STANDARD
    assert app.workflow.tools.loras[0].weight == 0.75


async def test_create_app_accepts_the_wrapped_tutorial_variant(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """The tutorial's wrapped create answer, with no status code given, parses too."""
    api.post("/app").respond(200, json=payloads.created_app_wrapped())

    app = await rungen.create_app("demo", gpu_tier="BASIC", model_url=payloads.MODEL_URL)

    assert app.status is AppStatus.STOPPED
    assert app.owner_team_id == payloads.TEAM_ID
    assert app.owner_user_id is None
    assert app.jobs is None


async def test_list_apps_returns_a_list(rungen: AsyncRunGen, api: respx.Router) -> None:
    """list_apps() unwraps ``data`` and returns App objects."""
    api.get("/app").respond(200, json={"data": [payloads.app(), payloads.app("RUNNING")]})

    apps = await rungen.list_apps()

    assert [app.status for app in apps] == [AppStatus.STOPPED, AppStatus.RUNNING]
    assert all(isinstance(app, App) for app in apps)


async def test_get_app_reads_the_bare_object(rungen: AsyncRunGen, api: respx.Router) -> None:
    """get_app() reads the bare app with its counters."""
    api.get(f"/app/{APP}").respond(200, json=payloads.app("RUNNING", active_workers=1))

    app = await rungen.get_app(APP)

    assert app.status is AppStatus.RUNNING
    assert app.configuration.active_workers == 1
    assert app.jobs is not None
    assert app.jobs.in_progress == 1
    assert app.workers is not None
    assert app.workers.running == 1


async def test_update_app_sends_only_the_fields_given(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """update_app() is a partial update: nothing but the named fields is sent."""
    route = api.put(f"/app/{APP}").respond(200, json={"data": payloads.app()})

    await rungen.update_app(APP, description="new", loras=[payloads.LORA_IN])

    assert sent_json(route) == {
        "description": "new",
        "workflow": {"tools": {"loras": [payloads.LORA_IN]}},
    }


async def test_update_app_without_a_body_reads_the_app_back(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """An update answered with no body is followed by a GET, so a fresh App is returned."""
    api.put(f"/app/{APP}").respond(204)
    api.get(f"/app/{APP}").respond(200, json=payloads.app("RUNNING"))

    app = await rungen.update_app(APP, name="renamed")

    assert app.status is AppStatus.RUNNING


@pytest.mark.parametrize(
    ("call", "workers"),
    [pytest.param("start", 3, id="start"), pytest.param("stop", 0, id="stop")],
)
async def test_start_and_stop_scale_active_workers(
    rungen: AsyncRunGen, api: respx.Router, call: str, workers: int
) -> None:
    """start_app() and stop_app() are PUTs of configuration.active_workers."""
    route = api.put(f"/app/{APP}").respond(
        200, json={"data": payloads.app("INITIALIZING" if workers else "STOPPED")}
    )

    if call == "start":
        app = await rungen.start_app(APP, workers=3)
    else:
        app = await rungen.stop_app(APP)

    assert sent_json(route) == {"configuration": {"active_workers": workers}}
    assert app.status is (AppStatus.INITIALIZING if workers else AppStatus.STOPPED)


async def test_delete_app_accepts_204(rungen: AsyncRunGen, api: respx.Router) -> None:
    """delete_app() returns None on an empty 204."""
    route = api.delete(f"/app/{APP}").respond(204)

    await rungen.delete_app(APP)

    assert route.call_count == 1


async def test_submit_job_reads_the_bare_variant(rungen: AsyncRunGen, api: respx.Router) -> None:
    """submit_job() posts {"input": ...} and reads ``job_id`` from the bare 201."""
    route = api.post(f"/app/{APP}/run_async").respond(201, json=payloads.submitted_bare())

    job = await rungen.submit_job(APP, {"prompt": "a lighthouse at dawn, watercolor"})

    assert sent_json(route) == {"input": {"prompt": "a lighthouse at dawn, watercolor"}}
    assert job.id == JOB
    assert job.status is JobStatus.QUEUED
    assert job.app_id == APP
    assert job.input == {"prompt": "a lighthouse at dawn, watercolor"}


async def test_submit_job_reads_the_wrapped_id_only_variant(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """The tutorial's ``{"data": {"id"}}`` gives a queued job that remembers its input."""
    api.post(f"/app/{APP}/run_async").respond(200, json=payloads.submitted_wrapped())

    job = await rungen.submit_job(APP, input={"prompt": "x"})

    assert (job.id, job.status, job.app_id, job.input) == (
        JOB,
        JobStatus.QUEUED,
        APP,
        {"prompt": "x"},
    )


async def test_submit_job_sends_a_given_idempotency_key(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """A caller's idempotency key is sent as-is."""
    route = api.post(f"/app/{APP}/run_async").respond(201, json=payloads.submitted_bare())

    await rungen.submit_job(APP, {"prompt": "x"}, idempotency_key="batch-1-item-7")

    assert route.calls.last.request.headers["idempotency-key"] == "batch-1-item-7"


async def test_get_job_reads_a_completed_job(rungen: AsyncRunGen, api: respx.Router) -> None:
    """get_job() reads ``request`` as input, the result and the string execution time."""
    result = {"images": [{"image": "https://bucket.test/out.png"}]}
    api.get(f"/app/{APP}/job/{JOB}").respond(200, json=payloads.job("COMPLETED", result=result))

    job = await rungen.get_job(APP, JOB)

    assert job.status is JobStatus.COMPLETED
    assert job.status.is_terminal
    assert job.execution_time == 12.4
    assert job.image_urls == ["https://bucket.test/out.png"]
    assert job.input == {"prompt": "a lighthouse at dawn, watercolor"}
    assert job.app_id == APP
    assert job.created_at is not None
    assert job.created_at.isoformat() == "2025-03-02T09:05:12+00:00"


async def test_cancel_job_sends_the_user_header(rungen: AsyncRunGen, api: respx.Router) -> None:
    """cancel_job() is a body-less PUT with X-Authenticated-User-Id when a user is given."""
    route = api.put(f"/app/{APP}/job/{JOB}").respond(200, json=payloads.canceled())

    job = await rungen.cancel_job(APP, JOB, user_id=payloads.USER_ID)

    request = route.calls.last.request
    assert request.headers["x-authenticated-user-id"] == payloads.USER_ID
    assert request.content == b""
    assert job.status is JobStatus.CANCELED


async def test_cancel_job_without_user_sends_no_user_header(
    rungen: AsyncRunGen, api: respx.Router
) -> None:
    """With no user id anywhere, the header is left out rather than sent empty."""
    route = api.put(f"/app/{APP}/job/{JOB}").respond(200, json=payloads.canceled())

    await rungen.cancel_job(APP, JOB)

    assert "x-authenticated-user-id" not in route.calls.last.request.headers


async def test_client_reads_settings_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, api: respx.Router
) -> None:
    """Key, base URL, team and user come from RUNGEN_* when no argument is given."""
    monkeypatch.setenv("RUNGEN_API_KEY", "env-key")
    monkeypatch.setenv("RUNGEN_BASE_URL", BASE_URL)
    monkeypatch.setenv("RUNGEN_TEAM_ID", payloads.TEAM_ID)
    monkeypatch.setenv("RUNGEN_USER_ID", payloads.USER_ID)
    route = api.put(f"/app/{APP}/job/{JOB}").respond(200, json=payloads.canceled())

    async with AsyncRunGen(transport=httpx.MockTransport(api.async_handler)) as client:
        await client.cancel_job(APP, JOB)

    headers = route.calls.last.request.headers
    assert headers["x-api-key"] == "env-key"
    assert headers["x-team-id"] == payloads.TEAM_ID
    assert headers["x-authenticated-user-id"] == payloads.USER_ID


async def test_caller_owned_http_client_is_not_closed(api: respx.Router) -> None:
    """A caller's httpx.AsyncClient stays open after the SDK client closes."""
    api.get("/app").respond(200, json={"data": []})
    http = httpx.AsyncClient(transport=httpx.MockTransport(api.async_handler))

    async with AsyncRunGen(API_KEY, base_url=BASE_URL, http_client=http) as client:
        assert await client.list_apps() == []

    assert not http.is_closed
    await http.aclose()


def test_missing_api_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key anywhere is a construction error that says which variable to set."""
    monkeypatch.delenv("RUNGEN_API_KEY", raising=False)

    with pytest.raises(ValueError, match="RUNGEN_API_KEY"):
        AsyncRunGen()


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://api.rungen.ai", id="public-host"),
        pytest.param("http://10.0.0.5:8080", id="private-ip"),
    ],
)
def test_plain_http_is_refused_except_loopback(url: str) -> None:
    """The key never travels over plain http to a non-loopback host without an opt-in."""
    with pytest.raises(ValueError, match="allow_insecure_http"):
        AsyncRunGen(API_KEY, base_url=url)


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8080", id="ipv4"),
        pytest.param("http://localhost:8080/", id="localhost"),
        pytest.param("http://[::1]:8080", id="ipv6"),
    ],
)
def test_plain_http_to_loopback_is_allowed(url: str) -> None:
    """The local emulator works over plain http."""
    client = AsyncRunGen(API_KEY, base_url=url)

    assert client.base_url == url.rstrip("/")


def test_plain_http_with_opt_in_is_allowed() -> None:
    """An explicit opt-in allows plain http elsewhere."""
    client = AsyncRunGen(API_KEY, base_url="http://gateway.internal", allow_insecure_http=True)

    assert client.base_url == "http://gateway.internal"
