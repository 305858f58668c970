"""
One writer per journal: an OS lock on a sidecar file, freed by the OS when its process dies.

`flock` (POSIX) and `msvcrt.locking` (Windows) locks belong to the open file, so a process
killed with SIGKILL releases its journal at once, and a second `Batch` in the same process
is refused like a second process. The lock file holds who took it, for the error message.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .._exceptions import RunGenError


class JournalLockedError(RunGenError):
    """Another run holds this journal; nothing was sent.

    Two runs on one journal would submit the same items twice (the RunGen API documents
    no idempotency, so each duplicate is a second GPU bill). Wait for the other run to end,
    or stop it, then run again.
    """

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        pid = holder.get("pid")
        who = f"process {pid}" if pid else "another process"
        if holder.get("host"):
            who += f" on {holder['host']}"
        if holder.get("started"):
            who += f", running since {holder['started']}"
        stop = f" (for example `kill {pid}`)" if pid else ""
        super().__init__(
            f"journal {str(path)!r} is in use by {who}: wait for that run to finish, "
            f"or stop it{stop}, then run again"
        )
        self.path = path
        self.pid: int | None = pid if isinstance(pid, int) else None
        self.host: str | None = holder.get("host")


def lock_path(path: Path) -> Path:
    """The sidecar lock file of journal *path*."""
    return path.with_name(path.name + ".lock")


class JournalLock:
    """The held lock of one journal; `release()` (or the process ending) frees it."""

    def __init__(self, path: Path) -> None:
        self.path = lock_path(path)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock(fd)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise JournalLockedError(path, holder) from None
        self._fd = fd
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, json.dumps(holder).encode())

    def release(self) -> None:
        """Free the lock (the file stays: removing it would race with a waiting opener)."""
        if self._fd >= 0:
            os.close(self._fd)  # closing the file drops the lock
            self._fd = -1


def _read_holder(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        value = json.loads(os.read(fd, 4096) or b"{}")
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


if sys.platform == "win32":  # pragma: no cover - CI runs on Linux
    import msvcrt

    def _lock(fd: int) -> None:
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

else:
    import fcntl

    def _lock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
