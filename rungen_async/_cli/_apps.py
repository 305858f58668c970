"""``rungen apps ...``: list, show, create, update, start, stop, wait for and delete apps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .._models import App
from ._parser import EXIT_OK, UsageError
from ._runtime import Session

_HEADERS = ("ID", "NAME", "STATUS", "GPU", "WORKERS", "QUEUED", "RUNNING", "DONE", "FAILED")


def app_row(app: App) -> tuple[object, ...]:
    """One table row for *app*."""
    jobs = app.jobs
    return (
        app.id,
        app.name,
        app.status,
        app.configuration.gpu_tier,
        app.configuration.active_workers,
        None if jobs is None else jobs.in_queue,
        None if jobs is None else jobs.in_progress,
        None if jobs is None else jobs.completed,
        None if jobs is None else jobs.failed,
    )


def show_app(session: Session, app: App) -> None:
    """Print one app: as JSON, or as aligned ``name: value`` lines."""
    console = session.console
    if console.json_mode:
        console.json(app)
        return
    pairs: list[tuple[str, object]] = [
        ("id", app.id),
        ("name", app.name),
        ("status", app.status),
        ("gpu tier", app.configuration.gpu_tier),
        ("workers", app.configuration.active_workers),
        ("model", app.workflow.model_url),
    ]
    if app.description:
        pairs.append(("description", app.description))
    loras = app.workflow.tools.loras
    if loras:
        pairs.append(("loras", ", ".join(f"{lora.name} ({lora.weight:g})" for lora in loras)))
    if app.owner_team_id:
        pairs.append(("team", app.owner_team_id))
    if app.jobs is not None:
        jobs = app.jobs
        pairs.append(
            (
                "jobs",
                f"{jobs.in_queue} queued, {jobs.in_progress} running, "
                f"{jobs.completed} completed, {jobs.failed} failed",
            )
        )
    if app.created_at is not None:
        pairs.append(("created", app.created_at))
    console.pairs(pairs)


def parse_loras(values: Sequence[str] | None) -> list[dict[str, Any]] | None:
    """
    Decode ``--lora`` JSON objects.

    Raises:
        UsageError: One is not a JSON object.
    """
    if values is None:
        return None
    loras: list[dict[str, Any]] = []
    for text in values:
        try:
            lora = json.loads(text)
        except ValueError as exc:
            raise UsageError(f"--lora is not valid JSON ({exc}): {text!r}") from None
        if not isinstance(lora, dict):
            raise UsageError(f"--lora must be a JSON object, got {text!r}")
        loras.append(lora)
    return loras


async def run_apps(session: Session) -> int:
    """Run ``rungen apps VERB``."""
    args, console = session.args, session.console
    async with session.client() as rg:
        verb = args.verb
        if verb == "list":
            apps = await rg.list_apps()
            if console.json_mode:
                console.json(apps)
            elif apps:
                console.table(_HEADERS, [app_row(app) for app in apps])
            else:
                console.err("no apps in this scope")
            return EXIT_OK
        if verb == "delete":
            await rg.delete_app(args.app_id)
            if console.json_mode:
                console.json({"id": args.app_id, "deleted": True})
            else:
                console.out(f"deleted app {args.app_id}")
            return EXIT_OK
        if verb == "create":
            app = await rg.create_app(
                args.name,
                gpu_tier=args.gpu_tier,
                model_url=args.model_url,
                description=args.description,
                active_workers=args.workers,
                location=args.location,
                loras=parse_loras(args.lora) or (),
            )
        elif verb == "update":
            app = await rg.update_app(
                args.app_id,
                name=args.name,
                description=args.description,
                active_workers=args.workers,
                model_url=args.model_url,
                loras=parse_loras(args.lora),
            )
        elif verb == "start":
            app = await rg.start_app(args.app_id, args.workers)
            if args.wait:
                app = await rg.wait_for_app(args.app_id)
        elif verb == "stop":
            app = await rg.stop_app(args.app_id)
        elif verb == "wait":
            app = await rg.wait_for_app(args.app_id)
        else:  # "get"
            app = await rg.get_app(args.app_id)
        show_app(session, app)
    return EXIT_OK
