"""
``python -m rungen_async.emulator``: serve a local RunGen API with uvicorn.

Binds 127.0.0.1:8080 by default and prints the demo API key. ``--help`` lists the flags.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._config import ENV_API_KEY, ENV_BASE_URL, ENV_TEAM_ID, ENV_USER_ID
from ._accounts import DEMO_API_KEY, DEMO_USER_NAME, Accounts
from ._asgi import EmulatorASGI
from ._emulator import Emulator
from ._faults import FaultConfig
from ._server import bind_socket, uvicorn_config


def _parser(
    prog: str = "python -m rungen_async.emulator",
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    """The emulator's flags; ``rungen emulator`` passes its own name and parser class."""
    parser = parser_class(
        prog=prog,
        description="Serve a local emulation of the RunGen.AI API.",
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    add("--port", type=int, default=8080, help="port to bind, 0 for any (default: %(default)s)")
    add("--config", metavar="FILE", help="JSON file of users and teams (see the README)")
    add("--api-key", default=DEMO_API_KEY, help="the demo user's API key (default: %(default)s)")
    add(
        "--user",
        action="append",
        default=[],
        metavar="NAME=KEY",
        help="add a user with an API key (repeatable)",
    )
    add(
        "--team",
        action="append",
        default=[],
        metavar="NAME=USER:ROLE,...",
        help="add a team, e.g. acme=demo:OWNER,bob:MEMBER (repeatable)",
    )
    add("--warmup", type=float, default=5.0, help="seconds an app stays INITIALIZING")
    add("--job-duration", type=float, default=3.0, help="seconds per job on a STANDARD worker")
    add("--variants", choices=("reference", "alternate", "mixed"), default="reference")
    add("--seed", type=int, help="make ids (and the mixed variants) reproducible")
    add("--max-workers", type=int, default=64, help="largest allowed active_workers")
    add(
        "--no-idempotency",
        dest="idempotency_keys",
        action="store_false",
        help="ignore Idempotency-Key headers, as the documented API does (every POST runs)",
    )
    faults = parser.add_argument_group("fault injection (rates are fractions, 0 to 1)")
    add = faults.add_argument
    add("--fault-429", type=float, default=0.0, metavar="RATE", help="answer 429")
    add("--retry-after", type=float, default=1.0, metavar="SECONDS", help="Retry-After on a 429")
    add("--fault-5xx", type=float, default=0.0, metavar="RATE", help="answer a 5xx")
    add("--fault-5xx-status", type=int, default=503, metavar="STATUS")
    add("--fault-drop", type=float, default=0.0, metavar="RATE", help="drop before handling")
    add("--fault-drop-after", type=float, default=0.0, metavar="RATE", help="handle, then drop")
    add("--fault-slow", type=float, default=0.0, metavar="RATE", help="answer late")
    add("--slow-seconds", type=float, default=1.0, metavar="SECONDS", help="added latency")
    add("--rate-limit", type=float, metavar="RPS", help="requests per second per API key")
    add(
        "--fault-route",
        action="append",
        default=[],
        metavar="PATTERN",
        help='only fault matching routes, e.g. "POST /app/*/run_async" (repeatable)',
    )
    add("--fault-seed", type=int, default=0, help="seed of the random faults")
    parser.add_argument("--log-level", default="info", help="uvicorn's log level")
    return parser


def build_emulator(args: argparse.Namespace) -> Emulator:
    """Build the emulator the parsed command line describes."""
    config: dict[str, Any] = {"users": [], "teams": []}
    if args.config:
        config = json.loads(Path(args.config).read_text(encoding="utf-8"))
        config.setdefault("users", [])
        config.setdefault("teams", [])
    for spec in args.user:
        name, _, key = spec.partition("=")
        if not name or not key:
            raise ValueError(f"--user {spec!r} must look like NAME=KEY")
        config["users"].append({"name": name, "api_key": key})
    for spec in args.team:
        name, _, members = spec.partition("=")
        roles = dict(member.partition(":")[::2] for member in members.split(",") if member)
        if not name or not all(roles.values()):
            raise ValueError(f"--team {spec!r} must look like NAME=USER:ROLE,USER:ROLE")
        config["teams"].append({"name": name, "members": roles})
    accounts = Accounts.from_dict(config, demo_api_key=args.api_key)
    faults = FaultConfig(
        rate_429=args.fault_429,
        retry_after=args.retry_after,
        rate_5xx=args.fault_5xx,
        status_5xx=args.fault_5xx_status,
        rate_drop=args.fault_drop,
        rate_drop_after=args.fault_drop_after,
        rate_slow=args.fault_slow,
        slow_seconds=args.slow_seconds,
        rate_limit=args.rate_limit,
        routes=tuple(args.fault_route),
        seed=args.fault_seed,
    )
    return Emulator(
        accounts=accounts,
        warmup=args.warmup,
        job_duration=args.job_duration,
        variants=args.variants,
        seed=args.seed,
        faults=faults,
        max_workers=args.max_workers,
        idempotency_keys=args.idempotency_keys,
    )


def banner(emulator: Emulator, base_url: str, demo_key: str | None) -> str:
    """
    What to use with the emulator: the key, user id and team id, and ``export`` lines.

    The only key shown is the demo user's (*demo_key*; None when the demo user is not
    there): the keys of users from ``--user`` or ``--config`` are theirs to know.
    """
    users = list(emulator.accounts.users.values())
    demo = next((user for user in users if user.name == DEMO_USER_NAME), None)
    team = next(iter(emulator.accounts.teams.values()), None)
    if demo is not None:
        team = next((t for t in emulator.accounts.teams.values() if demo.id in t.members), team)
    key = demo_key if demo is not None and demo_key is not None else "<your user's key>"
    lines = [f"RunGen emulator listening on {base_url}"]
    if demo is not None:
        lines.append(f"  API key: {key} (user {demo.name})")
        lines.append(f"  user id: {demo.id}")
    if team is not None:
        lines.append(f"  team id: {team.id} (team {team.name}; omit it for the personal context)")
    lines.extend(f"  user {user.name}: id {user.id}" for user in users if user is not demo)
    lines.extend(
        f"  team {other.name}: id {other.id}"
        for other in emulator.accounts.teams.values()
        if other is not team
    )
    lines.append("Paste into your shell to point rungen and the SDK at it:")
    lines.append(f"  export {ENV_API_KEY}={shlex.quote(key)}")
    lines.append(f"  export {ENV_BASE_URL}={shlex.quote(base_url)}")
    if demo is not None:
        lines.append(f"  export {ENV_USER_ID}={demo.id}")
    if team is not None:
        # commented out: pasted as is, the block acts in the personal context
        lines.append(f"  # export {ENV_TEAM_ID}={team.id}  (to act in team {team.name})")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until interrupted; return the exit status."""
    args = _parser().parse_args(argv)
    try:
        import uvicorn
    except ImportError:
        sys.stderr.write("the emulator needs uvicorn: pip install 'rungen-async[emulator]'\n")
        return 2
    try:
        emulator = build_emulator(args)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sock = bind_socket(args.host, args.port)
    host, port = sock.getsockname()[:2]
    base_url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    sys.stdout.write(banner(emulator, base_url, args.api_key))
    sys.stdout.flush()
    logging.getLogger("rungen_async.emulator").setLevel(args.log_level.upper())
    server = uvicorn.Server(
        uvicorn_config(EmulatorASGI(emulator), log_level=args.log_level, access_log=True)
    )
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
