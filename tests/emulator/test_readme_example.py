"""The "Testing your code" example of the README, verbatim apart from this docstring."""

import pytest

from rungen_async import AsyncRunGen, JobStatus
from rungen_async.testing import FakeRunGen


async def make_thumbnail(rg: AsyncRunGen, app_id: str, prompt: str) -> str:
    """The code under test: submit a job, wait for it, return the image URL."""
    job = await rg.submit_job(app_id, {"prompt": prompt, "width": 512, "height": 512})
    job = await rg.wait_for_job(app_id, job.id)
    return job.image_urls[0]


@pytest.fixture
def fake() -> FakeRunGen:
    return FakeRunGen(job_duration=20)  # each job takes 20 s of fake time


async def test_thumbnail_url(fake: FakeRunGen) -> None:
    app_id = fake.create_app()  # RUNNING at once, one worker

    async with fake.client() as rg:
        url = await make_thumbnail(rg, app_id, "a red fox")

    assert url.endswith(".png")
    assert fake.jobs_created == 1
    [submit] = fake.requests_to("POST", "/app/*/run_async")
    assert submit.json == {"input": {"prompt": "a red fox", "width": 512, "height": 512}}


async def test_thumbnail_survives_rate_limits(fake: FakeRunGen) -> None:
    app_id = fake.create_app()
    fake.fail_next_requests(429, count=2, retry_after=30)  # the client waits 60 s... of fake time

    async with fake.client() as rg:
        await make_thumbnail(rg, app_id, "a red fox")

    assert [r.status for r in fake.requests][:3] == [429, 429, 201]


async def test_failed_job(fake: FakeRunGen) -> None:
    app_id = fake.create_app()
    fake.fail_next_job("CUDA out of memory")

    async with fake.client() as rg:
        job = await rg.submit_job(app_id, {"prompt": "a red fox"})
        fake.finish_all_jobs()  # jump the clock to when every job is done
        job = await rg.get_job(app_id, job.id)

    assert job.status is JobStatus.FAILED
    assert job.error == "CUDA out of memory"
