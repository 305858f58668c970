"""The batch engine against the in-process emulator on a virtual clock."""

from __future__ import annotations

import os
import tracemalloc
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from rungen_async import (
    AmbiguousRequestError,
    AsyncRunGen,
    JournalLockedError,
    OutcomeKind,
    PollScheduler,
    RetryPolicy,
    VirtualClock,
    journal_items,
)
from rungen_async.testing import FakeRunGen

FAST_RETRY = RetryPolicy(initial_delay=0.01, max_delay=0.05, max_retry_after=5)


@pytest.fixture
def fake() -> FakeRunGen:
    return FakeRunGen(job_duration=5.0)


@pytest.fixture
def app_id(fake: FakeRunGen) -> str:
    return fake.create_app(active_workers=64)


@pytest.fixture
async def rg(fake: FakeRunGen) -> AsyncIterator[AsyncRunGen]:
    async with fake.client(retry=FAST_RETRY) as client:
        yield client


def prompts(count: int, **extra: Any) -> Iterator[dict[str, Any]]:
    return ({"prompt": f"prompt {i}", **extra} for i in range(count))


async def test_run_batch_returns_outcomes_in_input_order(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """Every input gets one COMPLETED outcome, in input order, with its job and result."""
    inputs = [{"prompt": f"p{i}", "_duration": 6 - i} for i in range(5)]

    result = await rg.run_batch(app_id, inputs)

    assert [outcome.index for outcome in result.outcomes] == [0, 1, 2, 3, 4]
    assert [outcome.input for outcome in result.outcomes] == inputs
    assert result.ok
    assert all(o.job is not None and o.job.image_urls for o in result.outcomes)
    assert result.stats.completed == 5
    assert fake.jobs_created == 5


async def test_batch_yields_in_completion_order(rg: AsyncRunGen, app_id: str) -> None:
    """Iterating a batch gives outcomes as jobs finish: the shortest first."""
    inputs = [{"prompt": f"p{i}", "_duration": duration} for i, duration in enumerate([9, 3, 6])]

    async with rg.batch(app_id, inputs) as batch:
        order = [outcome.index async for outcome in batch]

    assert order == [1, 2, 0]


async def test_failures_of_each_kind_are_outcomes(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """FAILED, REJECTED, AMBIGUOUS and TIMED_OUT items are outcomes; the rest complete."""
    fake.fail_next_requests(400, route="POST /app/*/run_async")  # item 0: refused
    inputs: list[Any] = [
        {"prompt": "refused"},
        {"prompt": "fails", "_fail": "NSFW filter"},
        ["not", "an", "object"],
        {"prompt": "slow", "_duration": 500},
        {"prompt": "fine"},
    ]

    result = await rg.run_batch(app_id, inputs, max_concurrency=1, job_deadline=60)

    kinds = [outcome.kind for outcome in result.outcomes]
    assert kinds == [
        OutcomeKind.REJECTED,
        OutcomeKind.FAILED,
        OutcomeKind.REJECTED,
        OutcomeKind.TIMED_OUT,
        OutcomeKind.COMPLETED,
    ]
    failed = result.outcomes[1]
    assert failed.job is not None
    assert failed.job.error is not None
    assert "NSFW" in failed.job.error
    assert isinstance(result.outcomes[2].error, TypeError)
    assert not result.ok
    assert len(result.failures) == 4


async def test_ambiguous_submit_is_reported_with_its_key(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """A submit whose answer was lost is AMBIGUOUS and carries the idempotency key."""
    fake.fail_next_requests("drop_after", route="POST /app/*/run_async")

    result = await rg.run_batch(app_id, prompts(2), max_concurrency=1, batch_id="b1")

    first = result.outcomes[0]
    assert first.kind is OutcomeKind.AMBIGUOUS
    assert isinstance(first.error, AmbiguousRequestError)
    assert first.idempotency_key == "b1:0"
    assert result.outcomes[1].ok


async def test_ambiguous_submits_can_be_resent_safely(fake: FakeRunGen, app_id: str) -> None:
    """With retry_ambiguous_posts the lost answer is re-sent under its key: one job only."""
    fake.fail_next_requests("drop_after", route="POST /app/*/run_async")

    async with fake.client(
        retry=RetryPolicy(initial_delay=0.01, retry_ambiguous_posts=True)
    ) as client:
        result = await client.run_batch(app_id, prompts(3))

    assert result.ok
    assert fake.jobs_created == 3


async def test_idempotency_keys_derive_from_batch_id_and_index(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """Item i is submitted with key '<batch_id>:<i>', so a re-run re-sends the same keys."""
    await rg.run_batch(app_id, prompts(3), batch_id="nightly-7")

    keys = sorted(
        r.headers["idempotency-key"] for r in fake.requests_to("POST", "/app/*/run_async")
    )
    assert keys == ["nightly-7:0", "nightly-7:1", "nightly-7:2"]


async def test_rerun_with_the_same_batch_id_creates_no_new_jobs(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """The API deduplicates the re-sent keys: the same jobs come back."""
    first = await rg.run_batch(app_id, prompts(4), batch_id="same")
    second = await rg.run_batch(app_id, prompts(4), batch_id="same")

    assert [o.job_id for o in first.outcomes] == [o.job_id for o in second.outcomes]
    assert fake.jobs_created == 4


async def test_lazy_inputs_are_pulled_only_as_slots_free(rg: AsyncRunGen, app_id: str) -> None:
    """At most max_in_flight inputs are read ahead of finished outcomes."""
    pulled = 0
    finished = 0
    ahead: list[int] = []

    def inputs() -> Iterator[dict[str, Any]]:
        nonlocal pulled
        for i in range(40):
            pulled += 1
            ahead.append(pulled - finished)
            yield {"prompt": f"p{i}"}

    async with rg.batch(app_id, inputs(), max_in_flight=5) as batch:
        async for _ in batch:
            finished += 1

    assert finished == 40
    assert max(ahead) <= 6  # five in flight, plus the one being read


async def test_async_iterable_inputs(rg: AsyncRunGen, app_id: str) -> None:
    """Inputs may come from an async iterator."""

    async def inputs() -> AsyncIterator[dict[str, Any]]:
        for i in range(3):
            await anyio.lowlevel.checkpoint()
            yield {"prompt": f"p{i}"}

    result = await rg.run_batch(app_id, inputs())

    assert result.ok
    assert len(result.outcomes) == 3


def _stateless_api(request: httpx.Request) -> httpx.Response:
    # Keeps nothing between requests, so only the client's memory is measured.
    if request.method == "POST":
        key = request.headers["idempotency-key"]
        return httpx.Response(201, json={"job_id": f"job-{key}", "status": "QUEUED"})
    return httpx.Response(200, json={"data": {"id": "x", "status": "COMPLETED", "result": {}}})


async def test_memory_stays_flat_for_a_large_lazy_input() -> None:
    """Memory follows max_in_flight: 2,000 lazy inputs need no more than 200 do."""
    client = AsyncRunGen(
        "key",
        base_url="https://api.test",
        transport=httpx.MockTransport(_stateless_api),
        clock=VirtualClock(),
    )

    async def peak(count: int) -> int:
        tracemalloc.start()
        async with client.batch("app", prompts(count), max_in_flight=50) as batch:
            async for _ in batch:
                pass
        size = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return size

    async with client:
        await peak(50)  # warm caches (cattrs, httpx) before measuring
        small = await peak(200)
        large = await peak(2000)

    assert large < small * 1.25


async def test_one_poller_respects_the_poll_budget(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """Status requests never exceed poll_rate per second, whatever is in flight."""
    await rg.run_batch(app_id, prompts(200, _duration=2), poll_rate=20, max_in_flight=200)

    times = sorted(r.time for r in fake.requests_to("GET", "/app/*/job/*"))
    windows: dict[int, int] = {}
    for time in times:
        windows[int(time)] = windows.get(int(time), 0) + 1
    assert times
    assert max(windows.values()) <= 20 + 2  # the bucket's burst


async def test_polling_learns_run_times(rg: AsyncRunGen, app_id: str) -> None:
    """After a first wave the scheduler checks few times per job."""
    scheduler: PollScheduler[int] = PollScheduler()
    inputs = ({"prompt": f"p{i}", "_duration": 4 + (i * 7 % 20) / 10} for i in range(600))

    result = await rg.run_batch(
        app_id, inputs, max_in_flight=60, poll_rate=1000, scheduler=scheduler
    )

    assert result.ok
    assert len(scheduler.model) > 5
    # A poller checking every job once a second would need about 5 a job. On asyncio this
    # run is deterministic (2.54); trio shuffles its run queue on purpose, so the figure
    # moves between runs (2.45-2.89 in 40 runs, once 3.18 after other tests in the process).
    assert result.stats.status_requests / 600 < 3.5


async def test_a_first_wave_larger_than_a_chunk_is_placed_in_steps(fake: FakeRunGen) -> None:
    """
    A first wave of 2,500 jobs is placed over several poller steps (the event loop runs
    between them), and every job is still checked near its run time, not at a rare check.
    """

    class Spy(PollScheduler[int]):
        steps = 0

        def place(self, now: float) -> None:
            self.steps += 1
            super().place(now)

    fake.emulator.api.max_workers = 2500  # every job runs at once: one first wave
    app_id = fake.create_app(active_workers=2500)
    scheduler = Spy(sweep_threshold=None)
    async with fake.client(retry=FAST_RETRY) as rg:
        started = rg.clock.now()
        result = await rg.run_batch(
            app_id,
            prompts(2500, _duration=5),
            max_in_flight=2500,
            poll_rate=5000,
            scheduler=scheduler,
        )
        elapsed = rg.clock.now() - started

    assert result.ok
    assert len(result.outcomes) == 2500
    assert scheduler.steps >= 3  # 2,500 jobs: plan, time and push, a chunk at a time
    assert elapsed < 8.0  # 5 s jobs: seen done within the plan's delay, not at 30 s


async def test_rate_limit_halves_submit_concurrency(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """A 429 makes its submit wait Retry-After and halves the AIMD limit; successes regrow it."""
    fake.fail_next_requests(429, count=1, route="POST /app/*/run_async", retry_after=2)
    limits: list[tuple[float, int]] = []

    async with rg.batch(app_id, prompts(60), max_concurrency=8) as batch:
        halved: list[int] = []  # the limit just after the batch heard of the 429
        rg.add_rate_limit_listener(lambda _: halved.append(batch.stats.submit_concurrency))

        async def monitor() -> None:
            while True:
                limits.append((rg.clock.now(), batch.stats.submit_concurrency))
                await rg.clock.sleep(0.05)

        async with anyio.create_task_group() as tg:
            tg.start_soon(monitor)
            outcomes = [outcome async for outcome in batch]
            tg.cancel_scope.cancel()

    posts = fake.requests_to("POST", "/app/*/run_async")
    assert all(outcome.ok for outcome in outcomes)
    assert posts[0].status == 429
    key = posts[0].headers["idempotency-key"]
    resent = [r for r in posts[1:] if r.headers["idempotency-key"] == key]
    assert resent[0].time >= 2.0  # the refused submit waited its Retry-After in full
    assert min(r.time for r in posts[1:]) < 2.0  # one 429 freezes no other submit
    assert halved == [4]
    assert limits[-1][1] == 8
    assert batch.stats.retries >= 1


async def test_leaving_early_cancels_remote_jobs(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """Breaking out stops submitting and cancels every job still in flight."""
    inputs = [{"prompt": "quick", "_duration": 1}] + [
        {"prompt": f"slow {i}", "_duration": 1000} for i in range(5)
    ]

    async with rg.batch(app_id, inputs) as batch:
        async for _ in batch:
            break

    assert len(batch.cancelled_job_ids) == 5
    assert batch.left_running_job_ids == []
    assert {fake.job_status(job_id) for job_id in batch.cancelled_job_ids} == {"CANCELED"}
    assert [o.kind for o in batch.unfinished] == [OutcomeKind.CANCELED] * 5


async def test_leaving_early_can_leave_jobs_running(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """With cancel_on_exit=False the jobs keep running and are reported as left running."""
    inputs = [{"prompt": "quick", "_duration": 1}, {"prompt": "slow", "_duration": 1000}]

    async with rg.batch(app_id, inputs, cancel_on_exit=False) as batch:
        async for _ in batch:
            break

    (job_id,) = batch.left_running_job_ids
    assert fake.job_status(job_id) in ("RUNNING", "IN_PROGRESS")


async def test_cancel_scope_around_a_batch_cancels_remote_jobs(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """A caller's cancel scope stops the batch and cancels its jobs (shielded)."""
    with anyio.CancelScope() as scope:
        async with rg.batch(app_id, prompts(3, _duration=1000)) as batch:
            while batch.stats.submitted < 3:
                await rg.clock.sleep(0.1)
            scope.cancel()
            async for _ in batch:
                pass

    assert len(batch.cancelled_job_ids) == 3
    assert fake.stats.jobs_canceled == 3 if hasattr(fake.stats, "jobs_canceled") else True


async def test_batch_deadline_stops_and_reports(
    rg: AsyncRunGen, app_id: str, fake: FakeRunGen
) -> None:
    """A batch deadline ends the batch; unfinished jobs are cancelled and reported."""
    inputs = [{"prompt": "quick", "_duration": 1}, {"prompt": "slow", "_duration": 1000}]

    result = await rg.run_batch(app_id, inputs, deadline=30)

    assert [o.kind for o in result.outcomes] == [OutcomeKind.COMPLETED, OutcomeKind.CANCELED]
    assert len(result.cancelled_job_ids) == 1
    assert rg.clock.now() < 40


async def test_a_bug_in_a_callback_aborts_the_batch(rg: AsyncRunGen, app_id: str) -> None:
    """An exception from on_progress is a bug: it surfaces, in an exception group."""

    def broken(_: object) -> None:
        raise RuntimeError("bug in my callback")

    with pytest.raises(BaseExceptionGroup) as caught:
        await rg.run_batch(app_id, prompts(3), on_progress=broken)

    assert caught.group_contains(RuntimeError, match="bug in my callback")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("concurrency", {"max_concurrency": 0}, "max_concurrency"),
        ("in-flight", {"max_in_flight": 1.5}, "max_in_flight"),
        ("poll-rate", {"poll_rate": 0}, "poll_rate"),
        ("deadline", {"job_deadline": -1}, "job_deadline"),
    ],
)
async def test_bad_batch_options_are_refused_before_anything_runs(
    rg: AsyncRunGen, name: str, options: dict[str, Any], message: str
) -> None:
    """Nonsense knobs raise ValueError naming the option."""
    with pytest.raises(ValueError, match=message):
        rg.batch("app_1", [], **options)


async def test_journal_resume_skips_finished_and_reattaches(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """A second run with the same journal reports finished items and creates nothing new."""
    journal = str(tmp_path / "batch.journal")
    async with fake.client(retry=FAST_RETRY) as client:
        first = await client.run_batch(app_id, prompts(5), journal=journal)
        second = await client.run_batch(app_id, prompts(5), journal=journal)

    assert first.ok
    assert second.ok
    assert all(outcome.resumed for outcome in second.outcomes)
    assert [o.job_id for o in first.outcomes] == [o.job_id for o in second.outcomes]
    assert fake.jobs_created == 5
    for file in tmp_path.iterdir():  # noqa: ASYNC240 (the database, its WAL, its lock file)
        assert fake.api_key.encode() not in file.read_bytes()


async def test_journal_refuses_changed_inputs(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """Resuming with different inputs is refused with a clear error."""
    journal = tmp_path / "batch.journal"
    journal.write_text(
        f'{{"event":"batch","version":1,"batch_id":"b","app_id":"{app_id}"}}\n'
        '{"event":"submitting","i":0,"key":"b:0","digest":"0000"}\n'
    )
    async with fake.client(retry=FAST_RETRY) as client:
        with pytest.raises(BaseExceptionGroup) as caught:
            await client.run_batch(app_id, prompts(1), journal=str(journal))

    assert caught.group_contains(ValueError, match="differs from the one journaled")


class _Crash(BaseException):
    """Stands for the process dying: nothing after it runs."""


def _jobs_per_input(fake: FakeRunGen) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job in fake.emulator.api.jobs.values():
        prompt = str(job.input.get("prompt"))
        counts[prompt] = counts.get(prompt, 0) + 1
    return counts


async def _run_until_crash(
    fake: FakeRunGen, app_id: str, journal: str, count: int, crash_at: int
) -> bool:
    from rungen_async._batch import _journal

    writes = 0
    names = ("record_submitting", "record_submitted", "record_finished", "record_abandoned")
    originals = {name: getattr(_journal.Journal, name) for name in names}

    def crashing(name: str) -> Any:
        def write(self: _journal.Journal, *args: Any) -> None:
            nonlocal writes
            writes += 1
            if writes == crash_at:
                raise _Crash
            originals[name](self, *args)

        return write

    for name in names:
        setattr(_journal.Journal, name, crashing(name))
    try:
        async with fake.client(retry=FAST_RETRY) as client:
            await client.run_batch(
                app_id, prompts(count, _duration=3), journal=journal, cancel_on_exit=False
            )
    except BaseException as exc:  # the crash arrives wrapped in exception groups
        return "Crash" in repr(exc)
    finally:
        for name, original in originals.items():
            setattr(_journal.Journal, name, original)
    return False


@pytest.mark.parametrize("crash_at", range(1, 16))  # 3 writes per item
async def test_resume_after_a_crash_at_any_step_loses_nothing_and_bills_nothing_twice(
    app_id: str, tmp_path: Path, crash_at: int
) -> None:
    """Crash at every journal write of a 5-item batch against an API without idempotency.

    The re-run reports every input, creates no second job for any input, and reports the
    submits that were in flight AMBIGUOUS instead of sending them again.
    """
    fake = FakeRunGen(idempotency_keys=False)
    app_id = fake.create_app(active_workers=64)
    journal = str(tmp_path / "batch.journal")

    crashed = await _run_until_crash(fake, app_id, journal, 5, crash_at)
    async with fake.client(retry=FAST_RETRY) as client:
        result = await client.run_batch(app_id, prompts(5, _duration=3), journal=journal)

    assert crashed
    assert [o.index for o in result.outcomes] == [0, 1, 2, 3, 4]
    assert all(n == 1 for n in _jobs_per_input(fake).values())
    kinds = {o.kind for o in result.outcomes}
    assert kinds <= {OutcomeKind.COMPLETED, OutcomeKind.AMBIGUOUS}
    for outcome in result.outcomes:
        if outcome.kind is OutcomeKind.AMBIGUOUS:
            assert outcome.error is not None
            assert "resend_unconfirmed=True" in str(outcome.error)


async def test_resend_unconfirmed_sends_in_flight_submits_again_under_their_keys(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """resend_unconfirmed=True re-sends each never-confirmed submit with its original key."""
    journal = str(tmp_path / "batch.journal")
    crashed = await _run_until_crash(fake, app_id, journal, 5, crash_at=2)  # 0 sent, no id
    async with fake.client(retry=FAST_RETRY) as client:
        careful = await client.run_batch(app_id, prompts(5, _duration=3), journal=journal)
        resent = await client.run_batch(
            app_id, prompts(5, _duration=3), journal=journal, resend_unconfirmed=True
        )

    assert crashed
    assert careful.outcomes[0].kind is OutcomeKind.AMBIGUOUS
    assert resent.ok
    assert fake.jobs_created == 5  # the emulator honoured the key: the first job came back
    submits = fake.requests_to("POST", "/app/*/run_async")
    keys = [request.headers.get("idempotency-key") for request in submits]
    assert keys.count(keys[0]) == 2


async def test_a_second_run_on_a_held_journal_is_refused_before_sending(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """Two batches on one journal at once: the second is refused, naming the holder."""
    journal = str(tmp_path / "batch.journal")
    async with (
        fake.client(retry=FAST_RETRY) as client,
        client.batch(app_id, prompts(3, _duration=3), journal=journal) as first,
    ):
        before = len(fake.requests)
        with pytest.raises(JournalLockedError, match=f"process {os.getpid()}") as caught:
            async with client.batch(app_id, prompts(3, _duration=3), journal=journal):
                pass
        assert len(fake.requests) == before
        outcomes = [outcome async for outcome in first]

    assert "wait for that run to finish" in str(caught.value)
    assert "--resume" not in str(caught.value)
    assert len(outcomes) == 3
    assert fake.jobs_created == 3


async def test_resume_after_a_stop_resubmits_cancelled_items(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """Items cancelled by leaving early are submitted again (new key) by the next run."""
    journal = str(tmp_path / "batch.journal")
    inputs = [{"prompt": "quick", "_duration": 1}, {"prompt": "slow", "_duration": 50}]
    async with fake.client(retry=FAST_RETRY) as client:
        async with client.batch(app_id, inputs, journal=journal) as batch:
            async for _ in batch:
                break
        result = await client.run_batch(app_id, inputs, journal=journal)

    assert result.ok
    assert [o.resumed for o in result.outcomes] == [True, False]
    assert fake.jobs_created == 3  # the cancelled one, once more


async def test_resume_resolves_ambiguous_submits_without_duplicates(
    fake: FakeRunGen, app_id: str, tmp_path: Path
) -> None:
    """A lost submit answer is AMBIGUOUS, and stays so on resume unless resend_unconfirmed.

    Re-sent with its key, an API that honours keys (the emulator's default) returns that job.
    """
    journal = str(tmp_path / "batch.journal")
    fake.fail_next_requests("drop_after", route="POST /app/*/run_async")
    async with fake.client(retry=FAST_RETRY) as client:
        first = await client.run_batch(app_id, prompts(2), journal=journal, max_concurrency=1)
        careful = await client.run_batch(app_id, prompts(2), journal=journal)
        second = await client.run_batch(
            app_id, prompts(2), journal=journal, resend_unconfirmed=True
        )

    assert [o.kind for o in first.outcomes] == [OutcomeKind.AMBIGUOUS, OutcomeKind.COMPLETED]
    assert [o.kind for o in careful.outcomes] == [OutcomeKind.AMBIGUOUS, OutcomeKind.COMPLETED]
    assert second.ok
    assert fake.jobs_created == 2


class _HeldSubmits(httpx.AsyncBaseTransport):
    """Holds every submit's answer until *release*; *held* is set once *count* are waiting."""

    def __init__(self, inner: httpx.AsyncBaseTransport, count: int) -> None:
        self.inner, self.count = inner, count
        self.held, self.release = anyio.Event(), anyio.Event()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == "POST" and request.url.path.endswith("/run_async"):
            self.count -= 1
            if self.count == 0:
                self.held.set()
            await self.release.wait()
        return response


async def test_a_stop_awaits_submits_in_flight_and_cancels_their_jobs(
    tmp_path: Path,
) -> None:
    """Leaving a batch while submits are in flight: their answers are awaited (shielded),
    their job ids journaled, and the jobs cancelled: nothing is left running unrecorded."""
    fake = FakeRunGen(idempotency_keys=False)
    app_id = fake.create_app(active_workers=8)
    transport = _HeldSubmits(fake.transport, count=4)
    journal = tmp_path / "batch.journal"
    async with fake.client(retry=FAST_RETRY, transport=transport) as client:
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def stop_when_held() -> None:
                    await transport.held.wait()
                    scope.cancel()  # a Ctrl-C while 4 submits wait for their answers
                    transport.release.set()

                tg.start_soon(stop_when_held)
                async with client.batch(
                    app_id, prompts(20, _duration=30), journal=str(journal), max_concurrency=4
                ) as batch:
                    async for _ in batch:
                        pass

    created = list(fake.emulator.api.jobs.values())
    assert scope.cancelled_caught
    assert len(created) == 4
    assert sorted(batch.cancelled_job_ids) == sorted(job.id for job in created)
    assert all(job.state == "CANCELED" for job in created)
    items = list(journal_items(journal, which="all"))
    assert {item.job_id for item in items} == {job.id for job in created}
