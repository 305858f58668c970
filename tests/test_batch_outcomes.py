"""Outcomes that tell the truth: precise types, the server's messages, one retry budget."""

from __future__ import annotations

from typing import Any

import pytest

from rungen_async import (
    AmbiguousRequestError,
    BadRequestError,
    Completed,
    Failed,
    InvalidInputError,
    JobFailedError,
    Outcome,
    OutcomeKind,
    RateLimitError,
    RetryPolicy,
    TimedOut,
)
from rungen_async.testing import FakeRunGen

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5)


@pytest.fixture
def fake() -> FakeRunGen:
    return FakeRunGen(job_duration=5.0, idempotency_keys=False)


@pytest.fixture
def app_id(fake: FakeRunGen) -> str:
    return fake.create_app(active_workers=8)


def completed_job_ids(outcomes: tuple[Outcome, ...]) -> list[str]:
    # isinstance(Completed) makes `job` a Job, not Optional (mypy --strict checks this).
    return [outcome.job.id for outcome in outcomes if isinstance(outcome, Completed)]


async def test_a_failed_job_outcome_carries_the_jobs_error(fake: FakeRunGen, app_id: str) -> None:
    """A FAILED outcome's error has the job's own message (the README prints it)."""
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "ok"}, {"prompt": "x", "_fail": "NSFW"}])

    ok, failed = result.outcomes
    assert completed_job_ids(result.outcomes) == [ok.job_id]
    assert isinstance(failed, Failed)
    assert failed.kind is OutcomeKind.FAILED
    assert isinstance(failed.error, JobFailedError)
    assert "NSFW" in str(failed.error)
    assert result.jobs == [ok.job]


async def test_a_timed_out_outcome_says_what_happened(fake: FakeRunGen, app_id: str) -> None:
    """A job past its job_deadline is TIMED_OUT with an error naming the job and the deadline."""
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(
            app_id, [{"prompt": "slow", "_duration": 100}], job_deadline=10, cancel_timed_out=True
        )

    (outcome,) = result.outcomes
    assert isinstance(outcome, TimedOut)
    assert outcome.job_id is not None
    assert outcome.job_id in str(outcome.error)
    assert "job_deadline" in str(outcome.error)
    assert "cancelled" in str(outcome.error)
    assert fake.job_status(outcome.job_id) == "CANCELED"


async def test_an_unreadable_2xx_submit_answer_is_ambiguous(fake: FakeRunGen, app_id: str) -> None:
    """A 2xx the client cannot read may hide a created job: AMBIGUOUS with its key."""
    fake.fail_next_requests(200, route="POST /app/*/run_async")
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "x"}], batch_id="b1")

    (outcome,) = result.outcomes
    assert outcome.kind is OutcomeKind.AMBIGUOUS
    assert isinstance(outcome.error, AmbiguousRequestError)
    assert outcome.idempotency_key == "b1:0"
    assert "b1:0" in str(outcome.error)


async def test_a_rate_limited_submit_uses_the_clients_retry_budget_only(
    fake: FakeRunGen, app_id: str
) -> None:
    """A 429 that outlasts the client's retries is REJECTED; the batch adds no loop of its own."""
    fake.fail_next_requests(429, count=1000, route="POST /app/*/run_async", retry_after=0.01)
    policy = RetryPolicy(max_attempts=3, initial_delay=0.01, max_delay=0.05, max_retry_after=5)
    async with fake.client(retry=policy) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "x"}])

    (outcome,) = result.outcomes
    assert outcome.kind is OutcomeKind.REJECTED
    assert isinstance(outcome.error, RateLimitError)
    assert len(fake.requests_to("POST", "/app/*/run_async")) == 3


async def test_a_refused_submit_carries_the_status_and_body(fake: FakeRunGen, app_id: str) -> None:
    """A 400 is REJECTED with the API's status and message."""
    fake.fail_next_requests(400, route="POST /app/*/run_async")
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "x"}])

    (outcome,) = result.outcomes
    assert outcome.kind is OutcomeKind.REJECTED
    assert isinstance(outcome.error, BadRequestError)
    assert "400" in str(outcome.error)


async def test_invalid_input_is_rejected_before_anything_is_sent(
    fake: FakeRunGen, app_id: str
) -> None:
    """The SDK's own validation (InvalidInputError) makes a REJECTED outcome, no request."""
    inputs: list[Any] = [["not", "an", "object"]]
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, inputs)

    (outcome,) = result.outcomes
    assert outcome.kind is OutcomeKind.REJECTED
    assert isinstance(outcome.error, InvalidInputError)
    assert fake.requests_to("POST", "/app/*/run_async") == []


async def test_a_one_item_batch_asks_for_the_app_once(fake: FakeRunGen, app_id: str) -> None:
    """App state is fetched once per batch, not once a tick (it was 21 GET /app for one item)."""
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "x"}])

    assert result.ok
    app_gets = [r for r in fake.requests if r.method == "GET" and r.path == f"/app/{app_id}"]
    assert len(app_gets) == 1


async def test_outcome_reprs_are_one_short_line(fake: FakeRunGen, app_id: str) -> None:
    """An outcome's repr names index, kind and job, never its input or key."""
    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(app_id, [{"prompt": "secret prompt"}], batch_id="k")

    (outcome,) = result.outcomes
    text = repr(outcome)
    assert text == f"<Completed #0 COMPLETED job={outcome.job_id!r}>"
    assert "secret" not in repr(result)
    assert "k:0" not in repr(result)


async def test_stats_say_when_the_poll_budget_binds(fake: FakeRunGen, app_id: str) -> None:
    """A budget too small for the jobs in flight shows in the stats; a roomy one does not."""
    seen: list[float] = []
    async with fake.client(retry=FAST_RETRY) as rg:
        tight = await rg.run_batch(
            app_id,
            [{"prompt": f"p{i}"} for i in range(8)],
            poll_rate=0.5,
            on_progress=lambda stats: seen.append(stats.poll_budget_bound_seconds),
        )
        roomy = await rg.run_batch(app_id, [{"prompt": "one"}], poll_rate=100)

    assert tight.ok
    assert tight.stats.poll_budget_binds
    assert tight.stats.poll_budget_bound_seconds > 1
    assert seen[-1] > 0  # the progress callback sees it too
    assert roomy.ok
    assert not roomy.stats.poll_budget_binds
