"""
The ``rungen`` command line: apps, jobs, batches from JSONL files, the emulator, the demo.

`main()` is the console script. It parses the arguments, then runs the command on an event
loop with `anyio.run`. `run()` is the same thing as a coroutine over a `Runtime`, which is
how tests drive the CLI in-process (on asyncio and trio) with captured streams.
"""

from __future__ import annotations

import argparse
import signal
import sys
import traceback
from collections.abc import Awaitable, Callable, Sequence

import anyio

from .._config import ENV_API_KEY
from .._exceptions import RunGenError
from ._output import Console
from ._parser import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    HelpShown,
    UsageError,
    build_parser,
    help_stream,
)
from ._runtime import Runtime, Session

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "EXIT_USAGE", "Runtime", "main", "run"]

Command = Callable[[Session], Awaitable[int]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``rungen`` with *argv* (default: ``sys.argv[1:]``); return the exit status."""
    runtime = Runtime()
    try:
        return anyio.run(run, list(sys.argv[1:] if argv is None else argv), runtime)
    except KeyboardInterrupt:  # a second Ctrl-C, or one before the handler was installed
        pass
    except BaseExceptionGroup as group:  # the same, raised inside a task group
        if group.subgroup(KeyboardInterrupt) is None:
            raise
    runtime.stderr.write("\nrungen: interrupted\n")
    return EXIT_INTERRUPTED


async def run(argv: Sequence[str], runtime: Runtime) -> int:
    """
    Run one ``rungen`` command line in the current event loop; return the exit status.

    SIGINT (Ctrl-C) and SIGTERM, or *runtime.stop* being set, cancel the command cleanly:
    a batch keeps its journal and results file consistent, and the status is 130.
    """
    console = Console(runtime.stdout, runtime.stderr, secrets=[runtime.env.get(ENV_API_KEY, "")])
    argv = list(argv)
    token = help_stream.set(runtime.stdout)
    try:
        if argv[:1] == ["batch"] and argv[1:2] in (["status"], ["export"]):
            argv = [f"batch-{argv[1]}", *argv[2:]]
        if argv[:1] == ["emulator"]:  # the emulator parses its own flags
            args = argparse.Namespace(command="emulator", emulator_args=list(argv[1:]))
        else:
            args = build_parser().parse_args(list(argv))
    except HelpShown as shown:
        return shown.status
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    finally:
        help_stream.reset(token)
    console.json_mode = bool(getattr(args, "json", False))
    console.add_secret(getattr(args, "api_key", None))
    session = Session(args, runtime, console)

    interrupted = False
    code = EXIT_INTERRUPTED
    async with anyio.create_task_group() as tg:
        scope = anyio.CancelScope()

        def interrupt() -> None:
            nonlocal interrupted
            if interrupted:  # a second Ctrl-C while cleaning up: stop at once
                raise KeyboardInterrupt
            interrupted = True
            scope.cancel()

        if runtime.handle_signals:
            tg.start_soon(_watch_signals, interrupt)
        if runtime.stop is not None:
            tg.start_soon(_watch_event, runtime.stop, interrupt)
        with scope:
            code = await _dispatch(session)
        tg.cancel_scope.cancel()
    if interrupted:
        if args.command == "emulator":
            return EXIT_OK  # Ctrl-C is how a server is meant to end
        console.err("rungen: interrupted")
        return EXIT_INTERRUPTED
    return code


async def _watch_signals(interrupt: Callable[[], None]) -> None:
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                interrupt()
    except (NotImplementedError, ValueError, RuntimeError):  # no signals here: not fatal
        return


async def _watch_event(stop: anyio.Event, interrupt: Callable[[], None]) -> None:
    await stop.wait()
    interrupt()


def _commands() -> dict[str, Command]:
    from ._apps import run_apps
    from ._batch import run_batch
    from ._demo import run_demo, run_emulator
    from ._jobs import run_jobs
    from ._journal import run_batch_export, run_batch_status

    return {
        "apps": run_apps,
        "jobs": run_jobs,
        "batch": run_batch,
        "batch-status": run_batch_status,
        "batch-export": run_batch_export,
        "emulator": run_emulator,
        "demo": run_demo,
    }


async def _dispatch(session: Session) -> int:
    console = session.console
    try:
        return await _commands()[session.args.command](session)
    except UsageError as exc:
        console.error(str(exc))
        return EXIT_USAGE
    except RunGenError as exc:
        console.error(str(exc))
        return EXIT_FAILED
    except (ValueError, TypeError) as exc:  # the SDK refused an argument before sending
        console.error(str(exc))
        return EXIT_USAGE
    except OSError as exc:  # a file the command reads or writes
        where = f": {exc.filename}" if exc.filename else ""
        console.error(f"{exc.strerror or exc}{where}")
        return EXIT_USAGE
    except BaseExceptionGroup as group:
        errors, rest = group.split(RunGenError)
        if rest is not None or errors is None:
            raise
        for leaf in _leaves(errors):
            console.error(str(leaf))
        return EXIT_FAILED
    except Exception:  # a bug: show it, with any secret masked
        console.err(traceback.format_exc().rstrip())
        return EXIT_FAILED


def _leaves(group: BaseExceptionGroup[RunGenError]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for exc in group.exceptions:
        leaves.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return leaves
