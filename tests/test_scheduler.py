"""Invariants of the batch's poll scheduler and its check plan, by property-based tests."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rungen_async import PollScheduler
from rungen_async._batch import _cohort
from rungen_async._batch._cohort import PLACE_CHUNK
from rungen_async._batch._scheduler import (
    DurationModel,
    _DueHeap,
    _kaplan_meier,
    plan_checks,
)

durations = st.lists(
    st.floats(min_value=0.05, max_value=600, allow_nan=False), min_size=1, max_size=300
)


@given(
    samples=durations,
    target=st.floats(min_value=0.01, max_value=0.5),
    width=st.floats(min_value=0, max_value=5),
)
def test_plan_is_increasing_and_covers_the_slowest(
    samples: list[float], target: float, width: float
) -> None:
    """Check ages rise strictly, start at or after 0 and end past the slowest run time."""
    plan = plan_checks(samples, target, [width] * len(samples))

    assert plan
    assert list(plan) == sorted(set(plan))
    assert plan[0] >= 0
    assert plan[-1] >= max(samples)


def test_plan_from_few_samples_hedges_beyond_them() -> None:
    """Three samples say little: the plan keeps checking well past the slowest of them."""
    samples = [4.5, 5.0, 5.5]

    plan = plan_checks(samples, 0.08)

    assert plan[-1] > 6.0
    assert sum(1 for age in plan if age > 5.5) >= 2


def test_imprecise_samples_widen_the_plan() -> None:
    """A sample known only to within seconds spreads the checks wider than an exact one."""
    samples = [4.0 + i / 10 for i in range(21)]

    exact = plan_checks(samples, 0.08, [0.0] * 21)
    vague = plan_checks(samples, 0.08, [3.0] * 21)

    assert vague[-1] - vague[0] > exact[-1] - exact[0]


def test_plan_for_uniform_run_times_is_frugal() -> None:
    """For run times spread 4 to 6 s, the plan costs under 2 checks a job on those times."""
    samples = [4 + 2 * i / 499 for i in range(500)]

    plan = plan_checks(samples, 0.08)

    expected_checks = sum(
        1 + sum(1 for age in plan[:-1] if age < duration) for duration in samples
    ) / len(samples)
    delay = sum(min(a for a in plan if a >= d) - d for d in samples) / len(samples)
    assert expected_checks < 2.0
    assert delay / 5.0 <= 0.09


@given(values=st.lists(st.floats(min_value=0, max_value=100), min_size=1, max_size=2000))
def test_duration_model_keeps_only_recent_samples(values: list[float]) -> None:
    """The model never holds more than its capacity, and its range matches what it holds."""
    model = DurationModel(capacity=64)

    for value in values:
        model.add(value)

    kept = values[-64:]
    assert len(model) == len(kept)
    assert model.minimum == min(kept)
    assert model.maximum == max(kept)


events = st.lists(
    st.tuples(
        st.sampled_from(
            ["add", "check", "finish", "remove", "sweep", "advance", "sweeping", "wake", "stop"]
        ),
        st.floats(min_value=0, max_value=20),
    ),
    max_size=200,
)


@settings(max_examples=200)
@given(events=events, deadline=st.one_of(st.none(), st.floats(min_value=0.5, max_value=50)))
def test_scheduler_never_loses_or_resurrects_a_job(
    events: list[tuple[str, float]], deadline: float | None
) -> None:
    """
    Whatever happens, every tracked job has a future check, none is due before its time,
    removed jobs never come back, and no check falls after a job's deadline.
    """
    scheduler: PollScheduler[int] = PollScheduler(min_interval=0.01, max_interval=30)
    now = 0.0
    tracked: dict[int, float] = {}
    removed: set[int] = set()
    next_key = 0
    for kind, amount in events:
        if kind == "add":
            scheduler.add(next_key, now, deadline=None if deadline is None else now + deadline)
            tracked[next_key] = now
            next_key += 1
        elif kind == "advance":
            now += amount
        elif kind == "sweep":
            scheduler.cohort.sweep(now, scheduler.cohort.sweepable(now))
        elif kind == "sweeping":
            scheduler.cohort.sweeping = True
        elif kind == "wake":
            scheduler.cohort.wake_scouts(now)
        elif kind == "stop":
            scheduler.cohort.stop_sweeping(now)
        elif tracked and kind == "remove":
            key = min(tracked)
            scheduler.remove(key)
            removed.add(key)
            del tracked[key]
        elif tracked and kind in ("check", "finish"):
            popped_key = scheduler.pop_due(now)
            if popped_key is None:
                continue
            key = popped_key
            assert key in tracked
            assert key not in removed
            finished = kind == "finish"
            scheduler.checked(key, now, finished=finished)
            if finished:
                removed.add(key)
                del tracked[key]
            else:
                due = scheduler.next_due()
                assert due is not None
        assert len(scheduler) == len(tracked)
        if tracked:
            due = scheduler.next_due()
            assert due is not None
            assert math.isfinite(due)
            if deadline is not None:
                assert due <= max(tracked.values()) + deadline
        else:
            assert scheduler.next_due() is None
    # Draining pops every tracked job exactly once, never a removed one.
    popped = set()
    while (due := scheduler.next_due()) is not None:
        drained = scheduler.pop_due(due)
        if drained is None:
            continue  # revised by a newer plan: due later, still tracked
        assert drained not in popped
        assert drained not in removed
        popped.add(drained)
        scheduler.checked(drained, due, finished=True)
    assert popped == set(tracked)


@given(ages=st.lists(st.floats(min_value=0, max_value=10), min_size=1, max_size=50))
def test_sweep_makes_every_old_enough_parked_job_due(ages: list[float]) -> None:
    """A sweep makes the parked jobs it is given due at once (and only those)."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=0)
    scheduler.cohort.sweeping = True
    for key, age in enumerate(ages):
        scheduler.add(key, 10.0 - age)

    keys = scheduler.cohort.sweepable(10.0)
    swept = scheduler.cohort.sweep(10.0, keys)

    assert swept == len(keys) == len(ages)
    due = []
    while (swept_key := scheduler.pop_due(10.0)) is not None:
        due.append(swept_key)
    assert set(due) == set(keys)


def test_scouts_wait_for_the_counters_then_are_checked_at_once() -> None:
    """While sweeping, scouts cost nothing until jobs start to finish, then are due at once."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=2)
    scheduler.cohort.sweeping = True
    for key in range(5):
        scheduler.add(key, 0.0)

    assert scheduler.pop_due(10.0) is None  # every job, scouts included, is parked
    scheduler.cohort.wake_scouts(4.0)

    due = [scheduler.pop_due(4.0), scheduler.pop_due(4.0), scheduler.pop_due(4.0)]
    assert due == [0, 1, None]  # the two scouts, and only them


def test_quiet_counters_narrow_a_scouts_sample() -> None:
    """A reading with nothing unseen at 4.5 s bounds the first scout's run time from below."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=1)
    scheduler.cohort.sweeping = True
    scheduler.add(0, 0.0)
    scheduler.cohort.quiet_until = 4.5
    scheduler.cohort.wake_scouts(4.6)
    assert scheduler.pop_due(4.6) == 0

    scheduler.checked(0, 4.7, finished=True)

    assert scheduler.model.minimum == 4.6  # the middle of (4.5, 4.7], not of (0, 4.7]


def test_first_wave_is_placed_by_the_model_once_three_scouts_finished() -> None:
    """One sample says too little to place the first wave; three place it near their times."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=3)
    scheduler.cohort.sweeping = True
    for key in range(10):
        scheduler.add(key, 0.0)
    scheduler.cohort.wake_scouts(4.0)
    scouts = [scheduler.pop_due(4.0) for _ in range(3)]
    assert scouts == [0, 1, 2]

    scheduler.checked(0, 4.2, finished=True)
    assert scheduler.cohort.parked == 7  # the first wave still waits

    scheduler.checked(1, 4.4, finished=True)
    scheduler.checked(2, 4.6, finished=True)

    assert scheduler.cohort.parked == 0
    due = scheduler.next_due()
    assert due is not None
    assert 4.6 <= due < 6.0  # near the measured run times, not a parked job's rare check


def test_running_jobs_count_in_the_run_time_estimate() -> None:
    """Jobs still running (censored) keep their share of the estimate (Kaplan-Meier)."""
    weights, tail, oldest = _kaplan_meier([1.0, 2.0, 3.0], [2.5, 10.0, 10.0])

    assert weights == pytest.approx([1 / 6, 1 / 6, 2 / 9])
    assert tail == pytest.approx(4 / 9)
    assert oldest == 10.0
    assert _kaplan_meier([1.0, 2.0], []) == ([0.5, 0.5], 0.0, 0.0)


def test_first_finishers_do_not_end_the_plan_early() -> None:
    """
    The first jobs to finish are the fast ones. With 89 of 100 sampled jobs still running at
    4.2 s, the plan's first check waits for more of them, instead of assuming (from the 11
    finished alone) that nearly every job is done within half a second.
    """
    done = [4.0 + i / 50 for i in range(11)]  # 11 of 100 finished, 4.0 to 4.2 s

    naive = plan_checks(done, 0.065, [0.1] * 11)
    counted = plan_checks(done, 0.065, [0.1] * 11, censored=[4.2] * 89)

    assert naive[-1] < 4.7  # "everything is done by 4.7 s": wrong for 89 % of the jobs
    assert counted[0] > naive[0] + 0.2
    assert counted[-1] > naive[-1]


def _scheduler_with_samples(durations: list[float]) -> PollScheduler[int]:
    """A scheduler whose scouts 0.. finished at *durations* (submitted at 0)."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=len(durations))
    for key in range(len(durations)):
        scheduler.add(key, 0.0)
    for key, duration in enumerate(durations):
        scheduler._jobs[key].last_check = duration - 0.01
        scheduler.checked(key, duration, finished=True)
    return scheduler


def test_a_check_placed_by_an_older_plan_is_revised_without_a_request() -> None:
    """When a newer plan says later, a due check is put back: no request is made early."""
    scheduler = _scheduler_with_samples([2.0, 2.1, 2.2])
    scheduler.add(100, 0.0)
    first = scheduler.next_due()
    assert first is not None
    assert first < 3.0
    # A newer plan (say, after slower jobs finished) checks later.
    scheduler.model.plan = (8.0, 9.0)
    scheduler.model.version += 1

    assert scheduler.pop_due(first) is None  # revised, not checked
    revised = scheduler.next_due()
    assert revised is not None
    assert revised > first
    assert scheduler.pop_due(revised) == 100  # and checked when the new plan says


def test_provisional_plan_follows_the_running_scouts() -> None:
    """While scouts run past every sample, the plan moves on with time, without finishes."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=10)
    for key in range(10):
        scheduler.add(key, 0.0)
    for key in range(10):
        scheduler._jobs[key].last_check = 4.0
    scheduler.checked(0, 4.1, finished=True)  # one fast scout; nine still running at 4.0
    assert scheduler.model.provisional
    before = scheduler.model.plan[-1]

    for key in range(1, 10):
        scheduler._jobs[key].last_check = 6.0  # still running at 6 s
    scheduler.pop_due(6.0)

    assert scheduler.model.plan[-1] > before
    assert scheduler.model.plan[-1] > 6.0


def test_a_burst_of_checks_is_centred_on_its_planned_time() -> None:
    """
    A first wave submitted together comes off the park due at once; at 100 checks a second,
    about 200 of them take 2 s to drain. They start about 1 s early, so the drain straddles
    the planned time instead of trailing it by up to 2 s.
    """

    def first_wave_due(poll_rate: float | None) -> list[float]:
        scheduler: PollScheduler[int] = PollScheduler(cold_scouts=3)
        scheduler.poll_rate = poll_rate
        scheduler.cohort.sweeping = True
        for key in range(3):
            scheduler.add(key, 0.0)  # the scouts
        for key in range(3, 203):
            scheduler.add(key, 5.0)  # the first wave, submitted together
        scheduler.cohort.quiet_until = 9.9  # the counters: nothing had finished at 9.9 s
        scheduler.cohort.wake_scouts(9.9)
        for key in range(3):
            assert scheduler.pop_due(9.9) == key
            scheduler.checked(key, 10.0 + key / 10, finished=True)
        jobs = scheduler._jobs
        return sorted(
            when for key, when in scheduler._heap.schedule().items() if not jobs[key].scout
        )

    planned = first_wave_due(None)
    centred = first_wave_due(100.0)

    assert len(planned) == len(centred) == 198  # two of the 200 are scouts
    assert len(set(planned)) == 1  # one planned time for the whole wave
    assert planned[0] > 13.0
    lead = planned[0] - centred[0]
    assert 0.95 <= lead <= 1.0  # half of the 1.98 s drain


def test_a_reattached_job_is_checked_at_once_whatever_the_plan() -> None:
    """A job re-attached after a crash (age unknown) is due at once, even after a re-plan."""
    scheduler = _scheduler_with_samples([2.0, 2.1, 2.2])
    scheduler.add(100, 50.0, known_age=False)
    scheduler.model.replan()  # a newer plan must not postpone it

    assert scheduler.pop_due(50.0) == 100


def test_a_stuck_scout_does_not_keep_the_plan_provisional() -> None:
    """A scout running far past every sample is left out of the estimate, not waited for."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=4)
    for key in range(4):
        scheduler.add(key, 0.0)
    for key in range(3):
        scheduler._jobs[key].last_check = 4.9 + key / 10
        scheduler.checked(key, 5.0 + key / 10, finished=True)
    assert scheduler._scouts.censored(5.3) == [5.3]  # the fourth scout still counts at 5.3 s

    assert scheduler._scouts.censored(100.0) == []  # at 100 s (over 3x every sample) it is stuck


def _released_first_wave(wave: int) -> PollScheduler[int]:
    """Three scouts and a first wave of *wave* jobs, the third scout just seen finished."""
    scheduler: PollScheduler[int] = PollScheduler(cold_scouts=3, scout_every=10**9)
    scheduler.poll_rate = 500.0
    scheduler.cohort.sweeping = True
    for key in range(3):
        scheduler.add(key, 0.0)
    for key in range(3, 3 + wave):
        scheduler.add(key, 1.0 + key / wave)
    scheduler.cohort.quiet_until = 9.9
    scheduler.cohort.wake_scouts(9.9)
    for key in range(3):
        assert scheduler.pop_due(9.9) == key
        scheduler.checked(key, 10.0 + key / 10, finished=True)
    return scheduler


def _live_schedule(scheduler: PollScheduler[int]) -> dict[int, float]:
    return scheduler._heap.schedule()


def test_a_large_first_wave_is_placed_a_chunk_per_step() -> None:
    """
    Releasing 3 chunks' worth of jobs takes several `place` steps of at most a chunk each
    (the event loop runs in between), and ends with the same schedule as one big step.
    """
    wave = 3 * PLACE_CHUNK
    scheduler = _released_first_wave(wave)
    assert scheduler.placing
    assert scheduler.cohort.parked == wave  # nothing placed in the step that released them

    steps = 0
    while scheduler.placing:
        before = scheduler.cohort.parked
        scheduler.place(10.2)
        assert before - scheduler.cohort.parked <= PLACE_CHUNK
        steps += 1
    assert steps > 3
    assert scheduler.cohort.parked == 0

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(_cohort, "PLACE_CHUNK", wave)  # the whole wave in one step
        at_once = _released_first_wave(wave)
    assert not at_once.placing
    assert _live_schedule(scheduler) == _live_schedule(at_once)
    schedule = _live_schedule(scheduler)
    assert len(schedule) == wave
    # By the model (the burst drained from now on), not at a parked job's rare check:
    assert 10.2 <= min(schedule.values()) < max(schedule.values()) < 10.2 + 5.0


def test_a_job_swept_or_finished_while_its_wave_is_placed_keeps_that() -> None:
    """A sweep or a finish between placement steps is not undone by the placement."""
    scheduler = _released_first_wave(3 * PLACE_CHUNK)
    swept, finished, last = 3, 4, 2 + 3 * PLACE_CHUNK
    scheduler.cohort.sweep(10.2, [swept, last])
    assert scheduler.pop_due(10.2) == swept
    scheduler.checked(swept, 10.2, finished=True)
    scheduler.place(10.2)  # the first chunk: `finished` is planned
    scheduler.checked(finished, 10.3, finished=True)
    while scheduler.placing:
        scheduler.place(10.3)

    schedule = _live_schedule(scheduler)
    assert swept not in schedule
    assert finished not in schedule
    assert schedule[last] == 10.2  # still due at once, as the sweep made it
    assert scheduler.pop_due(10.3) == last
    assert len(schedule) == 3 * PLACE_CHUNK - 2


def test_a_loop_of_next_due_and_pop_due_alone_places_a_large_wave() -> None:
    """A hand-written poll loop that never calls `place` still gets every job placed."""
    wave = 3 * PLACE_CHUNK
    scheduler = _released_first_wave(wave)
    popped: list[int] = []
    rounds = 0
    while (due := scheduler.next_due()) is not None and due <= 10.2:
        key = scheduler.pop_due(10.2)
        if key is not None:
            popped.append(key)
        rounds += 1
        assert rounds < 2 * wave  # no livelock

    assert not scheduler.placing
    assert scheduler.cohort.parked == 0
    assert len(popped) + len(_live_schedule(scheduler)) == wave  # each job once
    assert not set(popped) & set(_live_schedule(scheduler))


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["push", "discard", "pop"]),
            st.integers(0, 30),
            st.floats(0, 100, allow_nan=False),
        ),
        max_size=3000,
    )
)
@settings(max_examples=60, deadline=None)
def test_due_heap_matches_a_plain_dict(ops: list[tuple[str, int, float]]) -> None:
    """
    The scheduler's heap (lazy deletion, compaction) pops keys in the order a plain dict
    of due times gives: earliest first, ties in push order, a rescheduled key only once.
    """
    heap = _DueHeap[int]()
    reference: dict[int, tuple[float, int]] = {}
    pushes = 0
    for op, key, when in ops:
        if op == "push":
            heap.push(key, when)
            reference[key] = (when, pushes)
            pushes += 1
        elif op == "discard":
            heap.discard(key)
            reference.pop(key, None)
        else:
            expected = min(reference, key=reference.__getitem__) if reference else None
            assert heap.peek() == (reference[expected][0] if expected is not None else None)
            if expected is not None:
                assert heap.pop() == expected
                del reference[expected]
        assert len(heap) == len(reference)
    assert heap.schedule() == {key: when for key, (when, _) in reference.items()}


def test_due_heap_drops_stale_entries_of_rescheduled_keys() -> None:
    """Rescheduling ten keys 10,000 times keeps the heap bounded, and the last times stand."""
    heap = _DueHeap[int]()
    for n in range(10_000):
        heap.push(n % 10, float(10_000 - n))
    assert len(heap._entries) <= 4 * 10 + 1024 + 1
    assert heap.schedule() == {key: float(10 - key) for key in range(10)}
    assert [heap.pop() for _ in range(10) if heap.peek() is not None] == list(range(9, -1, -1))
