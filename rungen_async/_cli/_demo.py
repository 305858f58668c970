"""
``rungen demo`` and ``rungen emulator``: the local emulator, served from this process.

The demo needs no account and no network: it serves the emulator on a free loopback port
(uvicorn in a thread), injects a few 429 and 503 answers, creates and starts an app, runs a
batch of generated prompts through the same code as ``rungen batch``, downloads the images,
and says what the SDK did along the way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio

from .._client import AsyncRunGen
from .._http._retry import RetryPolicy
from ..emulator import DEMO_API_KEY, Emulator, EmulatorServer, FaultConfig
from ._batch import BatchPlan, execute, new_report
from ._files import InputLine
from ._parser import EXIT_FAILED, EXIT_OK, HelpShown, Parser, UsageError, help_stream
from ._progress import format_duration
from ._runtime import Session
from ._summary import summary_json

MODEL_URL = "https://huggingface.co/black-forest-labs/FLUX.1-schnell"
#: Faults hit submissions and status checks: the requests a batch sends by the hundred.
FAULT_ROUTES = ("POST /app/*/run_async", "GET /app/*/job/*")
_SUBJECTS = (
    "a lighthouse", "a red fox", "a paper boat", "a mountain hut", "a tram",
    "an owl", "a koi pond", "a robot gardener", "a windmill", "a hot-air balloon",
)  # fmt: skip
_STYLES = (
    "at dawn", "in the rain", "under the northern lights", "in watercolour",
    "as a woodcut", "at golden hour",
)  # fmt: skip
_DETAILS = ("wide angle", "soft focus", "high contrast", "pastel colours", "isometric")


def demo_prompts(count: int) -> list[dict[str, Any]]:
    """*count* distinct, reproducible job inputs."""
    return [
        {
            "prompt": f"{_SUBJECTS[i % len(_SUBJECTS)]} "
            f"{_STYLES[i // len(_SUBJECTS) % len(_STYLES)]}, {_DETAILS[i % len(_DETAILS)]} "
            f"#{i + 1}",
            "width": 128,
            "height": 128,
            "seed": i,
        }
        for i in range(count)
    ]


def _require_uvicorn() -> None:
    try:
        import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError("the emulator needs uvicorn: pip install 'rungen-async[cli]'") from None


async def _serve(server: EmulatorServer) -> None:
    await anyio.to_thread.run_sync(server.start)


async def _stop(server: EmulatorServer) -> None:
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(server.stop)


async def run_emulator(session: Session) -> int:
    """Run ``rungen emulator [FLAGS]``: serve until Ctrl-C (the emulator's own flags)."""
    from ..emulator.__main__ import _parser, banner, build_emulator

    _require_uvicorn()
    token = help_stream.set(session.runtime.stdout)
    try:  # a bad flag raises UsageError, with the usage line of "rungen emulator"
        options = _parser("rungen emulator", Parser).parse_args(session.args.emulator_args)
    except HelpShown as shown:
        return shown.status
    finally:
        help_stream.reset(token)
    try:
        emulator = build_emulator(options)
    except (OSError, ValueError) as exc:
        raise UsageError(str(exc)) from None
    server = EmulatorServer(emulator, host=options.host, port=options.port)
    await _serve(server)
    try:
        console = session.console
        # The emulator's demo key is public, so it shows even if $RUNGEN_API_KEY holds it;
        # the banner names no other key.
        console.unmask(options.api_key)
        console.out(banner(emulator, server.base_url, options.api_key).rstrip("\n"))
        console.out("Stop it with Ctrl-C.")
        await anyio.sleep_forever()
    finally:
        await _stop(server)
    return EXIT_OK  # not reached: Ctrl-C cancels the sleep


def _prepare(output: Path, prompts: list[dict[str, Any]]) -> None:
    """Write the prompts into *output*, removing what an earlier demo left there."""
    try:
        output.mkdir(parents=True, exist_ok=True)
        _clean(output)
        with (output / "prompts.jsonl").open("w", encoding="utf-8") as stream:
            stream.writelines(json.dumps(prompt) + "\n" for prompt in prompts)
    except OSError as exc:
        raise UsageError(f"cannot write to {output}: {exc.strerror or exc}") from None


def _clean(output: Path) -> None:
    """Remove the demo's own files (and only those) from an earlier run."""
    for name in ("prompts.jsonl", "results.jsonl", "results.jsonl.journal"):
        (output / name).unlink(missing_ok=True)
    images = output / "images"
    if images.is_dir():
        for image in images.glob("*-*.png"):
            image.unlink()


async def run_demo(session: Session) -> int:
    """Run ``rungen demo``."""
    args, console = session.args, session.console
    _require_uvicorn()
    output = Path(args.output)
    prompts = demo_prompts(args.count)
    _prepare(output, prompts)
    rate = args.fault_rate
    emulator = Emulator(
        warmup=args.warmup,
        job_duration=args.job_duration,
        seed=7,
        faults=FaultConfig(
            rate_429=rate / 2, rate_5xx=rate / 2, retry_after=0.0, routes=FAULT_ROUTES, seed=7
        ),
        max_workers=max(64, args.workers),
    )
    server = EmulatorServer(emulator)
    started = anyio.current_time()
    await _serve(server)
    say = console.err
    try:
        say(f"rungen demo: emulator serving {server.base_url}, injecting {rate:.0%} 429/503 "
            "faults into submissions and status checks")  # fmt: skip
        # The emulator honours Idempotency-Key, so a submission whose answer was a 503 can be
        # re-sent safely: the retry gets the original job back, never a second one.
        retry = RetryPolicy(retry_ambiguous_posts=True, initial_delay=0.1, max_delay=1.0)
        async with AsyncRunGen(DEMO_API_KEY, base_url=server.base_url, retry=retry) as rg:
            app = await rg.create_app("rungen-demo", gpu_tier="STANDARD", model_url=MODEL_URL)
            await rg.start_app(app.id, args.workers)
            say(f"created app {app.id}; starting {args.workers} workers")
            await rg.wait_for_app(app.id)
            say(f"app RUNNING; submitting {len(prompts)} prompts")
            plan = BatchPlan(
                app_id=app.id,
                inputs=[InputLine(n, value) for n, value in enumerate(prompts, start=1)],
                output=output / "results.jsonl",
                journal=output / "results.jsonl.journal",
                download=output / "images",
                max_concurrency=32,
                poll_rate=200.0,
                progress=not args.no_progress,
            )
            report, previous = new_report(plan)
            await execute(session, rg, plan, report, previous)
            await rg.stop_app(app.id)
    finally:
        await _stop(server)
    elapsed = anyio.current_time() - started
    stats = emulator.stats
    faults = dict(sorted(stats.faults.items()))
    if console.json_mode:
        console.json(
            summary_json(plan, report)
            | {"emulator": stats.to_dict(), "wall_time": round(elapsed, 3)}
        )
        return EXIT_OK if report.all_ok else EXIT_FAILED
    retries = getattr(report.stats, "retries", None)
    polls = getattr(report.stats, "status_requests", None)
    fault_text = ", ".join(f"{n} x {name}" for name, n in faults.items()) or "none"
    done = max(1, report.tally.done)
    lines = [
        f"demo finished in {elapsed:.1f} s: {report.tally.ok} of {report.total} images "
        f"generated, {report.tally.failed} failed",
        f"  faults:  the emulator injected {sum(faults.values())} errors ({fault_text}); "
        f"the client absorbed them with {retries} retries",
        f"  no duplicates: {stats.jobs_created} jobs created for {report.total} prompts; "
        "every submission carried an idempotency key, the same on each retry",
        f"  poller:  one scheduler watched every job with {polls} status requests "
        f"({(polls or 0) / done:.1f} per job) instead of a polling loop per job",
        f"  journal: {plan.journal} (rerun a batch with --resume to continue after Ctrl-C)",
        f"  results: {plan.output}",
        f"  images:  {plan.download}/ ({report.files} PNG files)",
        f"  by hand: rungen batch APP {output / 'prompts.jsonl'} -o {plan.output} "
        f"--download {plan.download}",
        f"  batch time {format_duration(report.elapsed)}; app warm-up {args.warmup:g} s, "
        f"{args.job_duration:g} s per job on {args.workers} workers",
    ]
    for line in lines:
        console.out(line)
    return EXIT_OK if report.all_ok else EXIT_FAILED
