"""
The batch's poll budget: fixed by default; with *max_poll_rate* it grows while it holds
checks back and the API refuses none, and halves on a 429 of a status check.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from rungen_async import BatchStats, InvalidInputError, RetryPolicy
from rungen_async._batch._budget import PollBudget
from rungen_async.testing import FakeRunGen

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5)


def prompts(count: int, **extra: Any) -> Iterator[dict[str, Any]]:
    return ({"prompt": f"prompt {i}", **extra} for i in range(count))


def test_a_fixed_budget_never_moves() -> None:
    budget = PollBudget(50.0)
    for second in range(10):
        assert not budget.bound(float(second))
        assert not budget.throttled(float(second) + 0.5)
    assert budget.rate == 50.0
    assert not budget.adaptive


def test_the_token_bucket_lets_rate_checks_a_second_through() -> None:
    budget = PollBudget(10.0)
    sent, now = 0, 0.0
    while now < 10.0:
        while budget.ready(now):
            budget.spend()
            sent += 1
        now += budget.wait()
    assert 99 <= sent <= 102  # 10 s at 10/s, plus the first token


def test_an_adaptive_budget_doubles_each_quarter_second_while_it_binds_up_to_its_cap() -> None:
    budget = PollBudget(10.0, max_rate=100.0)
    rates = []
    for tick in range(12):  # bound every eighth of a second
        budget.bound(tick / 8)
        rates.append(budget.rate)
    assert rates[:3] == [10.0, 10.0, 20.0]  # the first sign of binding starts the clock
    assert rates[4] == 40.0
    assert rates[6] == 80.0
    assert max(rates) == 100.0
    assert rates[-1] == 100.0


def test_a_burst_of_429s_halves_it_once_and_growth_turns_additive() -> None:
    budget = PollBudget(100.0, max_rate=1000.0)
    for second in range(4):
        budget.bound(float(second))
    assert budget.rate == 800.0
    assert budget.throttled(5.0)
    for moment in (5.1, 5.2, 5.9):  # the same overload: no second cut
        assert not budget.throttled(moment)
    assert budget.rate == 400.0
    assert not budget.bound(6.5)  # a step after the last 429 first
    assert budget.bound(7.0)
    assert budget.rate == 410.0  # then a tenth of the starting rate a second
    assert budget.throttled(7.5)
    assert budget.rate == 205.0


def test_429s_never_take_it_below_one_check_a_second() -> None:
    budget = PollBudget(4.0, max_rate=8.0)
    for second in range(10):
        budget.throttled(float(second))
    assert budget.rate == 1.0


async def test_a_bound_batch_grows_its_budget_and_finishes_sooner() -> None:
    """
    600 jobs of 5 s with a budget of 20 checks/s: fixed, the checks trail the finishes;
    with max_poll_rate the budget grows (no 429s here) and the batch ends sooner.
    """

    async def run(max_poll_rate: float | None) -> tuple[float, float, float]:
        fake = FakeRunGen(job_duration=5.0)
        fake.emulator.api.max_workers = 600
        app_id = fake.create_app(active_workers=600)
        async with fake.client(retry=FAST_RETRY) as rg:
            started = rg.clock.now()
            result = await rg.run_batch(
                app_id,
                prompts(600),
                max_in_flight=600,
                poll_rate=20.0,
                max_poll_rate=max_poll_rate,
            )
            assert result.ok
            assert len(result.outcomes) == 600
            stats = result.stats
            return rg.clock.now() - started, stats.poll_rate, stats.poll_budget_bound_seconds

    fixed_elapsed, fixed_rate, fixed_bound = await run(None)
    grown_elapsed, grown_rate, grown_bound = await run(2000.0)

    assert fixed_rate == 20.0
    assert fixed_bound > 0
    assert grown_rate > 20.0
    assert grown_elapsed < 0.75 * fixed_elapsed
    assert grown_bound < fixed_bound


async def test_429s_on_status_checks_halve_the_budget_and_lose_nothing() -> None:
    """
    Once the budget has grown, the API refuses the next 20 status checks with 429: the
    budget halves (seen in the stats between two outcomes), the refused checks come back
    after their Retry-After, and every job is reported once.
    """
    fake = FakeRunGen(job_duration=5.0)
    fake.emulator.api.max_workers = 400
    app_id = fake.create_app(active_workers=400)
    rates: list[float] = []  # the budget at each outcome since the 429s were armed

    def on_progress(stats: BatchStats) -> None:
        if not rates and stats.poll_rate > 50.0:  # it has grown: refuse what comes next
            fake.fail_next_requests(429, count=20, route="GET /app/*/job/*", retry_after=0.2)
        if rates or stats.poll_rate > 50.0:
            rates.append(stats.poll_rate)

    async with fake.client(retry=FAST_RETRY) as rg:
        result = await rg.run_batch(
            app_id,
            prompts(400),
            max_in_flight=400,
            poll_rate=50.0,
            max_poll_rate=5000.0,
            on_progress=on_progress,
        )
    assert result.ok
    assert len(result.outcomes) == 400
    assert len({job.id for job in result.jobs}) == 400  # one job per input, none twice
    assert result.stats.poll_errors == 20
    assert rates  # it grew, and the 429s were armed
    assert any(later < earlier for earlier, later in itertools.pairwise(rates))


@pytest.mark.parametrize("bad", [10.0, 0.0, -1.0])
async def test_max_poll_rate_below_poll_rate_is_refused_before_anything_is_sent(
    bad: float,
) -> None:
    fake = FakeRunGen()
    app_id = fake.create_app()
    async with fake.client() as rg:
        with pytest.raises(InvalidInputError, match="max_poll_rate must be >= poll_rate"):
            rg.batch(app_id, prompts(1), poll_rate=20.0, max_poll_rate=bad)
    assert fake.stats.requests == 0
