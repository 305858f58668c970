"""
The API's objects as frozen attrs classes, and its enumerations.

The API's lists of statuses and tiers are open: a value the docs don't list becomes a
pseudo-member that keeps the server's spelling (``JobStatus("PAUSED").value == "PAUSED"``)
and classifies as neither terminal nor failed, so a new status never breaks a client.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any, Self

from attrs import field, frozen

from . import _display


class _OpenStrEnum(enum.StrEnum):
    """A StrEnum that keeps unknown values as pseudo-members instead of failing."""

    @classmethod
    def _missing_(cls, value: object) -> Self | None:
        if not isinstance(value, str):
            return None
        alias = cls._aliases().get(value.upper())
        if alias is not None:
            return cls(alias)
        member = str.__new__(cls, value)
        member._name_ = value
        member._value_ = value
        # Cache it, so the same unknown value is the same object (``is`` keeps working).
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {}

    @property
    def is_known(self) -> bool:
        """Whether the docs list this value (False for a value the API added since)."""
        return self._name_ in type(self).__members__


class GpuTier(_OpenStrEnum):
    """``configuration.gpu_tier``: the GPU class an app runs on."""

    BASIC = "BASIC"
    STANDARD = "STANDARD"
    PERFORMANCE = "PERFORMANCE"


class AppStatus(_OpenStrEnum):
    """An app's ``status``; only these three are documented."""

    STOPPED = "STOPPED"
    INITIALIZING = "INITIALIZING"
    RUNNING = "RUNNING"

    @property
    def is_ready(self) -> bool:
        """Whether the app takes jobs now."""
        return self is AppStatus.RUNNING

    @property
    def is_failed(self) -> bool:
        """Whether the status names a failure (none is documented; a guess on the spelling)."""
        return any(word in self.value.upper() for word in ("FAIL", "ERROR", "UNHEALTHY"))


class JobStatus(_OpenStrEnum):
    """
    A job's ``status``.

    The docs spell the same states more than one way; each spelling is normalised when it is
    parsed, and the second names are real enum aliases: ``JobStatus("IN_QUEUE") is
    JobStatus.QUEUED``, ``JobStatus.IN_QUEUE is JobStatus.QUEUED`` (so they compare equal),
    ``IN_PROGRESS`` is `RUNNING` and ``CANCELLED`` is `CANCELED`. ``.value`` is the
    canonical spelling (``"QUEUED"``), not necessarily the server's.
    """

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    # Aliases (same value, so the same member): the docs' other spellings.
    IN_QUEUE = "QUEUED"
    IN_PROGRESS = "RUNNING"
    CANCELLED = "CANCELED"

    @classmethod
    def _aliases(cls) -> dict[str, str]:
        return {"CANCELLED": "CANCELED", "IN_QUEUE": "QUEUED", "IN_PROGRESS": "RUNNING"}

    @property
    def is_terminal(self) -> bool:
        """Whether the job is finished for good: COMPLETED, FAILED or CANCELED."""
        return self in _TERMINAL

    @property
    def is_pending(self) -> bool:
        """Whether the job waits for a worker: QUEUED or IN_QUEUE."""
        return self is JobStatus.QUEUED

    @property
    def is_active(self) -> bool:
        """Whether a worker runs the job: RUNNING or IN_PROGRESS."""
        return self is JobStatus.RUNNING

    @property
    def is_success(self) -> bool:
        """Whether the job COMPLETED."""
        return self is JobStatus.COMPLETED


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})


@frozen(kw_only=True)
class Lora:
    """
    A LoRA adapter of an app's workflow.

    All five fields are needed to create an app or change a weight; the API echoes back only
    ``id``, ``name`` and ``weight``, so *version_id* and *download_url* may be None on reads.
    On the wire they are ``versionId`` and ``downloadUrl``.
    """

    id: str
    name: str
    weight: float
    version_id: str | None = None
    download_url: str | None = None


@frozen(kw_only=True)
class Tools:
    """``workflow.tools``: extra tools loaded with the model."""

    loras: tuple[Lora, ...] = ()


@frozen(kw_only=True)
class Workflow:
    """``workflow``: what an app runs."""

    model_url: str | None = None
    tools: Tools = field(factory=Tools)


@frozen(kw_only=True)
class AppConfiguration:
    """``configuration``: how an app runs; every field may be absent or null on reads."""

    gpu_tier: GpuTier | None = None
    active_workers: int | None = None
    location: str | None = None


@frozen(kw_only=True)
class JobCounters:
    """An app's ``jobs`` counters: hints, not guaranteed to add up."""

    completed: int = 0
    failed: int = 0
    in_progress: int = 0
    in_queue: int = 0
    retried: int = 0


@frozen(kw_only=True)
class WorkerCounters:
    """An app's ``workers``: how many workers are in each state."""

    idle: int = 0
    initializing: int = 0
    ready: int = 0
    running: int = 0
    throttled: int = 0
    unhealthy: int = 0


@frozen(kw_only=True, repr=False)
class App:
    """
    A snapshot of an app; fetch it again to see it change.

    Which fields are present depends on the endpoint (the create page omits ``status`` and the
    timestamps, only reads carry ``jobs`` and ``workers``), so all but ``id`` are optional.
    """

    id: str
    name: str | None = None
    description: str | None = None
    status: AppStatus | None = None
    configuration: AppConfiguration = field(factory=AppConfiguration)
    workflow: Workflow = field(factory=Workflow)
    owner_team_id: str | None = None
    owner_user_id: str | None = None
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    jobs: JobCounters | None = None
    workers: WorkerCounters | None = None

    def __repr__(self) -> str:
        return _display.app_repr(self)


@frozen(kw_only=True, repr=False)
class Job:
    """
    A snapshot of a job; fetch it again to see it move on.

    *input* is what was submitted (``input`` or ``request`` on the wire), *result* the
    model's output (for image models ``{"images": [{"image": URL}]}``), *execution_time* the
    API's number as a float (its unit is not documented), *error* the reason of a failure
    when the API gives one.
    """

    id: str
    status: JobStatus
    app_id: str | None = None
    input: Any = None
    result: Any = None
    created_at: datetime | None = None
    execution_time: float | None = None
    error: str | None = None

    @property
    def image_urls(self) -> list[str]:
        """The output image URLs of an image model's result (empty for other results)."""
        images = self.result.get("images") if isinstance(self.result, dict) else None
        if not isinstance(images, list):
            return []
        return [
            item["image"]
            for item in images
            if isinstance(item, dict) and isinstance(item.get("image"), str)
        ]

    def __repr__(self) -> str:
        return _display.job_repr(self)

    def _repr_html_(self) -> str:
        """Status, timings and output images inline in a notebook (no network fetch)."""
        return _display.job_html(self)
