"""Apps and jobs through their lifecycles, with the emulator's clock moved by hand."""

from __future__ import annotations

import pytest

from rungen_async.emulator import Emulator

from ._helpers import ManualClock, app_body, call, create_app, job_body, submit


@pytest.fixture
def clock() -> ManualClock:
    """The time the emulator reads."""
    return ManualClock()


@pytest.fixture
def emulator(clock: ManualClock) -> Emulator:
    """An emulator with a 30 s warm-up and 10 s jobs on STANDARD."""
    return Emulator(clock=clock, warmup=30.0, job_duration=10.0, seed=1)


def _app(emulator: Emulator, app_id: str) -> dict[str, object]:
    response = call(emulator, "GET", f"/app/{app_id}")
    assert response.status == 200
    body: dict[str, object] = response.json()
    return body


def test_app_starts_warms_up_and_stops(emulator: Emulator, clock: ManualClock) -> None:
    """An app is STOPPED on create, INITIALIZING during warm-up, RUNNING after, STOPPED at 0."""
    app_id = create_app(emulator)
    assert _app(emulator, app_id)["status"] == "STOPPED"

    started = call(emulator, "PUT", f"/app/{app_id}", {"configuration": {"active_workers": 1}})
    assert started.json()["data"]["status"] == "INITIALIZING"
    clock.time += 29.9
    assert _app(emulator, app_id)["status"] == "INITIALIZING"
    clock.time += 0.1
    running = _app(emulator, app_id)
    stopped = call(emulator, "PUT", f"/app/{app_id}", {"configuration": {"active_workers": 0}})

    assert running["status"] == "RUNNING"
    assert running["workers"] == {
        "idle": 0,
        "initializing": 0,
        "ready": 1,
        "running": 0,
        "throttled": 0,
        "unhealthy": 0,
    }
    assert stopped.json()["data"]["status"] == "STOPPED"
    assert stopped.json()["data"]["configuration"]["active_workers"] == 0


def test_app_created_with_workers_starts_warming(emulator: Emulator) -> None:
    """active_workers in the create body starts the app at once."""
    app_id = create_app(emulator, active_workers=2)

    app = _app(emulator, app_id)

    assert app["status"] == "INITIALIZING"
    assert app["workers"]["initializing"] == 2  # type: ignore[index]


def test_job_moves_through_states_and_counters(emulator: Emulator, clock: ManualClock) -> None:
    """A job waits for warm-up in IN_QUEUE, runs 10 s, then COMPLETED with a result."""
    app_id = create_app(emulator, active_workers=1)
    job_id = submit(emulator, app_id, prompt="a lighthouse")
    queued = job_body(emulator, app_id, job_id)
    counters_queued = _app(emulator, app_id)["jobs"]
    clock.time += 35
    running = job_body(emulator, app_id, job_id)
    counters_running = _app(emulator, app_id)["jobs"]
    clock.time += 5
    done = job_body(emulator, app_id, job_id)

    assert queued["status"] == "IN_QUEUE"
    assert queued["result"] is None
    assert counters_queued == {
        "completed": 0,
        "failed": 0,
        "in_progress": 0,
        "in_queue": 1,
        "retried": 0,
    }
    assert running["status"] == "RUNNING"
    assert counters_running["in_progress"] == 1  # type: ignore[index]
    assert done["status"] == "COMPLETED"
    assert done["execution_time"] == "10.0"
    assert done["request"] == {"prompt": "a lighthouse"}
    assert done["result"]["images"][0]["image"].endswith(f"/_emulator/outputs/{job_id}.png")
    assert _app(emulator, app_id)["jobs"]["completed"] == 1  # type: ignore[index]


@pytest.mark.parametrize(
    ("tier", "seconds"),
    [
        pytest.param("BASIC", 20.0, id="basic"),
        pytest.param("STANDARD", 10.0, id="standard"),
        pytest.param("PERFORMANCE", 5.0, id="performance"),
    ],
)
def test_tiers_run_at_different_speeds(
    emulator: Emulator, clock: ManualClock, tier: str, seconds: float
) -> None:
    """BASIC takes twice and PERFORMANCE half the STANDARD duration."""
    body = app_body(active_workers=1, _warmup=0)
    body["configuration"]["gpu_tier"] = tier
    app_id = call(emulator, "POST", "/app", body).json()["data"]["id"]
    job_id = submit(emulator, app_id)
    clock.time += seconds - 0.01
    assert job_body(emulator, app_id, job_id)["status"] == "RUNNING"
    clock.time += 0.01

    assert job_body(emulator, app_id, job_id)["status"] == "COMPLETED"


def test_input_duration_and_fail_fields(emulator: Emulator, clock: ManualClock) -> None:
    """input._duration sets a job's seconds; _fail makes it FAILED with an error message."""
    app_id = create_app(emulator, active_workers=2, _warmup=0)
    quick = submit(emulator, app_id, _duration=1)
    failing = submit(emulator, app_id, _duration=2, _fail="out of memory")
    clock.time += 2

    assert job_body(emulator, app_id, quick)["status"] == "COMPLETED"
    failed = job_body(emulator, app_id, failing)
    assert failed["status"] == "FAILED"
    assert failed["error"] == "out of memory"
    assert failed["result"] is None
    assert _app(emulator, app_id)["jobs"]["failed"] == 1  # type: ignore[index]


def test_jobs_on_a_stopped_app_wait_for_workers(emulator: Emulator, clock: ManualClock) -> None:
    """Jobs submitted to a STOPPED app stay queued until it is started and warm."""
    app_id = create_app(emulator)
    job_id = submit(emulator, app_id, _duration=1)
    clock.time += 3600
    assert job_body(emulator, app_id, job_id)["status"] == "IN_QUEUE"

    call(emulator, "PUT", f"/app/{app_id}", {"configuration": {"active_workers": 1}})
    clock.time += 31

    assert job_body(emulator, app_id, job_id)["status"] == "COMPLETED"


def test_fifo_queue_with_two_workers(emulator: Emulator, clock: ManualClock) -> None:
    """Two workers take queued jobs in order, each as soon as it is free."""
    app_id = create_app(emulator, active_workers=2, _warmup=0)
    jobs = [submit(emulator, app_id, _duration=10) for _ in range(5)]

    clock.time += 10
    after_one_round = [job_body(emulator, app_id, job)["status"] for job in jobs]
    clock.time += 20

    assert after_one_round == ["COMPLETED", "COMPLETED", "RUNNING", "RUNNING", "IN_QUEUE"]
    assert [job_body(emulator, app_id, job)["status"] for job in jobs] == ["COMPLETED"] * 5


def test_scaling_down_lets_busy_workers_finish(emulator: Emulator, clock: ManualClock) -> None:
    """Stopping an app finishes the running job; queued ones wait for the next start."""
    app_id = create_app(emulator, active_workers=1, _warmup=0)
    running = submit(emulator, app_id, _duration=10)
    queued = submit(emulator, app_id, _duration=10)
    clock.time += 5
    call(emulator, "PUT", f"/app/{app_id}", {"configuration": {"active_workers": 0}})
    clock.time += 60

    assert job_body(emulator, app_id, running)["status"] == "COMPLETED"
    assert job_body(emulator, app_id, queued)["status"] == "IN_QUEUE"
    assert _app(emulator, app_id)["workers"]["running"] == 0  # type: ignore[index]


def test_cancel_queued_running_and_finished(emulator: Emulator, clock: ManualClock) -> None:
    """Cancel answers CANCELED for queued or running jobs and 409 once a job is finished."""
    app_id = create_app(emulator, active_workers=1, _warmup=0)
    running = submit(emulator, app_id, _duration=10)
    queued = submit(emulator, app_id, _duration=10)
    user = {"x-authenticated-user-id": emulator.accounts.user_named("demo").id}

    cancel_queued = call(emulator, "PUT", f"/app/{app_id}/job/{queued}", headers=user)
    cancel_running = call(emulator, "PUT", f"/app/{app_id}/job/{running}", headers=user)
    again = call(emulator, "PUT", f"/app/{app_id}/job/{running}", headers=user)
    done = submit(emulator, app_id, _duration=0)
    finished = call(emulator, "PUT", f"/app/{app_id}/job/{done}", headers=user)

    assert cancel_queued.status == 200
    assert cancel_queued.json() == {"data": {"job_id": queued, "status": "CANCELED"}}
    assert cancel_running.json()["data"]["status"] == "CANCELED"
    assert job_body(emulator, app_id, running)["status"] == "CANCELED"
    assert again.status == 409
    assert finished.status == 409
    assert "COMPLETED" in finished.json()["error"]


def test_cancel_requires_the_user_id_header(emulator: Emulator) -> None:
    """X-Authenticated-User-Id is required (400) and must be the key's user (403)."""
    app_id = create_app(emulator)
    job_id = submit(emulator, app_id)

    missing = call(emulator, "PUT", f"/app/{app_id}/job/{job_id}")
    wrong = call(
        emulator,
        "PUT",
        f"/app/{app_id}/job/{job_id}",
        headers={"x-authenticated-user-id": "someone-else"},
    )

    assert missing.status == 400
    assert "X-Authenticated-User-Id" in missing.json()["error"]
    assert wrong.status == 403


def test_delete_requires_a_stopped_app(emulator: Emulator) -> None:
    """DELETE answers 409 while workers are active, then 204 with no body; then 404."""
    app_id = create_app(emulator, active_workers=1)

    refused = call(emulator, "DELETE", f"/app/{app_id}")
    call(emulator, "PUT", f"/app/{app_id}", {"configuration": {"active_workers": 0}})
    deleted = call(emulator, "DELETE", f"/app/{app_id}")
    gone = call(emulator, "GET", f"/app/{app_id}")

    assert refused.status == 409
    assert (deleted.status, deleted.body) == (204, b"")
    assert gone.status == 404
    assert app_id in gone.json()["error"]


def test_cancel_running_job_frees_its_worker(emulator: Emulator, clock: ManualClock) -> None:
    """The next queued job starts as soon as the running one is canceled."""
    app_id = create_app(emulator, active_workers=1, _warmup=0)
    first = submit(emulator, app_id, _duration=100)
    second = submit(emulator, app_id, _duration=1)
    user = {"x-authenticated-user-id": emulator.accounts.user_named("demo").id}
    call(emulator, "PUT", f"/app/{app_id}/job/{first}", headers=user)
    clock.time += 1

    assert job_body(emulator, app_id, second)["status"] == "COMPLETED"
