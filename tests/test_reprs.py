"""Reprs a notebook user reads: one line for App and Job, and an HTML card for a Job."""

from __future__ import annotations

from rungen_async import App, Job, JobStatus
from rungen_async._display import images_html, job_html
from rungen_async._serde import structure

from . import payloads


def completed_job(*urls: str) -> Job:
    body = payloads.job(
        "COMPLETED", result={"images": [{"image": url} for url in urls]}, execution_time="12.4"
    )["data"]
    return structure(body, Job)


def test_app_repr_is_one_short_line() -> None:
    """An app prints id, name, status, tier and workers on one line, not every counter."""
    app = structure(payloads.app("RUNNING", active_workers=1), App)

    text = repr(app)

    assert "\n" not in text
    assert len(text) < 160
    assert text.startswith(f"<App id={app.id!r} ")
    assert "status=RUNNING" in text
    assert "active_workers=1" in text


def test_job_repr_names_status_time_and_images() -> None:
    """A job prints id, status, execution time and its image count."""
    job = completed_job("https://out.example/a.png", "https://out.example/b.png")

    assert repr(job) == f"<Job id={job.id!r} status=COMPLETED execution_time=12.4 images=2>"


def test_job_repr_uses_the_normalised_status() -> None:
    """IN_QUEUE from the server is the QUEUED member, so both spellings classify alike."""
    job = structure(payloads.job("IN_QUEUE")["data"], Job)

    assert job.status is JobStatus.QUEUED
    # Typed as JobStatus: mypy does not model enum aliases and would call them disjoint.
    queued: JobStatus = JobStatus.IN_QUEUE
    running: JobStatus = JobStatus.IN_PROGRESS
    assert queued == JobStatus.QUEUED
    assert running is JobStatus.RUNNING
    assert repr(job) == f"<Job id={job.id!r} status=QUEUED>"


def test_job_html_shows_status_timings_and_thumbnails() -> None:
    """The HTML card shows the status, the execution time and an <img> per output URL."""
    job = completed_job("https://out.example/a.png?X-Amz-Expires=604800&sig=1")

    page = job._repr_html_()

    assert "COMPLETED" in page
    assert "12.4" in page
    assert '<img src="https://out.example/a.png?X-Amz-Expires=604800&amp;sig=1"' in page
    assert page == job_html(job)


def test_images_html_escapes_hostile_urls() -> None:
    """A URL cannot close the attribute, and a non-web scheme never becomes an <img src>."""
    page = images_html(['https://x/"><script>alert(1)</script>', "javascript:alert(1)"])

    assert "<script>" not in page
    assert "&quot;&gt;&lt;script&gt;" in page
    assert 'src="javascript:' not in page
    assert "<code>javascript:alert(1)</code>" in page


def test_job_html_escapes_the_error_text() -> None:
    """A failure message is text, not markup."""
    job = structure({"id": "j", "status": "FAILED", "error": "<b>boom</b>"}, Job)

    page = job_html(job)

    assert "&lt;b&gt;boom&lt;/b&gt;" in page
    assert "<b>boom</b>" not in page


async def test_outcome_and_batch_result_render_in_a_notebook() -> None:
    """Outcome and BatchResult have short reprs and HTML cards with counts and thumbnails."""
    from rungen_async.testing import FakeRunGen

    fake = FakeRunGen()
    app_id = fake.create_app(active_workers=4)
    inputs = [{"prompt": "ok"}, {"prompt": "bad", "_fail": "out of <memory>"}]
    async with fake.client() as rg:
        result = await rg.run_batch(app_id, inputs)

    done, failed = result.outcomes
    page = result._repr_html_()
    assert "\n" not in repr(result)
    assert len(repr(done)) < 120
    assert "COMPLETED" in done._repr_html_()
    assert done.job is not None
    assert f'<img src="{done.job.image_urls[0]}"' in done._repr_html_()
    assert "out of &lt;memory&gt;" in failed._repr_html_()
    assert "1 COMPLETED, 1 FAILED" in page
    assert "<img src=" in page
    assert "out of &lt;memory&gt;" in page
    assert fake.api_key not in page + repr(result)
