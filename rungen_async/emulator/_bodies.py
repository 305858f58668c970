"""
Validation of request bodies; a bad body is a 400 whose message names the field.

Emulator-only extensions, all optional and prefixed with ``_`` so they cannot clash with the
documented fields: ``configuration._warmup`` and ``configuration._job_duration`` (seconds,
per app) and, in a job's ``input``, ``_duration`` (seconds), ``_fail`` (``true`` or an error
message) and ``_result`` (any JSON, returned as the job's ``result``).
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ._http import HTTPError
from ._state import TIER_SPEED

_LORA_FIELDS = {"id": str, "versionId": str, "downloadUrl": str, "name": str, "weight": float}


def _bad(field: str, problem: str) -> HTTPError:
    return HTTPError(400, f"'{field}' {problem}")


def _object(value: object, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _bad(field, "is required and must be a JSON object")
    return value


def _string(value: object, field: str, *, empty: bool = True) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise _bad(field, "is required and must be a string" + ("" if empty else " (not empty)"))
    return value


def _seconds(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise _bad(field, "must be a number of seconds >= 0")
    return float(value)


def _workers(value: object, field: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        raise _bad(field, f"must be an integer from 0 to {maximum}")
    return value


def _loras(value: object, field: str) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        raise _bad(field, "must be an array")
    for index, lora in enumerate(value):
        item = _object(lora, f"{field}[{index}]")
        for name, kind in _LORA_FIELDS.items():
            ok = isinstance(item.get(name), int | float if kind is float else kind)
            if not ok or isinstance(item.get(name), bool):
                raise _bad(f"{field}[{index}].{name}", f"is required and must be a {kind.__name__}")
    return value


def _workflow(value: object, field: str, *, partial: bool) -> dict[str, Any]:
    workflow = dict(_object(value, field))
    if "model_url" in workflow or not partial:
        _string(workflow.get("model_url"), f"{field}.model_url", empty=False)
    if "tools" in workflow:
        tools = _object(workflow["tools"], f"{field}.tools")
        if "loras" in tools:
            _loras(tools["loras"], f"{field}.tools.loras")
    return workflow


@frozen(kw_only=True)
class AppSettings:
    """A validated create or update body; `None` means "not given"."""

    name: str | None = None
    description: str | None = None
    gpu_tier: str | None = None
    location: str | None = None
    active_workers: int | None = None
    workflow: dict[str, Any] | None = None
    warmup: float | None = None
    job_duration: float | None = None


def _extensions(configuration: dict[str, Any]) -> dict[str, float]:
    return {
        attribute: _seconds(configuration[key], f"configuration.{key}")
        for key, attribute in (("_warmup", "warmup"), ("_job_duration", "job_duration"))
        if key in configuration
    }


def parse_create(body: object, *, max_workers: int) -> AppSettings:
    """Validate a POST /app body (`rungen-api.md` section 4.1)."""
    data = _object(body, "body")
    configuration = _object(data.get("configuration"), "configuration")
    tier = configuration.get("gpu_tier")
    if tier not in TIER_SPEED:
        raise _bad(
            "configuration.gpu_tier", f"is required and must be one of {', '.join(TIER_SPEED)}"
        )
    location = configuration.get("location")
    if location is not None:
        _string(location, "configuration.location")
    return AppSettings(
        name=_string(data.get("name"), "name", empty=False),
        description=_string(data.get("description", ""), "description"),
        gpu_tier=tier,
        location=location,
        active_workers=_workers(
            configuration.get("active_workers", 0), "configuration.active_workers", max_workers
        ),
        workflow=_workflow(data.get("workflow"), "workflow", partial=False),
        **_extensions(configuration),
    )


def parse_update(body: object, current: dict[str, Any], *, max_workers: int) -> AppSettings:
    """Validate a PUT /app/{app_id} body against the app's *current* workflow.

    The update page lists neither ``gpu_tier`` nor ``location`` as updatable, so changing them
    is a 400; LoRAs may change only their ``weight``.
    """
    data = _object(body, "body")
    settings: dict[str, Any] = {}
    if "name" in data:
        settings["name"] = _string(data["name"], "name", empty=False)
    if "description" in data:
        settings["description"] = _string(data["description"], "description")
    if "configuration" in data:
        configuration = _object(data["configuration"], "configuration")
        for key in ("gpu_tier", "location"):
            if key in configuration:
                raise _bad(f"configuration.{key}", "cannot be changed by an update")
        if "active_workers" in configuration:
            settings["active_workers"] = _workers(
                configuration["active_workers"], "configuration.active_workers", max_workers
            )
        settings |= _extensions(configuration)
    if "workflow" in data:
        workflow = _workflow(data["workflow"], "workflow", partial=True)
        loras = workflow.get("tools", {}).get("loras")
        if loras is not None:
            workflow["tools"] = {
                **workflow["tools"],
                "loras": _reweighted(current.get("tools", {}).get("loras", []), loras),
            }
        settings["workflow"] = {**current, **workflow}
    return AppSettings(**settings)


def _reweighted(existing: list[dict[str, Any]], sent: list[dict[str, Any]]) -> list[dict[str, Any]]:
    identity = ("id", "versionId", "downloadUrl", "name")
    by_identity = {tuple(lora.get(key) for key in identity): lora for lora in existing}
    updated = {key: dict(lora) for key, lora in by_identity.items()}
    for index, lora in enumerate(sent):
        key = tuple(lora[name] for name in identity)
        if key not in by_identity:
            raise _bad(
                f"workflow.tools.loras[{index}]",
                "does not match a LoRA of the app; only LoRA weights can be changed",
            )
        updated[key]["weight"] = lora["weight"]
    return list(updated.values())


@frozen(kw_only=True)
class JobRequest:
    """A validated run_async body."""

    input: dict[str, Any]
    duration: float | None
    error: str | None
    result: Any


def parse_run(body: object) -> JobRequest:
    """Validate a POST /app/{app_id}/run_async body (`rungen-api.md` section 4.6)."""
    data = _object(body, "body")
    job_input = _object(data.get("input"), "input")
    duration = job_input.get("_duration")
    fail = job_input.get("_fail", False)
    if not isinstance(fail, bool | str):
        raise _bad("input._fail", "must be true, false or an error message")
    error = None if fail is False else ("job failed (input._fail)" if fail is True else fail)
    return JobRequest(
        input=job_input,
        duration=None if duration is None else _seconds(duration, "input._duration"),
        error=error,
        result=job_input.get("_result"),
    )
