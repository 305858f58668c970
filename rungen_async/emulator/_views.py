"""
The JSON bodies the emulator answers with, in both documented variants.

``reference`` picks, per endpoint, the variant of `rungen-api.md` listed below; ``alternate``
serves the other documented shape (or, where the docs show only one, the spellings they
disagree on), so a client's tolerance can be exercised:

=====================  ==========================================  ==========================
Endpoint               reference                                   alternate
=====================  ==========================================  ==========================
POST /app              201 ``{"data": app}`` (tutorial, no jobs/    201 bare, ``team_id`` /
                       workers)                                    ``user_id`` (create-app)
GET /app               200 ``{"data": [app, ...]}``                same (only one documented)
GET /app/{id}          200 bare app                                200 ``{"data": app}``
PUT /app/{id}          200 ``{"data": app}`` (tutorial)             200 bare app
DELETE /app/{id}       204, no body                                same
POST .../run_async     201 bare ``job_id``, ``status`` QUEUED,      201 ``{"data": {"id"}}``
                       ``app_id``, ``created_at`` (T), ``input``   (run-a-job tutorial)
GET .../job/{id}       200 ``{"data": ...}`` ``id``, ``request``,    ``job_id``, ``input``,
                       space timestamp, IN_QUEUE / RUNNING          T timestamp, QUEUED /
                                                                   IN_PROGRESS
PUT .../job/{id}       200 ``{"data": {"job_id", "status"}}``       same
=====================  ==========================================  ==========================
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from ._state import App, Job, JobState

Variant = Literal["reference", "alternate"]
Stamp = Callable[[float], datetime]  # clock reading -> wall-clock time

_PENDING = {"reference": "IN_QUEUE", "alternate": "QUEUED"}
_ACTIVE = {"reference": "RUNNING", "alternate": "IN_PROGRESS"}


def iso(moment: datetime, *, sep: str = "T") -> str:
    """Format like the docs: whole seconds, no timezone (`rungen-api.md` section 1.6)."""
    return moment.astimezone(UTC).strftime(f"%Y-%m-%d{sep}%H:%M:%S")


def job_status(job: Job, variant: Variant) -> str:
    """The wire status of *job*."""
    if job.state is JobState.QUEUED:
        return _PENDING[variant]
    if job.state is JobState.RUNNING:
        return _ACTIVE[variant]
    return job.state.value


def _app_body(app: App, stamp: Stamp, *, counters: bool) -> dict[str, Any]:
    configuration: dict[str, Any] = {
        "active_workers": app.active_workers,
        "gpu_tier": app.gpu_tier,
    }
    if app.location is not None:
        configuration["location"] = app.location
    body: dict[str, Any] = {
        "configuration": configuration,
        "created_at": iso(stamp(app.created_at)),
        "created_by": app.created_by,
        "description": app.description,
        "id": app.id,
        "name": app.name,
        "owner_team_id": app.owner_team_id,
        "owner_user_id": app.owner_user_id,
        "status": app.status,
        "updated_at": iso(stamp(app.updated_at)),
        "workflow": app.workflow,
    }
    if counters:
        body["jobs"] = {
            "completed": app.completed,
            "failed": app.failed,
            "in_progress": app.in_progress,
            "in_queue": app.in_queue,
            "retried": 0,
        }
        body["workers"] = app.worker_counts()
    return body


def app_listed(app: App, stamp: Stamp) -> dict[str, Any]:
    """An app as GET /app lists it (with ``jobs`` and ``workers``)."""
    return _app_body(app, stamp, counters=True)


def app_read(app: App, stamp: Stamp, variant: Variant) -> Any:
    """GET /app/{app_id}: bare per the reference page; wrapped in the alternate variant."""
    body = _app_body(app, stamp, counters=True)
    return body if variant == "reference" else {"data": body}


def app_updated(app: App, stamp: Stamp, variant: Variant) -> Any:
    """PUT /app/{app_id}: wrapped per the tutorials; bare (with counters) in the alternate."""
    if variant == "reference":
        return {"data": _app_body(app, stamp, counters=False)}
    return _app_body(app, stamp, counters=True)


def app_created(app: App, stamp: Stamp, variant: Variant) -> Any:
    """POST /app: the tutorial's wrapped object, or the create-app page's bare one."""
    if variant == "reference":
        return {"data": _app_body(app, stamp, counters=False)}
    tools = dict(app.workflow.get("tools", {}))
    if "loras" in tools:  # The create-app page echoes only these three LoRA fields.
        tools["loras"] = [
            {key: lora[key] for key in ("id", "name", "weight") if key in lora}
            for lora in tools["loras"]
        ]
    return {
        "id": app.id,
        "name": app.name,
        "description": app.description,
        "configuration": {
            "gpu_tier": app.gpu_tier,
            "active_workers": app.active_workers,
            "location": app.location,
        },
        "workflow": {**app.workflow, "tools": tools},
        "team_id": app.owner_team_id,
        "user_id": app.owner_user_id,
    }


def job_submitted(job: Job, stamp: Stamp, variant: Variant) -> Any:
    """POST .../run_async: the run-job page's bare object, or the tutorial's ``data.id``."""
    if variant == "alternate":
        return {"data": {"id": job.id}}
    status = "QUEUED" if job.state is JobState.QUEUED else job_status(job, variant)
    return {
        "job_id": job.id,
        "status": status,
        "app_id": job.app_id,
        "created_at": iso(stamp(job.created_at)),
        "input": job.input,
    }


def job_read(job: Job, stamp: Stamp, variant: Variant, *, output_url: str) -> Any:
    """GET .../job/{job_id}, always wrapped in ``data``.

    A FAILED job carries ``error`` (undocumented; the emulator's choice). A completed job's
    ``result`` is ``{"images": [{"image": output_url}]}`` unless its input gave ``_result``.
    """
    body: dict[str, Any] = {
        "id" if variant == "reference" else "job_id": job.id,
        "created_at": iso(stamp(job.created_at), sep=" " if variant == "reference" else "T"),
        "request" if variant == "reference" else "input": job.input,
        "result": None,
        "status": job_status(job, variant),
    }
    if job.state is JobState.COMPLETED:
        body["result"] = (
            job.result if job.result is not None else {"images": [{"image": output_url}]}
        )
    if job.state is JobState.FAILED:
        body["error"] = job.error
    if job.state.is_terminal and job.started_at is not None and job.finished_at is not None:
        body["execution_time"] = str(round(job.finished_at - job.started_at, 3))
    return {"data": body}


def job_canceled(job: Job) -> dict[str, Any]:
    """PUT .../job/{job_id} (cancel), as documented."""
    return {"data": {"job_id": job.id, "status": "CANCELED"}}
