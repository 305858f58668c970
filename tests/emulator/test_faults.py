"""Fault injection: deterministic random faults, scripted faults, routes, the rate limit."""

from __future__ import annotations

import pytest

from rungen_async.emulator import Emulator, FaultConfig

from ._helpers import ManualClock, call, create_app


def _outcomes(emulator: Emulator, count: int) -> list[str]:
    outcomes = []
    for _ in range(count):
        response = call(emulator, "GET", "/app")
        outcomes.append(response.drop or str(response.status))
    return outcomes


def _run_with_seed(seed: int) -> list[str]:
    emulator = Emulator(clock=ManualClock())
    emulator.set_faults(rate_429=0.2, rate_5xx=0.2, rate_drop=0.1, seed=seed)
    return _outcomes(emulator, 200)


def test_random_faults_are_deterministic_under_a_seed() -> None:
    """The same seed gives the same faults for the same requests; another seed differs."""
    first, again, other = _run_with_seed(42), _run_with_seed(42), _run_with_seed(43)

    assert first == again
    assert first != other
    assert set(first) == {"200", "429", "503", "before"}
    assert 20 < first.count("429") < 60


def test_fault_responses_carry_retry_after() -> None:
    """An injected 429 (and 503) says when to come back."""
    emulator = Emulator(clock=ManualClock())
    emulator.set_faults(rate_429=1.0, retry_after=3)

    response = call(emulator, "GET", "/app")

    assert response.status == 429
    assert response.header("retry-after") == "3"
    assert "error" in response.json()
    assert emulator.stats.faults == {"429": 1}


def test_faults_can_target_routes() -> None:
    """With routes set, only matching requests meet faults."""
    emulator = Emulator(clock=ManualClock())
    app_id = create_app(emulator, active_workers=1)
    emulator.set_faults(rate_5xx=1.0, status_5xx=500, routes=["POST /app/*/run_async"])

    listed = call(emulator, "GET", "/app")
    submitted = call(emulator, "POST", f"/app/{app_id}/run_async", {"input": {}})

    assert listed.status == 200
    assert submitted.status == 500
    assert emulator.stats.jobs_created == 0


def test_scripted_faults_come_first_and_run_out() -> None:
    """script_fault() hits the next matching requests, then stops."""
    emulator = Emulator(clock=ManualClock())
    emulator.script_fault("status", status=429, count=2, retry_after=1)
    emulator.script_fault("drop", routes=["/app"])

    assert _outcomes(emulator, 4) == ["429", "429", "before", "200"]


def test_drop_after_handles_the_request_and_loses_the_answer() -> None:
    """A drop_after fault creates the job but the response is dropped."""
    emulator = Emulator(clock=ManualClock())
    app_id = create_app(emulator, active_workers=1)
    emulator.script_fault("drop_after")

    response = call(emulator, "POST", f"/app/{app_id}/run_async", {"input": {}})

    assert response.drop == "after"
    assert emulator.stats.jobs_created == 1
    assert emulator.requests[-1].status is None
    assert emulator.requests[-1].fault == "drop_after"


def test_slow_responses_carry_a_delay() -> None:
    """Slow faults add their seconds to the response's delay."""
    emulator = Emulator(clock=ManualClock())
    emulator.set_faults(rate_slow=1.0, slow_seconds=2.5)

    response = call(emulator, "GET", "/app")

    assert (response.status, response.delay) == (200, 2.5)


def test_rate_limit_per_key() -> None:
    """Past the per-key rate, requests get 429 with Retry-After until the bucket refills."""
    clock = ManualClock()
    emulator = Emulator(clock=clock)
    emulator.set_faults(rate_limit=2)

    burst = _outcomes(emulator, 3)
    limited = call(emulator, "GET", "/app")
    clock.time += 0.5
    refilled = call(emulator, "GET", "/app")

    assert burst == ["200", "200", "429"]
    assert limited.header("retry-after") == "1"
    assert refilled.status == 200


def test_admin_endpoints_never_fault() -> None:
    """/_emulator/... is outside fault injection."""
    emulator = Emulator(clock=ManualClock())
    emulator.set_faults(rate_drop=1.0)

    assert call(emulator, "GET", "/_emulator/health", key=None).status == 200


def test_fault_admin_endpoint() -> None:
    """POST /_emulator/faults sets faults and scripted faults; DELETE clears them."""
    emulator = Emulator(clock=ManualClock())

    set_ = call(
        emulator,
        "POST",
        "/_emulator/faults",
        {"rate_429": 0.5, "routes": ["GET /app"], "scripted": [{"kind": "status", "status": 502}]},
    )
    scripted = call(emulator, "GET", "/app/x")
    bad = call(emulator, "POST", "/_emulator/faults", {"rate_429": 2})
    unknown = call(emulator, "POST", "/_emulator/faults", {"rate_teapot": 1})
    cleared = call(emulator, "DELETE", "/_emulator/faults")

    assert set_.json()["rate_429"] == 0.5
    assert set_.json()["scripted"] == 1
    assert scripted.status == 502
    assert bad.status == 400
    assert "rate_teapot" in unknown.json()["error"]
    assert cleared.json()["rate_429"] == 0.0


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"rate_429": -0.1}, id="negative"),
        pytest.param({"rate_429": 0.6, "rate_5xx": 0.6}, id="sum"),
        pytest.param({"status_5xx": 404}, id="status"),
        pytest.param({"rate_limit": 0}, id="limit"),
    ],
)
def test_fault_config_validation(settings: dict[str, float]) -> None:
    """Impossible fault settings raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        FaultConfig.from_dict(settings)


def test_admin_fail_jobs_and_stats() -> None:
    """POST /_emulator/jobs/fail scripts failures; /_emulator/stats counts them."""
    emulator = Emulator(clock=ManualClock())
    app_id = create_app(emulator, active_workers=1)
    call(emulator, "POST", "/_emulator/jobs/fail", {"count": 1, "message": "boom"})
    call(emulator, "POST", f"/app/{app_id}/run_async", {"input": {"_duration": 0}})

    stats = call(emulator, "GET", "/_emulator/stats").json()
    records = call(emulator, "GET", "/_emulator/requests").json()["data"]

    assert stats["jobs_failed"] == 1
    assert stats["jobs_created"] == 1
    assert all("x-api-key" not in record["headers"] for record in records)
