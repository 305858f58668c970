"""Leaving a batch early: cancels that work, or say exactly what they left running."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from rungen_async import BatchResult, OutcomeKind, RetryPolicy, journal_items
from rungen_async.testing import FakeRunGen

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5)


def prompts(count: int, **extra: Any) -> Iterator[dict[str, Any]]:
    return ({"prompt": f"prompt {i}", **extra} for i in range(count))


@pytest.fixture
def no_user_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RUNGEN_USER_ID", raising=False)


@pytest.mark.usefixtures("no_user_id")
async def test_cancel_scope_without_user_id_warns_and_names_the_jobs_left_running(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """
    The issue's measurement: a 200-job batch left through a cancel scope with no user id.

    It warns at the start that cancels will fail, and on the way out lists all 200 ids
    as left running (none as cancelled), with the API's reason and how to cancel later.
    """
    fake = FakeRunGen(job_duration=1000, idempotency_keys=False)
    app_id = fake.create_app(active_workers=64)
    journal = tmp_path / "j.jsonl"
    caplog.set_level(logging.WARNING, logger="rungen_async")
    async with fake.client(retry=FAST_RETRY, user_id=None) as rg:
        assert rg.user_id is None
        with anyio.CancelScope() as scope:
            async with rg.batch(app_id, prompts(200), journal=str(journal)) as batch:
                assert "no user id is configured" in caplog.text  # said at the start
                while batch.stats.submitted < 200:
                    await rg.clock.sleep(0.1)
                await rg.clock.sleep(3)
                scope.cancel()
                async for _ in batch:
                    pass

    assert batch.cancelled_job_ids == []
    assert len(batch.left_running_job_ids) == 200
    assert {fake.job_status(job_id) for job_id in batch.left_running_job_ids} <= {
        "RUNNING",
        "QUEUED",
    }
    assert len(batch.cancel_errors) == 200
    assert all("User-Id" in str(error) for error in batch.cancel_errors.values())
    assert "left 200 job(s) running" in caplog.text
    assert f"rungen jobs cancel --journal {journal}" in caplog.text
    assert fake.api_key not in caplog.text
    # The journal names them too, for a later cancel.
    running = {item.job_id for item in journal_items(journal) if item.state == "submitted"}
    assert running == set(batch.left_running_job_ids)
    outcomes = batch.unfinished
    assert {o.kind for o in outcomes} == {OutcomeKind.TIMED_OUT}
    assert all("it may still be running" in str(o.error) for o in outcomes)


@pytest.mark.usefixtures("no_user_id")
async def test_an_exception_leaving_a_batch_carries_the_ids_left_running() -> None:
    """An exception out of the block gets a note with the ids of the jobs left running."""
    fake = FakeRunGen(job_duration=1000)
    app_id = fake.create_app(active_workers=8)

    class Stop(Exception):
        pass

    async with fake.client(retry=FAST_RETRY, user_id=None) as rg:
        caught: list[BaseException] = []
        try:
            async with rg.batch(app_id, prompts(3)) as batch:
                while batch.stats.submitted < 3:
                    await rg.clock.sleep(0.1)
                raise Stop
        except* Stop as group:
            caught.extend(group.exceptions)

    assert len(batch.left_running_job_ids) == 3
    (stop,) = caught
    note = "\n".join(stop.__notes__)
    assert "3 job(s) left running" in note
    assert all(job_id in note for job_id in batch.left_running_job_ids)


async def test_no_warning_when_a_user_id_is_configured(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With a user id the cancels go through, and nothing warns."""
    fake = FakeRunGen(job_duration=1000)
    app_id = fake.create_app(active_workers=8)
    caplog.set_level(logging.WARNING, logger="rungen_async")
    async with fake.client(retry=FAST_RETRY) as rg:
        with anyio.CancelScope() as scope:
            async with rg.batch(app_id, prompts(4)) as batch:
                while batch.stats.submitted < 4:
                    await rg.clock.sleep(0.1)
                scope.cancel()

    assert len(batch.cancelled_job_ids) == 4
    assert batch.left_running_job_ids == []
    assert {fake.job_status(job_id) for job_id in batch.cancelled_job_ids} == {"CANCELED"}
    assert caplog.text == ""


async def test_jobs_that_finished_before_their_cancel_are_not_listed_as_cancelled() -> None:
    """A cancel answered 409 (already finished) is reported as such, not as cancelled."""
    fake = FakeRunGen(job_duration=1000)
    app_id = fake.create_app(active_workers=8)
    async with fake.client(retry=FAST_RETRY) as rg, rg.batch(app_id, prompts(3)) as batch:
        while batch.stats.submitted < 3:
            await rg.clock.sleep(0.1)
        finished = batch.cancelled_job_ids  # (empty) the list the engine appends to
        fake.fail_next_requests(409, count=1, route="PUT /app/*/job/*")

    assert finished == batch.cancelled_job_ids
    assert len(batch.already_finished_job_ids) == 1
    assert len(batch.cancelled_job_ids) == 2
    assert not set(batch.already_finished_job_ids) & set(batch.cancelled_job_ids)


async def test_run_batch_result_reports_cancel_outcomes() -> None:
    """`BatchResult` carries cancelled, left-running and already-finished ids, and a short repr."""
    fake = FakeRunGen(job_duration=1000)
    app_id = fake.create_app(active_workers=8)
    async with fake.client(retry=FAST_RETRY) as rg:
        result: BatchResult = await rg.run_batch(app_id, prompts(2), deadline=30)

    assert len(result.cancelled_job_ids) == 2
    assert result.left_running_job_ids == ()
    assert result.already_finished_job_ids == ()
    text = repr(result)
    assert text.startswith("<BatchResult 2 outcomes")
    assert len(text) < 120
    assert "prompt" not in text


async def test_typo_in_a_batch_option_fails_at_call_time() -> None:
    """Options are typed keywords: a misspelt one is a TypeError before anything is sent."""
    fake = FakeRunGen()
    app_id = fake.create_app()
    async with fake.client() as rg:
        with pytest.raises(TypeError, match="max_concurency"):
            await rg.run_batch(app_id, [], max_concurency=4)  # type: ignore[call-arg]
    assert fake.jobs_created == 0


async def test_submits_in_flight_at_a_cancel_are_awaited_and_their_jobs_cancelled() -> None:
    """
    Submits already sent when the batch is cancelled are shielded: their jobs are known,
    cancelled and reported, none is left running unrecorded (API as documented: no keys).
    """
    fake = FakeRunGen(job_duration=1000, idempotency_keys=False)
    app_id = fake.create_app(active_workers=8)
    fake.slow_next_requests(5, count=4, route="POST /app/*/run_async")
    async with fake.client(retry=FAST_RETRY) as rg:
        with anyio.CancelScope() as scope:
            async with rg.batch(app_id, prompts(4), max_concurrency=4) as batch:
                while len(fake.requests_to("POST", "/app/*/run_async")) < 4:
                    await anyio.lowlevel.checkpoint()
                assert batch.stats.submitted == 0  # all four still in flight
                scope.cancel()
                async for _ in batch:
                    pass

    assert fake.jobs_created == 4
    assert len(batch.cancelled_job_ids) == 4
    assert batch.left_running_job_ids == []
    assert {fake.job_status(job_id) for job_id in batch.cancelled_job_ids} == {"CANCELED"}
