"""The lazy queue simulation: jumping straight to a time equals walking there step by step."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rungen_async.emulator import App, Job, JobState

Event = tuple[float, str, float]  # (time, "submit" | "scale" | "cancel", value)


def _app(warmup: float) -> App:
    return App(
        id="app",
        name="a",
        description="",
        gpu_tier="STANDARD",
        location=None,
        workflow={},
        owner_team_id=None,
        owner_user_id="u",
        created_by="u",
        created_at=0.0,
        updated_at=0.0,
        warmup=warmup,
        job_duration=1.0,
    )


def _run(events: list[Event], warmup: float, workers: int, step: float | None) -> list[object]:
    """Replay *events*; with *step*, also advance every *step* seconds in between."""
    app = _app(warmup)
    app.scale(workers, 0.0)
    jobs: list[Job] = []
    now = 0.0
    for at, kind, value in sorted(events, key=lambda event: event[0]):
        while step is not None and now + step < at:
            now += step
            app.advance(now)
        now = at
        if kind == "submit":
            job = Job(
                id=str(len(jobs)),
                app_id="app",
                number=len(jobs) + 1,
                input={},
                created_at=at,
                duration=value,
            )
            jobs.append(job)
            app.enqueue(job)
        elif kind == "scale":
            app.scale(int(value), at)
        elif jobs:
            app.cancel(jobs[int(value) % len(jobs)], at)
    app.advance(now + 1000.0)
    counters = (app.completed, app.failed, app.canceled, app.in_queue, app.in_progress)
    return [(job.state, job.started_at, job.finished_at) for job in jobs] + [counters]


_events = st.lists(
    st.one_of(
        st.tuples(st.floats(0, 50), st.just("submit"), st.floats(0, 10)),
        st.tuples(st.floats(0, 50), st.just("scale"), st.integers(0, 4).map(float)),
        st.tuples(st.floats(0, 50), st.just("cancel"), st.integers(0, 30).map(float)),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(_events, st.floats(0, 5), st.integers(0, 3), st.sampled_from([0.25, 1.0, 3.0]))
def test_lazy_simulation_does_not_depend_on_when_it_is_observed(
    events: list[Event], warmup: float, workers: int, step: float
) -> None:
    """Advancing only at events gives the same timelines as advancing every *step* seconds."""
    assert _run(events, warmup, workers, None) == _run(events, warmup, workers, step)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 10), max_size=40), st.integers(1, 4))
def test_every_job_finishes_and_counters_add_up(durations: list[float], workers: int) -> None:
    """With workers, every job completes; at no point is a worker given two jobs."""
    app = _app(0.0)
    app.scale(workers, 0.0)
    for number, duration in enumerate(durations, 1):
        app.enqueue(
            Job(
                id=str(number),
                app_id="app",
                number=number,
                input={},
                created_at=0.0,
                duration=duration,
            )
        )

    app.advance(sum(durations) + 1)

    assert app.completed == len(durations)
    assert (app.in_queue, app.in_progress) == (0, 0)
    assert all(job.state is JobState.COMPLETED for job in app.jobs.values())
    intervals = sorted((job.started_at or 0.0, job.finished_at or 0.0) for job in app.jobs.values())
    for moment in {start for start, _ in intervals}:
        busy = sum(start <= moment < end for start, end in intervals)
        assert busy <= workers
