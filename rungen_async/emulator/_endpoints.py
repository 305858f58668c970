"""
The eight documented endpoints, plus the output images, over the emulator's state.

Scope rules (`/api/working-with-teams`), made strict on purpose so that a client which
forgets ``x-team-id`` notices: without the header only the caller's personal apps exist;
with it, only that team's apps, and the caller must be a member (403 otherwise) whose role
allows the action (a MEMBER may not delete, by default). Another user's app is a 404.
"""

from __future__ import annotations

import random
import uuid
from collections import deque
from collections.abc import Callable
from functools import lru_cache

from . import _views
from ._accounts import Accounts, Action, User
from ._bodies import AppSettings, parse_create, parse_run, parse_update
from ._http import (
    EmulatorRequest,
    EmulatorResponse,
    HTTPError,
    Router,
    error_response,
    json_response,
    parse_json_body,
)
from ._png import image_size, render_prompt
from ._state import App, Job, JobState

OUTPUTS_PREFIX = "/_emulator/outputs/"


@lru_cache(maxsize=64)
def _image(prompt: str, width: int, height: int) -> bytes:
    return render_prompt(prompt, width, height)


class Api:
    """The state (apps and jobs) and the handlers that read and change it.

    Args:
        variant: Called once per response to pick the documented variant to serve.
        stamp: Turns a clock reading into wall-clock time for ``created_at`` fields.
    """

    def __init__(
        self,
        *,
        accounts: Accounts,
        warmup: float,
        job_duration: float,
        max_workers: int,
        seed: int | None,
        variant: Callable[[], _views.Variant],
        stamp: _views.Stamp,
    ) -> None:
        self.accounts = accounts
        self.warmup, self.job_duration, self.max_workers = warmup, job_duration, max_workers
        self.apps: dict[str, App] = {}
        self.jobs: dict[str, Job] = {}
        self.jobs_created = 0
        self.apps_created = 0
        self.fail_next: deque[str] = deque()  # messages for the next jobs created
        self.fail_numbers: dict[int, str] = {}  # job number -> message
        self._ids = random.Random(seed)
        self._variant, self._stamp = variant, stamp
        self.router = Router()
        for method, pattern, handler in (
            ("POST", "/app", self.create_app),
            ("GET", "/app", self.list_apps),
            ("GET", "/app/{app_id}", self.get_app),
            ("PUT", "/app/{app_id}", self.update_app),
            ("DELETE", "/app/{app_id}", self.delete_app),
            ("POST", "/app/{app_id}/run_async", self.run_job),
            ("GET", "/app/{app_id}/job/{job_id}", self.get_job),
            ("PUT", "/app/{app_id}/job/{job_id}", self.cancel_job),
        ):
            self.router.add(method, pattern, handler)

    def new_id(self) -> str:
        """A UUID4 string, reproducible when the emulator has a seed."""
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def advance_all(self, now: float) -> None:
        """Bring every app's simulation up to *now*."""
        for app in self.apps.values():
            app.advance(now)

    # -- scope ----------------------------------------------------------------------------

    def _team(self, request: EmulatorRequest, user: User, action: Action) -> str | None:
        team_id = request.headers.get("x-team-id") or None
        if team_id is None or team_id.strip().lower() == "null":
            # The create tutorial says the header "can be null": the personal context.
            return None
        role = self.accounts.role_of(user, team_id)
        if role is None:
            raise HTTPError(403, f"you are not a member of team '{team_id}'")
        if not self.accounts.teams[team_id].allows(role, action):
            raise HTTPError(403, f"role {role} may not {action} apps in team '{team_id}'")
        return team_id

    def _app(
        self, request: EmulatorRequest, user: User, app_id: str, action: Action, now: float
    ) -> App:
        team_id = self._team(request, user, action)
        app = self.apps.get(app_id)
        if app is None or not _visible(app, user, team_id):
            raise HTTPError(404, f"app '{app_id}' not found")
        app.advance(now)
        return app

    def _job(self, app: App, job_id: str) -> Job:
        job = app.jobs.get(job_id)
        if job is None:
            raise HTTPError(404, f"job '{job_id}' not found for app '{app.id}'")
        return job

    # -- apps -----------------------------------------------------------------------------

    def create_app(self, request: EmulatorRequest, user: User, now: float) -> EmulatorResponse:
        """POST /app."""
        team_id = self._team(request, user, "create")
        settings = parse_create(parse_json_body(request), max_workers=self.max_workers)
        assert settings.workflow is not None
        assert settings.gpu_tier is not None
        app = App(
            id=self.new_id(),
            name=settings.name or "",
            description=settings.description or "",
            gpu_tier=settings.gpu_tier,
            location=settings.location,
            workflow=settings.workflow,
            owner_team_id=team_id,
            owner_user_id=None if team_id else user.id,
            created_by=user.id,
            created_at=now,
            updated_at=now,
            warmup=self.warmup if settings.warmup is None else settings.warmup,
            job_duration=(
                self.job_duration if settings.job_duration is None else settings.job_duration
            ),
        )
        app.advance(now)
        app.scale(settings.active_workers or 0, now)
        self.apps[app.id] = app
        self.apps_created += 1
        return json_response(201, _views.app_created(app, self._stamp, self._variant()))

    def list_apps(self, request: EmulatorRequest, user: User, now: float) -> EmulatorResponse:
        """GET /app: the caller's personal apps, or the team's with ``x-team-id``."""
        team_id = self._team(request, user, "read")
        listed = []
        for app in self.apps.values():
            if _visible(app, user, team_id):
                app.advance(now)
                listed.append(_views.app_listed(app, self._stamp))
        return json_response(200, {"data": listed})

    def get_app(
        self, request: EmulatorRequest, user: User, now: float, app_id: str
    ) -> EmulatorResponse:
        """GET /app/{app_id}."""
        app = self._app(request, user, app_id, "read", now)
        return json_response(200, _views.app_read(app, self._stamp, self._variant()))

    def update_app(
        self, request: EmulatorRequest, user: User, now: float, app_id: str
    ) -> EmulatorResponse:
        """PUT /app/{app_id}: a partial update; ``active_workers`` starts and stops the app."""
        app = self._app(request, user, app_id, "edit", now)
        body = parse_json_body(request)
        self.apply(app, parse_update(body, app.workflow, max_workers=self.max_workers), now)
        return json_response(200, _views.app_updated(app, self._stamp, self._variant()))

    def apply(self, app: App, settings: AppSettings, now: float) -> None:
        """Change *app* as *settings* say."""
        for name in ("name", "description", "workflow", "warmup", "job_duration"):
            value = getattr(settings, name)
            if value is not None:
                setattr(app, name, value)
        if settings.active_workers is not None:
            app.scale(settings.active_workers, now)
        app.updated_at = now

    def delete_app(
        self, request: EmulatorRequest, user: User, now: float, app_id: str
    ) -> EmulatorResponse:
        """DELETE /app/{app_id}; the app must be stopped first (409 otherwise)."""
        app = self._app(request, user, app_id, "delete", now)
        if app.active_workers:
            raise HTTPError(
                409,
                f"app '{app_id}' is not stopped; set configuration.active_workers to 0 first",
            )
        del self.apps[app_id]
        for job_id in app.jobs:
            del self.jobs[job_id]
        return EmulatorResponse(status=204)

    # -- jobs -----------------------------------------------------------------------------

    def run_job(
        self, request: EmulatorRequest, user: User, now: float, app_id: str
    ) -> EmulatorResponse:
        """POST /app/{app_id}/run_async: queue a job; a stopped app keeps it queued."""
        app = self._app(request, user, app_id, "create", now)
        spec = parse_run(parse_json_body(request))
        self.jobs_created += 1
        number = self.jobs_created
        error = spec.error
        if number in self.fail_numbers:
            error = self.fail_numbers.pop(number)
        elif self.fail_next:
            error = self.fail_next.popleft()
        job = Job(
            id=self.new_id(),
            app_id=app.id,
            number=number,
            input=spec.input,
            created_at=now,
            duration=app.default_duration() if spec.duration is None else spec.duration,
            error=error,
            result=spec.result,
        )
        self.jobs[job.id] = job
        app.enqueue(job)
        return json_response(201, _views.job_submitted(job, self._stamp, self._variant()))

    def get_job(
        self, request: EmulatorRequest, user: User, now: float, app_id: str, job_id: str
    ) -> EmulatorResponse:
        """GET /app/{app_id}/job/{job_id}."""
        app = self._app(request, user, app_id, "read", now)
        job = self._job(app, job_id)
        output_url = f"{request.base_url}{OUTPUTS_PREFIX}{job.id}.png"
        body = _views.job_read(job, self._stamp, self._variant(), output_url=output_url)
        return json_response(200, body)

    def cancel_job(
        self, request: EmulatorRequest, user: User, now: float, app_id: str, job_id: str
    ) -> EmulatorResponse:
        """PUT /app/{app_id}/job/{job_id}: cancel; 409 once the job has finished."""
        claimed = request.headers.get("x-authenticated-user-id")
        if not claimed:
            raise HTTPError(400, "'X-Authenticated-User-Id' header is required to cancel a job")
        if claimed != user.id:
            raise HTTPError(403, "'X-Authenticated-User-Id' does not match the API key's user")
        app = self._app(request, user, app_id, "edit", now)
        job = self._job(app, job_id)
        if not app.cancel(job, now):
            raise HTTPError(
                409, f"job '{job_id}' is already {job.state.value} and cannot be canceled"
            )
        return json_response(200, _views.job_canceled(job))

    def output(self, job_id: str, now: float) -> EmulatorResponse:
        """GET /_emulator/outputs/{job_id}.png: a completed job's image, without a key."""
        job = self.jobs.get(job_id)
        if job is not None:
            self.apps[job.app_id].advance(now)
        if job is None or job.state is not JobState.COMPLETED or job.result is not None:
            return error_response(404, f"no output image for job '{job_id}'")
        prompt = job.input.get("prompt")
        body = _image(str(prompt) if prompt is not None else "", *image_size(job.input))
        return EmulatorResponse(
            status=200,
            headers=(("content-type", "image/png"), ("cache-control", "max-age=604800")),
            body=body,
        )


def _visible(app: App, user: User, team_id: str | None) -> bool:
    if team_id is not None:
        return app.owner_team_id == team_id
    return app.owner_team_id is None and app.owner_user_id == user.id
