"""The SDK against the emulator over real TCP: uvicorn on a free loopback port."""

from __future__ import annotations

import httpx
import pytest

from rungen_async import (
    AmbiguousRequestError,
    AsyncRunGen,
    AuthenticationError,
    ConflictError,
    JobStatus,
    NotFoundError,
    RetryPolicy,
)
from rungen_async.emulator import Emulator, EmulatorServer, read_png_header

from ._helpers import ALICE_KEY, BOB_KEY, CAROL_KEY, create_app, submit
from .conftest import NO_WAIT_RETRY


async def test_every_endpoint_over_tcp(tcp_client: AsyncRunGen, server: EmulatorServer) -> None:
    """Create, list, get, start, submit, read, fetch the image, cancel, stop and delete."""
    rg = tcp_client

    app = await rg.create_app("tcp", gpu_tier="STANDARD", model_url="https://hf.co/x")
    assert app.status is not None
    assert app.status.value == "STOPPED"
    started = await rg.start_app(app.id)
    assert [listed.id for listed in await rg.list_apps()] == [app.id]
    job = await rg.submit_job(app.id, {"prompt": "over tcp", "width": 64, "height": 64})
    done = await rg.get_job(app.id, job.id)
    async with httpx.AsyncClient() as http:  # no API key, like a pre-signed URL
        image = await http.get(done.image_urls[0])
    long_job = await rg.submit_job(app.id, {"prompt": "long", "_duration": 3600})
    canceled = await rg.cancel_job(app.id, long_job.id)
    with pytest.raises(ConflictError):
        await rg.cancel_job(app.id, job.id)
    with pytest.raises(ConflictError):
        await rg.delete_app(app.id)  # still running: the emulator's choice
    await rg.stop_app(app.id)
    await rg.delete_app(app.id)
    with pytest.raises(NotFoundError):
        await rg.get_app(app.id)

    assert started.status is not None
    assert started.status.is_ready
    assert done.status is JobStatus.COMPLETED
    assert done.image_urls[0].startswith(server.base_url)
    assert read_png_header(image.content) == (64, 64, 8, 2)
    assert canceled.status is JobStatus.CANCELED
    assert server.emulator.stats.jobs_created == 2


async def test_team_scope_over_tcp(server: EmulatorServer) -> None:
    """Members work in their team; a non-member is refused; team apps are not personal."""
    acme = server.emulator.accounts.team_named("acme").id

    def client(key: str) -> AsyncRunGen:
        return AsyncRunGen(key, team_id=acme, base_url=server.base_url, retry=NO_WAIT_RETRY)

    async with client(ALICE_KEY) as alice, client(BOB_KEY) as bob, client(CAROL_KEY) as carol:
        app = await bob.create_app("team", gpu_tier="BASIC", model_url="https://hf.co/x")
        assert [a.id for a in await alice.list_apps()] == [app.id]
        with pytest.raises(AuthenticationError):
            await bob.delete_app(app.id)  # a MEMBER may not delete
        with pytest.raises(AuthenticationError):
            await carol.list_apps()
        with pytest.raises(NotFoundError):
            await alice.with_team(None).get_app(app.id)
        await alice.delete_app(app.id)

    assert app.owner_team_id == acme


async def test_get_retries_through_injected_faults(
    tcp_client: AsyncRunGen, server: EmulatorServer
) -> None:
    """GETs succeed through seeded 429s, 503s and dropped connections."""
    app = await tcp_client.create_app("faulty", gpu_tier="STANDARD", model_url="https://hf.co/x")
    server.emulator.set_faults(
        rate_429=0.1, rate_5xx=0.1, rate_drop=0.1, retry_after=0, routes=["GET /app/*"], seed=5
    )

    reads = [await tcp_client.get_app(app.id) for _ in range(20)]

    faults = server.emulator.stats.faults
    assert all(read.id == app.id for read in reads)
    assert faults.get("429", 0) > 0
    assert faults.get("503", 0) > 0
    assert faults.get("drop", 0) > 0


async def test_submits_through_lost_responses_create_each_job_once(
    server: EmulatorServer,
) -> None:
    """With retry_ambiguous_posts, dropped answers are re-sent under the same key: no dupes."""
    retry = RetryPolicy(
        max_attempts=10, initial_delay=0, max_delay=0, max_retry_after=0, retry_ambiguous_posts=True
    )
    async with AsyncRunGen("rg-demo-key", base_url=server.base_url, retry=retry) as rg:
        app = await rg.create_app("dupes", gpu_tier="STANDARD", model_url="https://hf.co/x")
        await rg.start_app(app.id)
        server.emulator.set_faults(
            rate_drop_after=0.3, rate_5xx=0.2, status_5xx=500, routes=["POST /app/*/run_async"]
        )
        jobs = [await rg.submit_job(app.id, {"n": n}) for n in range(20)]

    stats = server.emulator.stats
    assert len({job.id for job in jobs}) == 20
    assert stats.jobs_created == 20
    assert stats.idempotent_replays > 0


async def test_dropped_connection_is_a_real_disconnect(server: EmulatorServer) -> None:
    """A drop closes the TCP connection before any byte: httpx sees RemoteProtocolError."""
    server.emulator.script_fault("drop")

    async with httpx.AsyncClient(base_url=server.base_url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.get("/app", headers={"x-api-key": "rg-demo-key"})
        after = await http.get("/app", headers={"x-api-key": "rg-demo-key"})

    assert after.status_code == 200


async def test_post_dropped_without_retry_is_ambiguous(
    tcp_client: AsyncRunGen, server: EmulatorServer
) -> None:
    """By default the client does not re-send a POST whose fate is unknown."""
    app = await tcp_client.create_app("amb", gpu_tier="STANDARD", model_url="https://hf.co/x")
    server.emulator.script_fault("drop_after", routes=["POST /app/*/run_async"])

    with pytest.raises(AmbiguousRequestError):
        await tcp_client.submit_job(app.id, {"prompt": "?"})

    assert server.emulator.stats.jobs_created == 1


async def test_admin_endpoints_over_tcp(server: EmulatorServer) -> None:
    """Faults can be set over HTTP at run time, and requests are recorded without keys."""
    async with httpx.AsyncClient(base_url=server.base_url) as http:
        set_ = await http.post("/_emulator/faults", json={"rate_429": 1.0, "retry_after": 7})
        limited = await http.get("/app", headers={"x-api-key": "rg-demo-key"})
        await http.delete("/_emulator/faults")
        records = (await http.get("/_emulator/requests")).json()["data"]

    assert set_.status_code == 200
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "7"
    assert all("x-api-key" not in record["headers"] for record in records)
    assert "rg-demo-key" not in repr(server.emulator.requests)


def test_server_answers_with_ten_thousand_jobs_in_flight() -> None:
    """10,000 queued jobs (submitted through the core) leave the server quick and exact."""
    emulator = Emulator(warmup=0, job_duration=3600, seed=4)
    app_id = create_app(emulator, active_workers=4)
    for _ in range(10_000):
        submit(emulator, app_id, prompt="many")

    with EmulatorServer(emulator) as server:
        app = httpx.get(f"{server.base_url}/app/{app_id}", headers={"x-api-key": "rg-demo-key"})

    assert app.json()["jobs"]["in_queue"] == 9_996
    assert app.json()["jobs"]["in_progress"] == 4
    assert app.json()["workers"]["running"] == 4
