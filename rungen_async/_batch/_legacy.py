"""
Journals of rungen-async 0.1 (JSON lines), read once and converted into the SQLite journal.

Events::

    {"event": "batch", "version": 1, "batch_id": ..., "app_id": ...}
    {"event": "submitting", "i": 7, "key": "<batch_id>:7", "digest": "<input hash>"}
    {"event": "submitted", "i": 7, "job_id": ...}
    {"event": "finished", "i": 7, "kind": "COMPLETED", "job": {...}, "error": null}
    {"event": "abandoned", "i": 7, "job_id": ...}
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_SQLITE_MAGIC = b"SQLite format 3\x00"


def is_legacy(path: Path) -> bool:
    """Whether *path* holds a JSON-lines journal (not SQLite, not empty, not missing)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return False
    return bool(head) and head != _SQLITE_MAGIC and head.lstrip()[:1] == b"{"


class Legacy:
    """The last state of each item in a JSON-lines journal (the whole file is read)."""

    def __init__(self, app_id: str | None, batch_id: str) -> None:
        self.app_id = app_id
        self.batch_id = batch_id
        self.items: dict[int, dict[str, Any]] = {}

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """``(idx, generation, state, key, digest, job_id, kind, job, error)`` per item."""
        for index, item in sorted(self.items.items()):
            job = item.get("job")
            yield (
                index,
                item.get("generation", 0),
                item["state"],
                item.get("key") or f"{self.batch_id}:{index}",
                item.get("digest", ""),
                item.get("job_id"),
                item.get("kind"),
                None if job is None else json.dumps(job, separators=(",", ":")),
                item.get("error"),
            )


def read_legacy(path: Path) -> Legacy:
    """Read a JSON-lines journal; a line torn by a crash is skipped.

    Raises:
        ValueError: The file has no batch header, so it is not a journal.
    """
    legacy: Legacy | None = None
    with path.open("rb") as file:
        for line in file:
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the torn tail of a killed run
            if not isinstance(event, dict):
                continue
            if event.get("event") == "batch":
                legacy = legacy or Legacy(event.get("app_id"), str(event.get("batch_id")))
            elif legacy is not None and isinstance(event.get("i"), int):
                _apply(legacy.items.setdefault(event["i"], {"state": "submitting"}), event)
    if legacy is None:
        raise ValueError(f"{str(path)!r} has no journal header: it is not a batch journal")
    return legacy


def _apply(item: dict[str, Any], event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "submitting":
        if item["state"] in ("submitting", "abandoned"):
            item.update(state="submitting", key=event.get("key"), digest=event.get("digest", ""))
    elif kind == "submitted" and item["state"] != "finished":
        item.update(state="submitted", job_id=event.get("job_id"))
    elif kind == "finished" and item["state"] != "finished":
        ambiguous = event.get("kind") == "AMBIGUOUS"
        item.update(
            state="submitting" if ambiguous else "finished",
            kind=event.get("kind"),
            job=event.get("job"),
            error=event.get("error"),
        )
    elif kind == "abandoned":
        item.update(state="abandoned", generation=item.get("generation", 0) + 1, kind=None)
