"""What the benchmarks ran on, recorded next to every result."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from typing import Any

_PACKAGES = ("httpx", "httpcore", "aiohttp", "anyio", "attrs", "cattrs")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def describe_machine(*, client_cpu: int | None, server_cpu: int | None) -> dict[str, Any]:
    """CPU, core count, pinning, Python and library versions, and the load before the run."""
    return {
        "cpu_model": _cpu_model(),
        "nproc": os.cpu_count(),
        "client_cpu": client_cpu,
        "server_cpu": server_cpu,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "loadavg_before": os.getloadavg(),
    }
