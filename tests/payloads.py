"""JSON bodies as the API's doc pages show them (rungen-api.md), one builder per shape."""

from __future__ import annotations

from typing import Any

APP_ID = "0b9e4a52-6c1d-4f1e-9a77-3f0c2d8e1a10"
JOB_ID = "c4a1e2f3-5b6c-4d7e-8f90-a1b2c3d4e5f6"
USER_ID = "5d2f7c1a-8b3e-4c6d-9e0f-1a2b3c4d5e6f"
TEAM_ID = "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d"
MODEL_URL = "https://huggingface.co/black-forest-labs/FLUX.1-schnell"

LORA_IN: dict[str, Any] = {
    "id": "100001",
    "versionId": "200002",
    "downloadUrl": "https://civitai.com/api/download/models/200002",
    "name": "Example Style LoRA",
    "weight": 0.75,
}


def app(status: str = "STOPPED", *, active_workers: int = 0, **extra: Any) -> dict[str, Any]:
    """An app object as the read pages show it (get-apps, get-app)."""
    body: dict[str, Any] = {
        "configuration": {"active_workers": active_workers, "gpu_tier": "STANDARD"},
        "created_at": "2025-03-02T08:15:09",
        "created_by": USER_ID,
        "description": "FLUX schnell demo",
        "id": APP_ID,
        "jobs": {"completed": 4, "failed": 0, "in_progress": 1, "in_queue": 0, "retried": 0},
        "name": "demo",
        "owner_team_id": None,
        "owner_user_id": USER_ID,
        "status": status,
        "updated_at": "2025-03-02T09:01:44",
        "workers": {
            "idle": 0,
            "initializing": 0,
            "ready": 0,
            "running": 1,
            "throttled": 0,
            "unhealthy": 0,
        },
        "workflow": {"model_url": MODEL_URL, "tools": {}},
    }
    body.update(extra)
    return body


def created_app_bare() -> dict[str, Any]:
    """Variant A of create app (/api/apis/app/create-app): bare, team_id/user_id, nulls."""
    return {
        "id": APP_ID,
        "name": "portrait-app",
        "description": "FLUX dev with one style LoRA",
        "configuration": {"gpu_tier": "STANDARD", "active_workers": None, "location": None},
        "workflow": {
            "model_url": MODEL_URL,
            "tools": {"loras": [{"id": "100001", "name": "Example Style LoRA", "weight": 0.75}]},
        },
        "team_id": None,
        "user_id": USER_ID,
    }


def created_app_wrapped() -> dict[str, Any]:
    """Variant B of create app (tutorial): wrapped, team-owned, no jobs/workers."""
    body = app("STOPPED", owner_team_id=TEAM_ID, owner_user_id=None)
    del body["jobs"], body["workers"]
    return {"data": body}


def submitted_bare(status: str = "QUEUED") -> dict[str, Any]:
    """Variant A of run_async: bare, ``job_id``, ``input`` echo, T timestamp."""
    return {
        "job_id": JOB_ID,
        "status": status,
        "app_id": APP_ID,
        "created_at": "2025-03-02T09:05:12",
        "input": {"prompt": "a lighthouse at dawn, watercolor"},
    }


def submitted_wrapped() -> dict[str, Any]:
    """Variant B of run_async (tutorial): ``{"data": {"id": ...}}`` only."""
    return {"data": {"id": JOB_ID}}


def job(status: str = "IN_QUEUE", *, result: Any = None, **extra: Any) -> dict[str, Any]:
    """A job status body (always wrapped), with ``request`` and a space timestamp."""
    body: dict[str, Any] = {
        "id": JOB_ID,
        "created_at": "2025-03-02 09:05:12",
        "request": {"prompt": "a lighthouse at dawn, watercolor"},
        "result": result,
        "status": status,
    }
    if status == "COMPLETED":
        body["execution_time"] = "12.4"
    body.update(extra)
    return {"data": body}


def canceled() -> dict[str, Any]:
    """The cancel body."""
    return {"data": {"job_id": JOB_ID, "status": "CANCELED"}}


def error(message: str) -> dict[str, Any]:
    """Every documented error body."""
    return {"error": message}
