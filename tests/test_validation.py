"""Bad input is refused before anything is sent, with a message that says what to fix."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from rungen_async import AsyncRunGen

from . import payloads
from .conftest import API_KEY, BASE_URL

Call = Callable[[AsyncRunGen], Awaitable[Any]]
LORA = payloads.LORA_IN
URL = payloads.MODEL_URL


def _refuse(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"nothing should be sent, but {request.method} {request.url} was")


CASES = [
    pytest.param(
        lambda rg: rg.create_app("", gpu_tier="STANDARD", model_url=URL),
        "name is empty",
        id="empty-name",
    ),
    pytest.param(
        lambda rg: rg.create_app("x", gpu_tier="MEGA", model_url=URL),
        "BASIC, STANDARD, PERFORMANCE",
        id="unknown-tier",
    ),
    pytest.param(
        lambda rg: rg.create_app("x", gpu_tier="BASIC", model_url=" "), "model_url", id="blank-url"
    ),
    pytest.param(
        lambda rg: rg.create_app("x", gpu_tier="BASIC", model_url=URL, active_workers=-1),
        "active_workers must be >= 0",
        id="negative-workers",
    ),
    pytest.param(
        lambda rg: rg.create_app("x", gpu_tier="BASIC", model_url=URL, active_workers=1.5),
        "whole number",
        id="float-workers",
    ),
    pytest.param(
        lambda rg: rg.create_app(
            "x", gpu_tier="BASIC", model_url=URL, loras=[{"id": "1", "name": "n", "weight": 1}]
        ),
        "lacks versionId, downloadUrl",
        id="lora-missing",
    ),
    pytest.param(
        lambda rg: rg.create_app(
            "x", gpu_tier="BASIC", model_url=URL, loras=[{**LORA, "weight": "strong"}]
        ),
        "weight must be a finite number",
        id="lora-weight",
    ),
    pytest.param(
        lambda rg: rg.start_app("app_1", workers=0), "workers must be >= 1", id="start-zero"
    ),
    pytest.param(lambda rg: rg.start_app("app_1", workers=True), "whole number", id="start-bool"),
    pytest.param(lambda rg: rg.update_app("app_1"), "at least one", id="empty-update"),
    pytest.param(
        lambda rg: rg.submit_job("app_1", ["prompt"]),
        "input must be a JSON object",
        id="input-list",
    ),
    pytest.param(
        lambda rg: rg.submit_job("app_1", {"when": object()}),
        "not JSON-serialisable",
        id="input-object",
    ),
    pytest.param(
        lambda rg: rg.submit_job("app_1", {"x": float("nan")}),
        "not JSON-serialisable",
        id="input-nan",
    ),
    pytest.param(lambda rg: rg.get_job("", "job_1"), "app_id is empty", id="empty-app-id"),
    pytest.param(
        lambda rg: rg.get_job("app_1", "../../app"), "would change the URL path", id="dotdot"
    ),
    pytest.param(lambda rg: rg.get_app("a/b"), "would change the URL path", id="slash"),
    pytest.param(lambda rg: rg.get_app(".."), "may not be '.' or '..'", id="dotdot-alone"),
    pytest.param(lambda rg: rg.cancel_job("app_1", "job 1"), "not a valid id", id="space"),
    pytest.param(lambda rg: rg.delete_app(None), "must be a string id", id="none-id"),
    pytest.param(
        lambda rg: rg.submit_job("app_1", {"p": 1}, idempotency_key="k\r\nX-Evil: 1"),
        "sent as an HTTP header",
        id="key-line-break",
    ),
    pytest.param(
        lambda rg: rg.run_batch("app_1", [{"p": 1}], batch_id="b 1"),
        "batch_id must be at most 1024 visible ASCII",
        id="batch-id-space",
    ),
]


@pytest.mark.parametrize(("call", "message"), CASES)
async def test_bad_input_raises_before_sending(call: Call, message: str) -> None:
    """Each bad argument raises ValueError or TypeError and sends no request."""
    async with AsyncRunGen(
        API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(_refuse)
    ) as client:
        with pytest.raises((ValueError, TypeError), match=message):
            await call(client)


async def test_validation_errors_are_invalid_input_errors() -> None:
    """The SDK's own checks raise InvalidInputError, which a batch turns into REJECTED."""
    from rungen_async import InvalidInputError

    async with AsyncRunGen(
        API_KEY, base_url=BASE_URL, transport=httpx.MockTransport(_refuse)
    ) as client:
        with pytest.raises(InvalidInputError, match="app_id is empty"):
            await client.get_app("")
        with pytest.raises(InvalidInputError, match="JSON object"):
            await client.submit_job("app", ["not", "an", "object"])  # type: ignore[arg-type]
