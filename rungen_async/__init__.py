"""
rungen_async: the asyncio (and trio) Python SDK for the RunGen.AI serverless-GPU API.

    async with AsyncRunGen() as rg:          # $RUNGEN_API_KEY
        job = await rg.submit_job(app_id, {"prompt": "a lighthouse at dawn"})
"""

from __future__ import annotations

from ._batch._cohort import Cohort
from ._batch._engine import Batch
from ._batch._journal import JournalItem
from ._batch._lock import JournalLockedError
from ._batch._outcomes import (
    Ambiguous,
    BatchResult,
    BatchStats,
    Canceled,
    Completed,
    Failed,
    Outcome,
    OutcomeKind,
    Rejected,
    TimedOut,
)
from ._batch._scheduler import PollScheduler
from ._batch._status import JournalStatus, export_results, journal_items, read_journal
from ._client import AsyncRunGen
from ._clock import Clock, SystemClock, VirtualClock
from ._display import images_html
from ._download import DownloadError
from ._exceptions import (
    AmbiguousRequestError,
    APIConnectionError,
    APIProtocolError,
    APIStatusError,
    APITimeoutError,
    AppFailedError,
    AppTimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidInputError,
    JobFailedError,
    JobTimeoutError,
    NotFoundError,
    RateLimitError,
    ResponseTooLargeError,
    ResponseValidationError,
    RunGenError,
    ServerError,
    TLSVerificationError,
)
from ._http._aiohttp import AiohttpTransport
from ._http._pool import WireTransport
from ._http._retry import RetryPolicy
from ._http._select import AutoTransport
from ._models import (
    App,
    AppConfiguration,
    AppStatus,
    GpuTier,
    Job,
    JobCounters,
    JobStatus,
    Lora,
    Tools,
    WorkerCounters,
    Workflow,
)
from ._polling import PollPolicy
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIProtocolError",
    "APIStatusError",
    "APITimeoutError",
    "AiohttpTransport",
    "Ambiguous",
    "AmbiguousRequestError",
    "App",
    "AppConfiguration",
    "AppFailedError",
    "AppStatus",
    "AppTimeoutError",
    "AsyncRunGen",
    "AuthenticationError",
    "AutoTransport",
    "BadRequestError",
    "Batch",
    "BatchResult",
    "BatchStats",
    "Canceled",
    "Clock",
    "Cohort",
    "Completed",
    "ConflictError",
    "DownloadError",
    "Failed",
    "GpuTier",
    "InvalidInputError",
    "Job",
    "JobCounters",
    "JobFailedError",
    "JobStatus",
    "JobTimeoutError",
    "JournalItem",
    "JournalLockedError",
    "JournalStatus",
    "Lora",
    "NotFoundError",
    "Outcome",
    "OutcomeKind",
    "PollPolicy",
    "PollScheduler",
    "RateLimitError",
    "Rejected",
    "ResponseTooLargeError",
    "ResponseValidationError",
    "RetryPolicy",
    "RunGenError",
    "ServerError",
    "SystemClock",
    "TLSVerificationError",
    "TimedOut",
    "Tools",
    "VirtualClock",
    "WireTransport",
    "WorkerCounters",
    "Workflow",
    "__version__",
    "export_results",
    "images_html",
    "journal_items",
    "read_journal",
]
