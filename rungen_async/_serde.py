"""
The package's own cattrs converter: decoded JSON in, models out, and models back to JSON.

Every way the API's pages disagree on a shape is absorbed here, in one hook per model,
never in client methods (see "Inconsistencies in the docs" in rungen-api.md).
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import Any, TypeVar

from cattrs import BaseValidationError, transform_error
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.preconf.json import make_converter

from ._exceptions import ResponseValidationError
from ._models import App, Job, JobStatus, Lora

T = TypeVar("T")
logger = logging.getLogger("rungen_async")

_converter = make_converter()  # never touch cattrs.global_converter


def parse_timestamp(value: object) -> datetime | None:
    """
    Read an API timestamp leniently, or return None when there is none.

    Accepts ``T`` or space as separator, optional fractions and an optional ``Z``/offset.
    The API never states a zone; naive values are taken as UTC (an assumption).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            # A tolerant reader: an odd timestamp must not fail a whole poll.
            logger.debug("Ignoring unparseable timestamp %r", value)
            return None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    else:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_number(value: object) -> float | None:
    """Read a number the API may send as a string (``"12.4"``), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _as_text(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict):
        message = value.get("message") or value.get("error")
        if isinstance(message, str):
            return message
    return str(value)


def _structure_job(data: Any, _: type) -> Job:
    # Hand-written: the hot path of every poll. run_async answers `job_id` (bare) or
    # `{"id"}` (wrapped), status answers `id` and `request`; cancel answers `job_id`.
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    job_id = data.get("job_id") or data.get("id")
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        job_id = str(job_id)
    if not isinstance(job_id, str) or not job_id:
        raise ValueError("the job has no 'id' or 'job_id'")
    status = data.get("status")
    # The run-a-job tutorial's answer has no status at all: a new job is queued.
    job_status = JobStatus.QUEUED if status is None else JobStatus(status)
    app_id = data.get("app_id")
    return Job(
        id=job_id,
        status=job_status,
        app_id=app_id if isinstance(app_id, str) else None,
        input=data["input"] if "input" in data else data.get("request"),
        result=data.get("result"),
        created_at=parse_timestamp(data.get("created_at")),
        execution_time=parse_number(data.get("execution_time")),
        error=_as_text(data.get("error") or data.get("error_message")),
    )


def _structure_app(data: Any, cls: type) -> App:
    if not isinstance(data, dict):
        raise TypeError(f"expected a JSON object, got {type(data).__name__}")
    # The create-app page says team_id/user_id; every other page owner_team_id/owner_user_id.
    if "owner_team_id" not in data and "team_id" in data:
        data = {**data, "owner_team_id": data["team_id"]}
    if "owner_user_id" not in data and "user_id" in data:
        data = {**data, "owner_user_id": data["user_id"]}
    for key in ("configuration", "workflow"):
        if key in data and data[key] is None:
            data = {k: v for k, v in data.items() if k != key}
    return _structure_app_fields(data, cls)


def _structure_datetime(value: Any, _: type) -> datetime | None:
    return parse_timestamp(value)


_converter.register_structure_hook(datetime, _structure_datetime)
_converter.register_structure_hook(
    Lora,
    make_dict_structure_fn(
        Lora,
        _converter,
        version_id=override(rename="versionId"),
        download_url=override(rename="downloadUrl"),
    ),
)
_converter.register_unstructure_hook(
    Lora,
    make_dict_unstructure_fn(
        Lora,
        _converter,
        version_id=override(rename="versionId"),
        download_url=override(rename="downloadUrl"),
    ),
)
_converter.register_structure_hook(Job, _structure_job)
# Generated after the hooks above, which it captures for the nested fields.
_structure_app_fields = make_dict_structure_fn(App, _converter)
_converter.register_structure_hook(App, _structure_app)


def structure(data: object, cls: type[T]) -> T:
    """Turn decoded JSON into *cls*, or raise ResponseValidationError."""
    try:
        return _converter.structure(data, cls)
    except (BaseValidationError, TypeError, ValueError, KeyError) as exc:
        detail = "; ".join(transform_error(exc)) if isinstance(exc, BaseValidationError) else exc
        raise ResponseValidationError(
            f"the API's answer does not fit {cls.__name__}: {detail}"
        ) from exc


def structure_job(data: object, app_id: str, input: object = None) -> Job:
    """Structure a job body, filling in *app_id* (and *input*) when the body leaves them out."""
    job = structure(data, Job)
    # Cheaper than attrs.evolve on the hot path; the instance is not shared yet.
    if job.app_id is None:
        object.__setattr__(job, "app_id", app_id)
    if job.input is None and input is not None:
        object.__setattr__(job, "input", input)
    return job


def structure_list(data: object, cls: type[T]) -> list[T]:
    """Turn a decoded JSON array into a list of *cls*."""
    if not isinstance(data, list):
        raise ResponseValidationError(
            f"the API's answer does not fit list[{cls.__name__}]: got {type(data).__name__}"
        )
    return [structure(item, cls) for item in data]


def lora_to_json(lora: Lora) -> dict[str, Any]:
    """Unstructure a LoRA to its wire form (``versionId``, ``downloadUrl``)."""
    return _converter.unstructure(lora)  # type: ignore[no-any-return]
