"""
The ``rungen`` argument parser: every command, its flags, and the exit codes.

argparse reports usage errors by printing and exiting; `Parser` raises `UsageError` instead,
so the caller decides where the message goes and which code to return.
"""

from __future__ import annotations

import argparse
from contextvars import ContextVar
from typing import TYPE_CHECKING, Final, NoReturn, TextIO

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_INTERRUPTED: Final = 130

GPU_TIERS: Final = ("BASIC", "STANDARD", "PERFORMANCE")

_EPILOG = """\
configuration: --api-key, --base-url and --team override $RUNGEN_API_KEY, $RUNGEN_BASE_URL and
$RUNGEN_TEAM_ID. Prefer the environment variable for the key: command lines are visible to
other users of the machine.

exit status: 0 everything succeeded; 1 a job or batch item failed, or the API refused a
request; 2 usage or input error (nothing was sent); 130 interrupted (Ctrl-C).
"""


class UsageError(Exception):
    """The command line or an input file is wrong; nothing was sent."""


class HelpShown(Exception):
    """``--help`` or ``--version`` printed its text; exit with *status*."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


#: Where ``--help`` and ``--version`` text goes (argparse would use ``sys.stdout``).
help_stream: ContextVar[TextIO | None] = ContextVar("help_stream", default=None)


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises instead of exiting the process."""

    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        stream = help_stream.get()
        super()._print_message(message, stream if stream is not None else file)

    def error(self, message: str) -> NoReturn:
        """Raise `UsageError` carrying the usage line and *message*."""
        raise UsageError(f"{message}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        """Raise `HelpShown` (argparse calls this after ``--help`` and ``--version``)."""
        if message:
            raise UsageError(message.strip())
        raise HelpShown(status)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be between 0 and 0.5, got {text}")
    return value


def _port(text: str) -> int:
    value = _non_negative_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {value}")
    return value


def _connection_options() -> Parser:
    common = Parser(add_help=False)
    group = common.add_argument_group("connection")
    group.add_argument("--api-key", metavar="KEY", help="API key (default: $RUNGEN_API_KEY)")
    group.add_argument("--base-url", metavar="URL", help="API base URL ($RUNGEN_BASE_URL)")
    group.add_argument("--team", metavar="TEAM_ID", help="act in this team ($RUNGEN_TEAM_ID)")
    common.add_argument("--json", action="store_true", help="print JSON for scripts")
    return common


def build_parser() -> Parser:
    """Return the parser of the whole ``rungen`` command line."""
    from .._version import __version__

    parser = Parser(
        prog="rungen",
        description="The RunGen.AI serverless-GPU API from the command line.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"rungen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = _connection_options()
    _add_apps(commands, common)
    _add_jobs(commands, common)
    _add_batch(commands, common)
    _add_batch_journal(commands, common)
    _add_emulator(commands)
    _add_demo(commands)
    return parser


Commands = argparse._SubParsersAction


def _add_apps(commands: Commands[Parser], common: Parser) -> None:
    apps = commands.add_parser("apps", help="list, create, change, start, stop, delete apps")
    verbs = apps.add_subparsers(dest="verb", metavar="VERB", required=True)
    verbs.add_parser("list", parents=[common], help="list the apps of this scope")
    for verb, text in (
        ("get", "show one app"),
        ("stop", "scale an app to zero workers"),
        ("delete", "delete a stopped app"),
    ):
        verbs.add_parser(verb, parents=[common], help=text).add_argument("app_id", metavar="APP")
    wait = verbs.add_parser("wait", parents=[common], help="wait until an app is RUNNING")
    wait.add_argument("app_id", metavar="APP")
    create = verbs.add_parser("create", parents=[common], help="create an app (it starts STOPPED)")
    create.add_argument("name")
    create.add_argument("--gpu-tier", required=True, choices=GPU_TIERS, type=str.upper)
    create.add_argument("--model-url", required=True, metavar="URL")
    create.add_argument("--description")
    create.add_argument("--workers", type=_non_negative_int, metavar="N", help="active workers")
    create.add_argument("--location")
    create.add_argument("--lora", action="append", metavar="JSON", help="a LoRA as JSON object")
    update = verbs.add_parser("update", parents=[common], help="change only the fields given")
    update.add_argument("app_id", metavar="APP")
    update.add_argument("--name")
    update.add_argument("--description")
    update.add_argument("--workers", type=_non_negative_int, metavar="N", help="active workers")
    update.add_argument("--model-url", metavar="URL")
    update.add_argument("--lora", action="append", metavar="JSON", help="a LoRA as JSON object")
    start = verbs.add_parser("start", parents=[common], help="scale an app up (billing starts)")
    start.add_argument("app_id", metavar="APP")
    start.add_argument("--workers", type=_positive_int, default=1, metavar="N")
    start.add_argument("--wait", action="store_true", help="then wait until it is RUNNING")


def _add_jobs(commands: Commands[Parser], common: Parser) -> None:
    jobs = commands.add_parser("jobs", help="submit, inspect, wait for, cancel jobs")
    verbs = jobs.add_subparsers(dest="verb", metavar="VERB", required=True)
    submit = verbs.add_parser("submit", parents=[common], help="queue one job")
    submit.add_argument("app_id", metavar="APP")
    submit.add_argument(
        "--input", required=True, metavar="JSON", help="the input object, @FILE, or - for stdin"
    )
    submit.add_argument("--wait", action="store_true", help="then wait for it to finish")
    get = verbs.add_parser("get", parents=[common], help="show a job's current state")
    get.add_argument("app_id", metavar="APP")
    get.add_argument("job_id", metavar="JOB")
    wait = verbs.add_parser("wait", parents=[common], help="wait for jobs to finish")
    wait.add_argument("app_id", metavar="APP")
    wait.add_argument("job_ids", metavar="JOB", nargs="+")
    wait.add_argument(
        "--deadline", type=_positive_float, metavar="SECONDS", help="give up after this long"
    )
    cancel = verbs.add_parser(
        "cancel",
        parents=[common],
        help="cancel a queued or running job (or every running job of a batch journal)",
        usage="rungen jobs cancel (APP JOB | --journal JOURNAL) [--user-id USER_ID] [options]",
    )
    cancel.add_argument("app_id", metavar="APP", nargs="?")
    cancel.add_argument("job_id", metavar="JOB", nargs="?")
    cancel.add_argument(
        "--journal", metavar="JOURNAL", help="cancel every job this batch journal lists as running"
    )
    cancel.add_argument("--user-id", help="X-Authenticated-User-Id ($RUNGEN_USER_ID)")


def _add_batch(commands: Commands[Parser], common: Parser) -> None:
    batch = commands.add_parser(
        "batch",
        parents=[common],
        help="run one job per line of a JSONL file",
        description="Run one job per input line, streaming outcomes to a JSONL results file.",
    )
    batch.add_argument("app_id", metavar="APP")
    batch.add_argument("inputs", metavar="INPUTS.jsonl", help="one JSON object per line")
    batch.add_argument("-o", "--output", required=True, metavar="RESULTS.jsonl")
    batch.add_argument("--resume", action="store_true", help="continue from the journal")
    batch.add_argument(
        "--resend-unconfirmed",
        action="store_true",
        help="with --resume: send again, under their idempotency keys, the items whose submit "
        "was in flight when the last run stopped (default: report them AMBIGUOUS, since the "
        "API documents no idempotency and a resend may bill twice)",
    )
    batch.add_argument(
        "--journal", metavar="PATH", help="journal file (default: RESULTS.jsonl.journal)"
    )
    batch.add_argument("--download", metavar="DIR", help="save output files here as jobs end")
    knobs = batch.add_argument_group("batch engine")
    knobs.add_argument("--concurrency", type=_positive_int, default=16, metavar="N",
                       help="submissions at once (default 16)")  # fmt: skip
    knobs.add_argument("--max-in-flight", type=_positive_int, default=1000, metavar="N",
                       help="submitted, unfinished jobs at most (default 1000)")  # fmt: skip
    knobs.add_argument("--poll-rate", type=_positive_float, default=100.0, metavar="PER_S",
                       help="status requests per second at most (default 100)")  # fmt: skip
    knobs.add_argument("--max-poll-rate", type=_positive_float, metavar="PER_S",
                       help="let the poll budget grow up to this while the API sends no "
                       "429 (default: it stays at --poll-rate)")  # fmt: skip
    knobs.add_argument("--job-deadline", type=_positive_float, metavar="SECONDS",
                       help="give up on a job after this long (it is TIMED_OUT)")  # fmt: skip
    knobs.add_argument("--cancel-on-interrupt", action="store_true",
                       help="on Ctrl-C cancel unfinished jobs (default: leave them "
                       "running for --resume)")  # fmt: skip
    batch.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_batch_journal(commands: Commands[Parser], common: Parser) -> None:
    # `run()` turns "batch status" and "batch export" into these two commands.
    status = commands.add_parser(
        "batch-status",
        parents=[common],
        prog="rungen batch status",
        help=argparse.SUPPRESS,
        description="Count a batch journal's items and list those not finished.",
    )
    status.add_argument("--journal", required=True, metavar="JOURNAL")
    status.add_argument("--counts-only", action="store_true", help="no list of what is left")
    export = commands.add_parser(
        "batch-export",
        parents=[common],
        prog="rungen batch export",
        help=argparse.SUPPRESS,
        description="Write a batch journal's finished items as JSON lines.",
    )
    export.add_argument("--journal", required=True, metavar="JOURNAL")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")


def _add_emulator(commands: Commands[Parser]) -> None:
    # `run()` hands everything after "emulator" to the emulator's own parser; this entry
    # only lists the command in ``rungen --help``.
    commands.add_parser(
        "emulator",
        add_help=False,
        help="serve the local RunGen emulator (flags: rungen emulator --help)",
    )


def _add_demo(commands: Commands[Parser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run a batch on an in-process emulator (no account, no network)",
        description="Start the emulator in-process, create and start an app, run a batch of "
        "generated prompts with injected faults, and download the images.",
    )
    demo.add_argument("--count", type=_positive_int, default=300, help="prompts (default 300)")
    demo.add_argument("--output", default="rungen-demo-output", metavar="DIR",
                      help="where the images go (default ./rungen-demo-output)")  # fmt: skip
    demo.add_argument("--fault-rate", type=_fraction, default=0.05, metavar="FRACTION",
                      help="share of 429/503 answers injected (default 0.05)")  # fmt: skip
    demo.add_argument("--job-duration", type=float, default=0.5, metavar="SECONDS",
                      help=argparse.SUPPRESS)  # fmt: skip
    demo.add_argument("--warmup", type=float, default=1.0, help=argparse.SUPPRESS)
    demo.add_argument("--workers", type=_positive_int, default=40, help=argparse.SUPPRESS)
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument("--json", action="store_true", help="print the summary as JSON")
