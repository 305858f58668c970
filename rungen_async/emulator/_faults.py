"""
Fault injection: random and scripted 429s, 5xx, dropped connections, slow responses, and a
per-key rate limit.

Random faults are deterministic under a seed: the n-th eligible request draws from
``Random(f"{seed}:{n}")``, so the same sequence of requests meets the same faults whatever
else happened in between. Faults only ever hit the API routes, never ``/_emulator/...``.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal

from attrs import asdict, define, field, frozen

from ._http import DropMode, EmulatorResponse, error_response

FaultKind = Literal["status", "drop", "drop_after", "connect", "slow"]


def _strings(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


def _rate(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"a fault rate must be between 0 and 1, not {value!r}")
    return float(value)


@frozen(kw_only=True)
class FaultConfig:
    """Random faults and the rate limit; every rate is a fraction of eligible requests.

    Args:
        rate_429: Answer 429 with ``Retry-After: retry_after``.
        rate_5xx: Answer *status_5xx*.
        rate_drop: Drop the connection without handling the request.
        rate_drop_after: Handle the request, then drop the connection instead of answering
            (the case ``Idempotency-Key`` exists for).
        rate_slow: Answer *slow_seconds* late.
        rate_limit: Requests per second allowed per API key (burst: one second's worth);
            beyond it, 429 with the seconds until the next slot in ``Retry-After``.
        routes: Where random faults apply: ``fnmatch`` patterns on ``"METHOD /path"`` (or on
            the path alone when the pattern starts with ``/``), e.g.
            ``"POST /app/*/run_async"``. Empty means every API route.
    """

    rate_429: float = field(default=0.0, converter=_rate)
    retry_after: float = 1.0
    rate_5xx: float = field(default=0.0, converter=_rate)
    status_5xx: int = 503
    rate_drop: float = field(default=0.0, converter=_rate)
    rate_drop_after: float = field(default=0.0, converter=_rate)
    rate_slow: float = field(default=0.0, converter=_rate)
    slow_seconds: float = 1.0
    rate_limit: float | None = None
    routes: tuple[str, ...] = field(default=(), converter=_strings)
    seed: int = 0

    def __attrs_post_init__(self) -> None:
        if self.rate_429 + self.rate_5xx + self.rate_drop + self.rate_drop_after > 1.0:
            raise ValueError("rate_429 + rate_5xx + rate_drop + rate_drop_after exceeds 1")
        if not 500 <= self.status_5xx <= 599:
            raise ValueError(f"status_5xx must be a 5xx status, not {self.status_5xx}")
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError("rate_limit must be positive requests per second")
        if self.retry_after < 0 or self.slow_seconds < 0:
            raise ValueError("retry_after and slow_seconds cannot be negative")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FaultConfig:
        """Build from JSON (the admin endpoint's body); raise `ValueError` naming a bad field."""
        unknown = set(data) - _FIELDS
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(sorted(unknown))}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        """The settings as JSON."""
        settings = asdict(self)
        settings["routes"] = list(self.routes)
        return settings

    @property
    def is_active(self) -> bool:
        """Whether any random fault can happen."""
        rates = (self.rate_429, self.rate_5xx, self.rate_drop, self.rate_drop_after)
        return any(rates) or self.rate_slow > 0

    def matches(self, method: str, path: str) -> bool:
        """Whether random faults apply to *method* *path*."""
        return route_matches(self.routes, method, path)


_FIELDS = frozenset(attribute.name for attribute in FaultConfig.__attrs_attrs__)


def route_matches(patterns: tuple[str, ...], method: str, path: str) -> bool:
    """Whether ``METHOD /path`` matches any of *patterns* (none given: everything matches)."""
    if not patterns:
        return True
    target = f"{method} {path}"
    return any(fnmatchcase(path if p.startswith("/") else target, p) for p in patterns)


@define(kw_only=True)
class ScriptedFault:
    """A fault for the next *count* requests matching *routes*, before any random fault."""

    kind: FaultKind
    count: int = 1
    status: int = 500
    retry_after: float | None = None
    seconds: float = 0.0
    routes: tuple[str, ...] = field(default=(), converter=_strings)


@frozen
class Fault:
    """What the injector decided for one request."""

    name: str  # for stats: "429", "503", "drop", "drop_after", "connect", "slow", "rate_limit"
    response: EmulatorResponse | None = None  # answer this instead of handling the request
    delay: float = 0.0
    drop_after: bool = False


def _status_response(status: int, retry_after: float | None) -> EmulatorResponse:
    headers: tuple[tuple[str, str], ...] = ()
    if retry_after is not None:
        headers = (("retry-after", str(math.ceil(retry_after))),)
    if status == 429:
        return error_response(429, "too many requests (injected fault)", headers=headers)
    return error_response(status, f"injected fault: HTTP {status}", headers=headers)


def _dropped(mode: DropMode) -> EmulatorResponse:
    return EmulatorResponse(status=0, drop=mode)


class FaultInjector:
    """Decide, request by request, which fault (if any) to inject."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self.config = config or FaultConfig()
        self.scripted: list[ScriptedFault] = []
        self._eligible = 0
        self._buckets: dict[str, tuple[float, float]] = {}  # key digest -> (tokens, time)

    def configure(self, config: FaultConfig) -> None:
        """Replace the random-fault settings and restart their sequence and the rate limit."""
        self.config, self._eligible = config, 0
        self._buckets.clear()

    def decide(self, method: str, path: str, api_key: str | None, now: float) -> Fault | None:
        """Return the fault for this request, or `None` to handle it normally."""
        for scripted in self.scripted:
            if route_matches(scripted.routes, method, path):
                scripted.count -= 1
                if scripted.count <= 0:
                    self.scripted.remove(scripted)
                return _from_script(scripted)
        limited = self._rate_limited(api_key, now)
        if limited is not None:
            return limited
        config = self.config
        if not config.is_active or not config.matches(method, path):
            return None
        self._eligible += 1
        draw = random.Random(f"{config.seed}:{self._eligible}")
        roll, slow = draw.random(), draw.random() < config.rate_slow
        delay = config.slow_seconds if slow else 0.0
        if roll < config.rate_429:
            return Fault("429", _status_response(429, config.retry_after), delay)
        roll -= config.rate_429
        if roll < config.rate_5xx:
            status = config.status_5xx
            # A 503 with Retry-After tells a client the request was not carried out.
            retry_after = config.retry_after if status == 503 else None
            return Fault(str(status), _status_response(status, retry_after), delay)
        roll -= config.rate_5xx
        if roll < config.rate_drop:
            return Fault("drop", _dropped("before"), delay)
        roll -= config.rate_drop
        if roll < config.rate_drop_after:
            return Fault("drop_after", delay=delay, drop_after=True)
        return Fault("slow", delay=delay) if slow else None

    def _rate_limited(self, api_key: str | None, now: float) -> Fault | None:
        limit = self.config.rate_limit
        if limit is None:
            return None
        # Keep a digest, not the key: the emulator never stores API keys it is sent.
        digest = hashlib.sha256((api_key or "").encode()).hexdigest()
        tokens, then = self._buckets.get(digest, (max(1.0, limit), now))
        tokens = min(max(1.0, limit), tokens + (now - then) * limit)
        if tokens >= 1.0:
            self._buckets[digest] = (tokens - 1.0, now)
            return None
        self._buckets[digest] = (tokens, now)
        wait = (1.0 - tokens) / limit
        response = error_response(
            429,
            f"rate limit of {limit:g} requests per second exceeded",
            headers=(("retry-after", str(max(1, math.ceil(wait)))),),
        )
        return Fault("rate_limit", response)


def _from_script(scripted: ScriptedFault) -> Fault:
    if scripted.kind == "status":
        retry_after = scripted.retry_after
        if retry_after is None and scripted.status == 429:
            retry_after = 0.0
        return Fault(str(scripted.status), _status_response(scripted.status, retry_after))
    if scripted.kind == "slow":
        return Fault("slow", delay=scripted.seconds)
    if scripted.kind == "drop_after":
        return Fault("drop_after", delay=scripted.seconds, drop_after=True)
    mode: DropMode = "connect" if scripted.kind == "connect" else "before"
    return Fault(scripted.kind, _dropped(mode), delay=scripted.seconds)
