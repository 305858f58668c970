"""Asking a journal what happened and what is left, while its batch runs or after it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Literal

from attrs import frozen

from ._journal import COLUMNS, JournalItem, connect, row_state

#: How `JournalStatus.counts` names the items that need no more work, by outcome kind.
LEFT_STATES = ("submitted", "submitting", "abandoned")


@frozen
class JournalStatus:
    """
    Counts of a journal's items (`read_journal`).

    Attributes:
        counts: Items per outcome kind (``COMPLETED``, ``FAILED``, ...) for finished items,
            and per state for the rest: ``running`` (a job id, not finished when last seen),
            ``unconfirmed`` (sent, no job id: reported AMBIGUOUS on resume), ``abandoned``
            (cancelled by a stop; submitted again on resume).
        journaled: Items the journal holds; inputs past ``last_index`` were never read.
    """

    path: str
    app_id: str
    batch_id: str
    counts: Mapping[str, int]
    journaled: int
    last_index: int | None

    @property
    def left(self) -> int:
        """Journaled items that are not finished: running, unconfirmed or abandoned."""
        return sum(self.counts.get(name, 0) for name in ("running", "unconfirmed", "abandoned"))

    def __repr__(self) -> str:
        counts = ", ".join(f"{name}={count}" for name, count in sorted(self.counts.items()))
        return f"<JournalStatus {self.path!r} batch={self.batch_id} {counts or 'empty'}>"


_STATE_NAMES = {"submitted": "running", "submitting": "unconfirmed", "abandoned": "abandoned"}


def read_journal(path: str | os.PathLike[str]) -> JournalStatus:
    """
    Count a journal's items by outcome and state; safe while its batch is running.

    Raises:
        FileNotFoundError: No journal there.
        ValueError: The file is not a journal (or an old JSON-lines one, not converted yet).
    """
    journal = Path(path)
    db = connect(journal, read_only=True)
    try:
        meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        counts: dict[str, int] = {}
        rows = db.execute("SELECT state, kind, count(*), max(idx) FROM items GROUP BY state, kind")
        last: int | None = None
        for state, kind, count, top in rows:
            name = kind if state == "finished" else _STATE_NAMES.get(state, state)
            counts[name] = counts.get(name, 0) + count
            last = top if last is None else max(last, top)
    finally:
        db.close()
    return JournalStatus(
        path=str(journal),
        app_id=meta.get("app_id", ""),
        batch_id=meta.get("batch_id", ""),
        counts=counts,
        journaled=sum(counts.values()),
        last_index=last,
    )


def journal_items(
    path: str | os.PathLike[str], *, which: Literal["left", "finished", "all"] = "left"
) -> Iterator[JournalItem]:
    """Stream a journal's items in input order: those ``left`` (default), ``finished``, or all."""
    where = {
        "left": f"state IN {LEFT_STATES}",
        "finished": "state = 'finished'",
        "all": "1",
    }[which]
    db = connect(Path(path), read_only=True)
    try:
        for row in db.execute(f"SELECT {COLUMNS} FROM items WHERE {where} ORDER BY idx"):
            yield row_state(row)
    finally:
        db.close()


def export_results(path: str | os.PathLike[str], out: IO[str]) -> int:
    """Write each finished item as one JSON line (index, kind, job, error); return how many."""
    written = 0
    for item in journal_items(path, which="finished"):
        record = {"index": item.index, "kind": item.kind, "job": item.job, "error": item.error}
        out.write(json.dumps(record, separators=(",", ":")) + "\n")
        written += 1
    return written
