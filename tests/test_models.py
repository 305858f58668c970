"""Every documented shape parses: envelopes, id and echo names, timestamps, statuses, nulls."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from rungen_async import App, AppStatus, GpuTier, Job, JobStatus, ResponseValidationError
from rungen_async._serde import parse_number, parse_timestamp, structure, structure_job

from . import payloads


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("2025-03-02T08:15:09", datetime(2025, 3, 2, 8, 15, 9, tzinfo=UTC), id="T"),
        pytest.param("2025-03-02 08:15:09", datetime(2025, 3, 2, 8, 15, 9, tzinfo=UTC), id="space"),
        pytest.param(
            "2025-03-02T08:15:09.250Z",
            datetime(2025, 3, 2, 8, 15, 9, 250000, tzinfo=UTC),
            id="fraction-Z",
        ),
        pytest.param(
            "2025-03-02 08:15:09+02:00",
            datetime(2025, 3, 2, 8, 15, 9, tzinfo=timezone(timedelta(hours=2))),
            id="offset",
        ),
        pytest.param(None, None, id="null"),
        pytest.param("", None, id="empty"),
        pytest.param("last tuesday", None, id="garbage"),
    ],
)
def test_timestamps_parse_leniently(text: str | None, expected: datetime | None) -> None:
    """T or space, fractions, Z or offsets; naive means UTC; junk becomes None."""
    assert parse_timestamp(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("12.4", 12.4), (12.4, 12.4), (3, 3.0), (" 7 ", 7.0), ("n/a", None), (None, None)],
)
def test_execution_time_accepts_strings_and_numbers(value: object, expected: float | None) -> None:
    """execution_time is a string on the docs' pages; numbers work too."""
    assert parse_number(value) == expected


@pytest.mark.parametrize(
    ("body", "job_id", "status", "input"),
    [
        pytest.param(
            payloads.submitted_bare(),
            payloads.JOB_ID,
            "QUEUED",
            {"prompt": "a lighthouse at dawn, watercolor"},
            id="run-bare",
        ),
        pytest.param(
            payloads.submitted_wrapped()["data"], payloads.JOB_ID, "QUEUED", None, id="run-wrapped"
        ),
        pytest.param(
            payloads.job("IN_QUEUE")["data"],
            payloads.JOB_ID,
            "QUEUED",
            {"prompt": "a lighthouse at dawn, watercolor"},
            id="status",
        ),
        pytest.param(payloads.canceled()["data"], payloads.JOB_ID, "CANCELED", None, id="cancel"),
        pytest.param({"id": 42, "status": "RUNNING"}, "42", "RUNNING", None, id="numeric-id"),
    ],
)
def test_job_variants_parse(body: dict[str, Any], job_id: str, status: str, input: Any) -> None:
    """job_id or id, input or request, status present or not."""
    job = structure_job(body, payloads.APP_ID)

    assert (job.id, job.status, job.input, job.app_id) == (job_id, status, input, payloads.APP_ID)


def test_job_ignores_unknown_fields_and_keeps_unknown_status() -> None:
    """A new status is kept with its spelling and is not terminal; extra keys are ignored."""
    job = structure({"id": "j", "status": "PAUSED", "priority": 3, "new": {"x": 1}}, Job)

    assert job.status.value == "PAUSED"
    assert not job.status.is_known
    assert not job.status.is_terminal
    assert job.status is JobStatus("PAUSED")


def test_failed_job_carries_its_error() -> None:
    """A FAILED job's error text is read from ``error`` (string or object)."""
    plain = structure({"id": "j", "status": "FAILED", "error": "CUDA OOM"}, Job)
    nested = structure({"id": "j", "status": "FAILED", "error": {"message": "bad prompt"}}, Job)

    assert (plain.error, nested.error) == ("CUDA OOM", "bad prompt")


@pytest.mark.parametrize(
    ("status", "terminal", "pending", "active"),
    [
        ("QUEUED", False, True, False),
        ("IN_QUEUE", False, True, False),
        ("RUNNING", False, False, True),
        ("IN_PROGRESS", False, False, True),
        ("COMPLETED", True, False, False),
        ("FAILED", True, False, False),
        ("CANCELED", True, False, False),
        ("CANCELLED", True, False, False),
        ("RETRIED", False, False, False),
    ],
)
def test_job_status_classification(
    status: str, terminal: bool, pending: bool, active: bool
) -> None:
    """Both spellings of each state classify the same; CANCELLED reads as CANCELED."""
    value = JobStatus(status)

    assert (value.is_terminal, value.is_pending, value.is_active) == (terminal, pending, active)


def test_app_create_variant_maps_team_and_user_ids() -> None:
    """The create page's team_id/user_id become owner_team_id/owner_user_id; nulls are kept."""
    app = structure(payloads.created_app_bare(), App)

    assert (app.owner_team_id, app.owner_user_id) == (None, payloads.USER_ID)
    assert app.configuration.active_workers is None
    assert app.configuration.location is None
    assert app.status is None
    assert app.workflow.tools.loras[0].version_id is None


def test_app_read_variant_has_counters() -> None:
    """The read pages' app has timestamps, counters and an open status set."""
    app = structure(payloads.app("WARMING_UP", configuration={"gpu_tier": "ULTRA"}), App)

    assert app.status is not None
    assert app.status.value == "WARMING_UP"
    assert not app.status.is_ready
    assert app.configuration.gpu_tier is not None
    assert app.configuration.gpu_tier.value == "ULTRA"
    assert app.created_at == datetime(2025, 3, 2, 8, 15, 9, tzinfo=UTC)
    assert app.workers is not None


def test_app_with_null_configuration_and_workflow_parses() -> None:
    """A null nested object reads as an empty one."""
    app = structure({"id": "a", "configuration": None, "workflow": None}, App)

    assert app.configuration.gpu_tier is None
    assert app.workflow.model_url is None


def test_app_status_and_tier_members() -> None:
    """Known values are the enum members, compared with ``is``."""
    assert AppStatus("RUNNING") is AppStatus.RUNNING
    assert AppStatus("RUNNING").is_ready
    assert GpuTier("PERFORMANCE") is GpuTier.PERFORMANCE


@pytest.mark.parametrize(
    "body",
    [
        pytest.param([1, 2], id="array"),
        pytest.param("text", id="string"),
        pytest.param({"name": "x"}, id="no-id"),
    ],
)
def test_app_that_cannot_fit_raises_validation_error(body: object) -> None:
    """A body of the wrong shape is a ResponseValidationError naming the model."""
    with pytest.raises(ResponseValidationError, match="App"):
        structure(body, App)


def test_models_are_frozen() -> None:
    """A snapshot cannot be changed; fetch again for a newer state."""
    job = structure({"id": "j", "status": "QUEUED"}, Job)

    with pytest.raises(AttributeError):
        job.status = JobStatus.COMPLETED  # type: ignore[misc]
