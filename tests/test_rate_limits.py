"""
429 pacing in the client, on a fake API and a virtual clock (nothing sleeps for real).

The refused request waits its Retry-After; a pause for other requests comes only when most
recent answers of the same kind were 429s, never longer than the largest Retry-After, and
never for other kinds of call or other teams. No call waits past max_rate_limit_wait.
"""

from __future__ import annotations

import anyio
import pytest

from rungen_async import RateLimitError, RetryPolicy
from rungen_async.testing import FakeRunGen

SUBMIT = "POST /app/*/run_async"


@pytest.fixture
def fake() -> FakeRunGen:
    """A fake API with jobs that take 5 s."""
    return FakeRunGen(job_duration=5)


def times(fake: FakeRunGen, method: str, path: str) -> list[float]:
    return [request.time for request in fake.requests_to(method, path)]


async def test_the_refused_request_waits_its_retry_after_in_full(fake: FakeRunGen) -> None:
    """A submit answered 429 with Retry-After: 3 is sent again 3 s later, not sooner."""
    app_id = fake.create_app()
    fake.fail_next_requests(429, route=SUBMIT, retry_after=3)

    async with fake.client() as rg:
        await rg.submit_job(app_id, {"prompt": "x"})

    assert times(fake, "POST", "/app/*/run_async") == [0.0, 3.0]


async def test_get_app_is_not_delayed_by_a_submits_429(fake: FakeRunGen) -> None:
    """While a refused submit waits, get_app, status polls and other submits go out at once."""
    app_id = fake.create_app()
    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "first"})
        fake.fail_next_requests(429, route=SUBMIT, retry_after=10)

        async with anyio.create_task_group() as tg:
            tg.start_soon(rg.submit_job, app_id, {"prompt": "refused"})
            await rg.clock.sleep(1)
            await rg.get_app(app_id)
            await rg.get_job(app_id, job.id)
            await rg.submit_job(app_id, {"prompt": "another"})

    assert times(fake, "GET", f"/app/{app_id}") == [1.0]
    assert times(fake, "GET", f"/app/{app_id}/job/*") == [1.0]
    assert times(fake, "POST", "/app/*/run_async") == [0.0, 0.0, 1.0, 10.0]


async def test_one_429_pauses_no_other_call(fake: FakeRunGen) -> None:
    """After a single 429 the next submit of another caller is sent at once."""
    app_id = fake.create_app()
    fake.fail_next_requests(429, route=SUBMIT, retry_after=5)

    async with fake.client() as rg, anyio.create_task_group() as tg:
        tg.start_soon(rg.submit_job, app_id, {"prompt": "refused"})
        await rg.clock.sleep(1)
        await rg.submit_job(app_id, {"prompt": "next"})

    assert times(fake, "POST", "/app/*/run_async") == [0.0, 1.0, 5.0]


async def test_429s_in_a_row_pause_that_kind_of_call_only(fake: FakeRunGen) -> None:
    """Three refused submits in a row pause later submits up to the Retry-After, nothing else."""
    app_id = fake.create_app()
    team_app = fake.create_app(team_id=fake.team_id)
    fake.fail_next_requests(429, count=3, route=SUBMIT, retry_after=2)

    async with fake.client() as rg, anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(rg.submit_job, app_id, {"prompt": f"refused {n}"})
        await rg.clock.sleep(0.5)
        await rg.get_app(app_id)
        await rg.with_team(fake.team_id).submit_job(team_app, {"prompt": "other team"})
        await rg.submit_job(app_id, {"prompt": "paused"})

    posts = fake.requests_to("POST", "/app/*/run_async")
    assert [p.time for p in posts[:3]] == [0.0, 0.0, 0.0]
    assert times(fake, "GET", f"/app/{app_id}") == [0.5]
    team_post = next(p for p in posts if team_app in p.path)
    assert team_post.time == 0.5
    # The paused submit went out when the pause (the largest Retry-After, 2 s) ended.
    assert sorted(p.time for p in posts[3:] if team_app not in p.path) == [2.0, 2.0, 2.0, 2.0]


async def test_mostly_refused_answers_pause_even_without_a_streak(fake: FakeRunGen) -> None:
    """7 of the last 10 submits refused, never 3 in a row: the next submit waits the pause."""
    app_id = fake.create_app()
    pattern = [True, True, False, True, True, False, True, True, False, True]

    async with fake.client(retry=RetryPolicy.disabled()) as rg:
        for refused in pattern:
            if refused:
                fake.fail_next_requests(429, route=SUBMIT, retry_after=1)
            try:
                await rg.submit_job(app_id, {"prompt": "x"})
            except RateLimitError:
                assert refused
        await rg.submit_job(app_id, {"prompt": "after"})

    assert times(fake, "POST", "/app/*/run_async") == [0.0] * 10 + [1.0]


async def test_the_pause_is_never_longer_than_the_largest_retry_after(fake: FakeRunGen) -> None:
    """Refusals with Retry-After 1, 4 and 2 pause the next submit for 4 s, not their sum."""
    app_id = fake.create_app()

    async with fake.client(retry=RetryPolicy.disabled()) as rg:
        for retry_after in (1, 4, 2):
            fake.fail_next_requests(429, route=SUBMIT, retry_after=retry_after)
            with pytest.raises(RateLimitError):
                await rg.submit_job(app_id, {"prompt": "x"})
        await rg.submit_job(app_id, {"prompt": "after"})

    assert times(fake, "POST", "/app/*/run_async") == [0.0, 0.0, 0.0, 4.0]


async def test_a_server_that_always_refuses_ends_the_call_within_max_rate_limit_wait(
    fake: FakeRunGen,
) -> None:
    """However many attempts are allowed, the call raises RateLimitError by the budget."""
    app_id = fake.create_app()
    fake.fail_next_requests(429, count=10_000, retry_after=1)
    policy = RetryPolicy(max_attempts=10_000, max_rate_limit_wait=10)

    async with fake.client(retry=policy) as rg:
        with pytest.raises(RateLimitError, match="max_rate_limit_wait") as caught:
            await rg.submit_job(app_id, {"prompt": "x"})

    assert rg.clock.now() <= 10
    assert caught.value.retry_after == 1
    assert len(fake.requests) == 11


async def test_the_default_budget_is_60_seconds(fake: FakeRunGen) -> None:
    """With the defaults a call never waits more than 60 s for rate limits in all."""
    fake.fail_next_requests(429, count=10_000, retry_after=30)

    async with fake.client() as rg:
        with pytest.raises(RateLimitError):
            await rg.list_apps()

    assert RetryPolicy().max_rate_limit_wait == 60
    assert rg.clock.now() == 60


async def test_a_retry_after_over_max_retry_after_is_raised_at_once(fake: FakeRunGen) -> None:
    """A 429 asking for longer than max_retry_after is not waited out short: it is raised."""
    fake.fail_next_requests(429, retry_after=120)

    async with fake.client() as rg:
        with pytest.raises(RateLimitError, match="max_retry_after") as caught:
            await rg.list_apps()

    assert caught.value.retry_after == 120
    assert rg.clock.now() == 0


async def test_listeners_hear_every_429_with_its_retry_after(fake: FakeRunGen) -> None:
    """add_rate_limit_listener() is told of each refusal, as the batch's AIMD needs."""
    heard: list[float | None] = []
    fake.fail_next_requests(429, count=2, retry_after=1)

    async with fake.client() as rg:
        remove = rg.add_rate_limit_listener(heard.append)
        await rg.list_apps()
        remove()

    assert heard == [1.0, 1.0]
    assert rg.retry_count == 2
