"""
The emulator's own endpoints under ``/_emulator/``, reachable without an API key.

==========================================  ===============================================
``GET /_emulator/health``                   ``{"status": "ok"}``
``GET /_emulator/stats``                    counters (`EmulatorStats.to_dict`)
``GET /_emulator/requests``                 recorded requests, API keys removed
``GET /_emulator/faults``                   the fault settings
``POST /_emulator/faults``                  replace them: `FaultConfig` fields as JSON, plus
                                            an optional ``"scripted"`` list of one-off faults
``DELETE /_emulator/faults``                turn every fault off
``POST /_emulator/jobs/fail``               ``{"count": 1, "message": "..."}`` fails the next
                                            jobs; ``{"number": 7}`` fails the 7th job
``GET /_emulator/outputs/{job_id}.png``     a completed job's image (like a pre-signed URL)
==========================================  ===============================================
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, get_args

from ._endpoints import OUTPUTS_PREFIX
from ._faults import FaultConfig, FaultKind
from ._http import EmulatorRequest, EmulatorResponse, HTTPError, Router, json_response
from ._http import parse_json_body as _body

if TYPE_CHECKING:
    from ._emulator import Emulator


def _object(request: EmulatorRequest) -> dict[str, Any]:
    body = _body(request)
    if not isinstance(body, dict):
        raise HTTPError(400, "'body' must be a JSON object")
    return body


def _faults(emulator: Emulator) -> dict[str, Any]:
    return {**emulator.faults.config.to_dict(), "scripted": len(emulator.faults.scripted)}


def router(emulator: Emulator) -> Router:
    """Build the admin router over *emulator*."""

    def health(request: EmulatorRequest, now: float) -> EmulatorResponse:
        return json_response(200, {"status": "ok"})

    def stats(request: EmulatorRequest, now: float) -> EmulatorResponse:
        return json_response(200, emulator.stats.to_dict())

    def requests(request: EmulatorRequest, now: float) -> EmulatorResponse:
        return json_response(200, {"data": [record.to_dict() for record in emulator.requests]})

    def get_faults(request: EmulatorRequest, now: float) -> EmulatorResponse:
        return json_response(200, _faults(emulator))

    def set_faults(request: EmulatorRequest, now: float) -> EmulatorResponse:
        settings = _object(request)
        scripted = settings.pop("scripted", [])
        if not isinstance(scripted, list):
            raise HTTPError(400, "'scripted' must be an array")
        try:
            config = FaultConfig.from_dict(settings)
            for index, entry in enumerate(scripted):
                if not isinstance(entry, dict) or entry.get("kind") not in get_args(FaultKind):
                    kinds = ", ".join(get_args(FaultKind))
                    raise ValueError(f"'scripted[{index}].kind' must be one of {kinds}")
                emulator.script_fault(**entry)
        except (TypeError, ValueError) as exc:
            raise HTTPError(400, str(exc)) from exc
        emulator.set_faults(config)
        return json_response(200, _faults(emulator))

    def clear_faults(request: EmulatorRequest, now: float) -> EmulatorResponse:
        emulator.set_faults(FaultConfig())
        emulator.faults.scripted.clear()
        return json_response(200, _faults(emulator))

    def fail_jobs(request: EmulatorRequest, now: float) -> EmulatorResponse:
        settings = _object(request)
        message = settings.get("message", "job failed (scripted)")
        number, count = settings.get("number"), settings.get("count", 1)
        if not isinstance(message, str):
            raise HTTPError(400, "'message' must be a string")
        if number is not None:
            if not isinstance(number, int) or number < 1:
                raise HTTPError(400, "'number' must be a positive integer")
            emulator.fail_job(number, message)
        elif isinstance(count, int) and count >= 0:
            emulator.fail_next_jobs(count, message)
        else:
            raise HTTPError(400, "'count' must be a non-negative integer")
        return json_response(200, {"status": "ok"})

    def output(request: EmulatorRequest, now: float, name: str) -> EmulatorResponse:
        if not name.endswith(".png"):
            raise HTTPError(404, f"no output '{name}'")
        return emulator.api.output(name.removesuffix(".png"), now)

    admin = Router()
    admin.add("GET", "/_emulator/health", health)
    admin.add("GET", "/_emulator/stats", stats)
    admin.add("GET", "/_emulator/requests", requests)
    admin.add("GET", "/_emulator/faults", get_faults)
    admin.add("POST", "/_emulator/faults", set_faults)
    admin.add("DELETE", "/_emulator/faults", clear_faults)
    admin.add("POST", "/_emulator/jobs/fail", fail_jobs)
    admin.add("GET", OUTPUTS_PREFIX + "{name}", output)
    return admin
