"""
The batch journal: an SQLite database (stdlib `sqlite3`, WAL), one row per item.

A batch killed at any moment (even ``kill -9``) and run again with the same journal and
inputs skips finished items, re-attaches to submitted jobs by id, and does not send again an
item whose submit was in flight when it died: the RunGen API documents no idempotency, so
that item is reported AMBIGUOUS with its key unless the caller asks to resend it
(``resend_unconfirmed=True``). The journal holds ids, keys, statuses and results, never the
API key. Only one run may write a journal at a time (`JournalLock`).

Durability: every state change is its own transaction, committed before the engine acts on
it (a submit's job id is committed before the job is polled or reported). WAL with
``synchronous=NORMAL`` keeps committed transactions through a crash or kill of the process;
an operating-system crash or power loss may lose the last ones (``durable=True`` on `Journal`
sets ``synchronous=FULL``: an fsync per commit).

An item's ``state``: ``submitting`` (sent, not confirmed), ``submitted`` (a job id),
``finished`` (an outcome), ``abandoned`` (its job was cancelled by a stop: submitted again
by the next run under a new key, since the old key names the cancelled job).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from pathlib import Path
from typing import Any

from attrs import frozen

from ._legacy import Legacy, is_legacy, read_legacy
from ._lock import JournalLock

SCHEMA_VERSION = 2
_CHUNK = 2048  # rows read at once while the inputs are streamed past the journal

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    batch TEXT NOT NULL,
    idx INTEGER NOT NULL,
    state TEXT NOT NULL,
    key TEXT NOT NULL,
    digest TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 0,
    job_id TEXT,
    kind TEXT,
    job TEXT,
    error TEXT,
    PRIMARY KEY (batch, idx)
) WITHOUT ROWID;
"""


def input_digest(value: object) -> str:
    """A short stable hash of a job input, to notice inputs that changed between runs."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@frozen
class JournalItem:
    """What a journal knows of one item (`journal_items`).

    ``state`` is ``submitting`` (sent, no job id confirmed), ``submitted`` (job ``job_id``
    exists, not finished when last seen), ``finished`` (outcome ``kind``, with ``job`` and
    ``error``) or ``abandoned`` (cancelled by a stop, to be submitted again).
    """

    index: int
    state: str
    key: str
    digest: str
    job_id: str | None
    kind: str | None
    job: dict[str, Any] | None
    error: str | None

    @property
    def unconfirmed(self) -> bool:
        """Sent, but no job id came back: the API may or may not have created the job."""
        return self.state == "submitting"


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """Open journal *path* (refusing a file that is not a journal with a clear message)."""
    if read_only:
        if not path.exists():
            raise FileNotFoundError(f"no journal at {str(path)!r}")
        if is_legacy(path):
            raise ValueError(
                f"{str(path)!r} is a JSON-lines journal of rungen-async 0.1: run the batch "
                "again with --resume (or run_batch(journal=...)) to convert it, then ask again"
            )
    # Readers open it read-write too: a WAL database needs its -shm file, which a reader
    # may have to create once the writer is gone. Only the lock holder writes items.
    uri = f"{path.resolve().as_uri()}?mode={'rw' if read_only else 'rwc'}"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA) if not read_only else None
        db.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise ValueError(
            f"{str(path)!r} is not a rungen-async journal ({exc}): pass another journal path"
        ) from None
    return db


def row_state(row: tuple[Any, ...]) -> JournalItem:
    """A `JournalItem` from a row of ``SELECT {COLUMNS}``."""
    index, state, key, digest, job_id, kind, job, error = row
    return JournalItem(
        index, state, key, digest, job_id, kind, json.loads(job) if job else None, error
    )


COLUMNS = "idx, state, key, digest, job_id, kind, job, error"


class Journal:
    """
    An open, locked journal, read in chunks as the batch streams its inputs past it.

    Args:
        resend_unconfirmed: Send again (under their keys) the items whose submit was never
            confirmed, instead of reporting them AMBIGUOUS. Safe only where the API honours
            ``Idempotency-Key``; the RunGen API documents none.
        durable: ``synchronous=FULL``: also survive an operating-system crash or power loss.

    Raises:
        JournalLockedError: Another run holds the journal.
        ValueError: The journal is another app's or batch's, or not a journal.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        app_id: str,
        batch_id: str | None,
        resend_unconfirmed: bool = False,
        durable: bool = False,
    ) -> None:
        self.path = Path(path)
        self.resend_unconfirmed = resend_unconfirmed
        self._lock = JournalLock(self.path)
        try:
            legacy = read_legacy(self.path) if is_legacy(self.path) else None
            if legacy is not None:
                _check_batch(self.path, legacy.app_id, legacy.batch_id, app_id, batch_id)
                self.path.rename(self.path.with_name(self.path.name + ".v1.jsonl"))
            self._db = connect(self.path)
            self._db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
            meta = dict(self._db.execute("SELECT name, value FROM meta").fetchall())
            if meta:
                _check_batch(self.path, meta.get("app_id"), meta.get("batch_id"), app_id, batch_id)
                self.batch_id: str = meta["batch_id"]
            else:
                self.batch_id = legacy.batch_id if legacy else batch_id or uuid.uuid4().hex
                self._create(app_id, legacy)
        except BaseException:
            self._lock.release()
            raise
        self._chunk_start = -1
        self._chunk: dict[int, JournalItem] = {}

    def _create(self, app_id: str, legacy: Legacy | None) -> None:
        db = self._db
        db.execute("BEGIN")
        try:
            db.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("version", str(SCHEMA_VERSION)), ("app_id", app_id), ("batch_id", self.batch_id)],
            )
            if legacy is not None:
                db.executemany(
                    "INSERT INTO items (batch, idx, generation, state, key, digest, job_id, kind,"
                    " job, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(self.batch_id, *row) for row in legacy.rows()],
                )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- reading -------------------------------------------------------------------------

    def state(self, index: int) -> JournalItem | None:
        """What an earlier run left of item *index* (read a chunk at a time, in order)."""
        start = index - index % _CHUNK
        if start != self._chunk_start:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM items WHERE batch = ? AND idx >= ? AND idx < ?",
                (self.batch_id, start, start + _CHUNK),
            ).fetchall()
            self._chunk = {row[0]: row_state(row) for row in rows}
            self._chunk_start = start
        return self._chunk.get(index)

    def check_input(self, index: int, value: object) -> None:
        """Refuse to resume when item *index* is not the input the journal saw."""
        known = self._chunk.get(index) if self._chunk_start >= 0 else self.state(index)
        if index // _CHUNK * _CHUNK != self._chunk_start:
            known = self.state(index)
        if known is not None and known.digest and known.digest != input_digest(value):
            raise ValueError(
                f"input {index} differs from the one journaled in {str(self.path)!r}: resume "
                "with the same inputs, or start a new journal"
            )

    def key(self, index: int) -> str:
        """The idempotency key of item *index*: the same on every run, until abandoned."""
        row = self._db.execute(
            "SELECT state, key, generation FROM items WHERE batch = ? AND idx = ?",
            (self.batch_id, index),
        ).fetchone()
        if row is None:
            return f"{self.batch_id}:{index}"
        state, key, generation = row
        if state == "abandoned":
            return f"{self.batch_id}:{index}:{generation}"
        return str(key)

    # -- writing (each call one committed transaction) -------------------------------------

    def record_submitting(self, index: int, value: object) -> None:
        """Note, before sending, that item *index* is about to be submitted."""
        key = self.key(index)
        self._db.execute(
            "INSERT INTO items (batch, idx, state, key, digest) VALUES (?, ?, 'submitting', ?, ?)"
            " ON CONFLICT (batch, idx) DO UPDATE SET state = 'submitting', key = excluded.key,"
            " digest = excluded.digest, job_id = NULL, kind = NULL, job = NULL, error = NULL",
            (self.batch_id, index, key, input_digest(value)),
        )

    def record_submitted(self, index: int, job_id: str) -> None:
        """Note that item *index* became job *job_id*."""
        self._update(index, "state = 'submitted', job_id = ?, kind = NULL, error = NULL", (job_id,))

    def record_finished(self, index: int, event: dict[str, Any]) -> None:
        """Note item *index*'s outcome; an AMBIGUOUS one stays unconfirmed (``submitting``)."""
        kind = event.get("kind")
        job = event.get("job")
        state = "submitting" if kind == "AMBIGUOUS" else "finished"
        self._db.execute(
            "INSERT INTO items (batch, idx, state, key, kind, job, error, job_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (batch, idx) DO UPDATE SET"
            " state = excluded.state, kind = excluded.kind, job = excluded.job,"
            " error = excluded.error, job_id = coalesce(excluded.job_id, items.job_id)",
            (
                self.batch_id,
                index,
                state,
                self.key(index),
                kind,
                None if job is None else json.dumps(job, separators=(",", ":"), default=str),
                event.get("error"),
                job.get("id") if isinstance(job, dict) else None,
            ),
        )

    def record_abandoned(self, index: int, job_id: str) -> None:
        """Note that item *index*'s job *job_id* was cancelled by a stop, to be redone."""
        self._update(
            index,
            "state = 'abandoned', generation = generation + 1, job_id = ?, kind = NULL",
            (job_id,),
        )

    def _update(self, index: int, assignments: str, values: tuple[Any, ...]) -> None:
        self._db.execute(
            f"UPDATE items SET {assignments} WHERE batch = ? AND idx = ?",
            (*values, self.batch_id, index),
        )

    def left_running(self, job_ids: list[str]) -> None:
        """
        Note the jobs a stopped run left running remotely (cancelled nothing, or failed to).

        Their items stay "submitted": a resumed run re-attaches to them by id, and
        ``rungen jobs cancel --journal`` finds them (`journal_items`).
        """
        # Nothing to write: "submitted" rows are exactly the jobs not known to be finished.

    def close(self) -> None:
        """Close the database and free the lock."""
        self._db.close()
        self._lock.release()


def _check_batch(
    path: Path, found_app: str | None, found_batch: str | None, app_id: str, batch_id: str | None
) -> None:
    if found_app != app_id:
        raise ValueError(
            f"journal {str(path)!r} belongs to a batch on app {found_app!r}, not {app_id!r}: "
            "use another journal path"
        )
    if batch_id is not None and batch_id != found_batch:
        raise ValueError(f"journal {str(path)!r} is for batch {found_batch!r}, not {batch_id!r}")
