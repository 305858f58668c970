"""
The batch journal: one JSON line per event, appended before and after each step.

A batch that is killed at any moment (even ``kill -9``) and run again with the same journal
and inputs skips finished items, re-attaches to submitted jobs by id, and re-sends only the
items never confirmed, under their original idempotency keys. The journal holds ids, keys,
statuses and results, never the API key.

Events::

    {"event": "batch", "version": 1, "batch_id": ..., "app_id": ...}
    {"event": "submitting", "i": 7, "key": "<batch_id>:7", "digest": "<input hash>"}
    {"event": "submitted", "i": 7, "job_id": ...}
    {"event": "finished", "i": 7, "kind": "COMPLETED", "job": {...}, "error": null}
    {"event": "abandoned", "i": 7, "job_id": ...}   (cancelled when a run was stopped)

An abandoned item is submitted again by the next run, under a new key (``<key>:<n>``),
since its old key would return the cancelled job.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Any

_VERSION = 1


def input_digest(value: object) -> str:
    """A short stable hash of a job input, to notice inputs that changed between runs."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class Journal:
    """
    An open journal file, with what an earlier run of the same batch left in it.

    Attributes:
        batch_id: The batch's id (read back from the file when resuming).
        finished: Index to its ``finished`` event, for items that need no more work.
        submitted: Index to job id, for items submitted but not finished.
        submitting: Index to input digest, for items whose submit was never confirmed.
    """

    def __init__(self, path: str | os.PathLike[str], *, app_id: str, batch_id: str | None) -> None:
        self.path = Path(path)
        self.finished: dict[int, dict[str, Any]] = {}
        self.submitted: dict[int, str] = {}
        self.submitting: dict[int, str] = {}
        self._generation: dict[int, int] = {}
        header = self._read()
        if header is not None:
            if header.get("app_id") != app_id:
                raise ValueError(
                    f"journal {str(self.path)!r} belongs to a batch on app "
                    f"{header.get('app_id')!r}, not {app_id!r}: use another journal path"
                )
            if batch_id is not None and batch_id != header.get("batch_id"):
                raise ValueError(
                    f"journal {str(self.path)!r} is for batch {header.get('batch_id')!r}, "
                    f"not {batch_id!r}"
                )
            self.batch_id: str = str(header["batch_id"])
        else:
            self.batch_id = batch_id or uuid.uuid4().hex
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if header is None:
            self._write(
                {"event": "batch", "version": _VERSION, "batch_id": self.batch_id, "app_id": app_id}
            )

    def _read(self) -> dict[str, Any] | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        if data and not data.endswith(b"\n"):
            # A write torn by a crash: end it, so the next event starts on a line of its own.
            with self.path.open("ab") as file:
                file.write(b"\n")
        header: dict[str, Any] | None = None
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # the torn tail of a killed run
            if not isinstance(event, dict):
                continue
            kind = event.get("event")
            if kind == "batch":
                header = header or event
                continue
            index = event.get("i")
            if not isinstance(index, int):
                continue
            if kind == "submitting":
                if index not in self.submitted and index not in self.finished:
                    self.submitting[index] = str(event.get("digest", ""))
            elif kind == "submitted":
                self.submitting.pop(index, None)
                if index not in self.finished:
                    self.submitted[index] = str(event["job_id"])
            elif kind == "finished" and event.get("kind") == "AMBIGUOUS":
                # Never confirmed: the next run re-sends it under the same key, and gets
                # the first job back if the lost attempt did go through.
                self.submitting.setdefault(index, "")
            elif kind == "finished":
                self.submitting.pop(index, None)
                self.submitted.pop(index, None)
                self.finished[index] = event
            elif kind == "abandoned":
                self.submitting.pop(index, None)
                self.submitted.pop(index, None)
                self._generation[index] = self._generation.get(index, 0) + 1
        return header

    def check_input(self, index: int, value: object) -> None:
        """Refuse to resume when item *index* is not the input the journal saw."""
        expected = self.submitting.get(index)
        if expected and expected != input_digest(value):
            raise ValueError(
                f"input {index} differs from the one journaled in {str(self.path)!r}: resume "
                "with the same inputs, or start a new journal"
            )

    def key(self, index: int) -> str:
        """The idempotency key of item *index*: the same on every run of this batch."""
        generation = self._generation.get(index)
        return f"{self.batch_id}:{index}" + (f":{generation}" if generation else "")

    def record_submitting(self, index: int, value: object) -> None:
        """Note, before sending, that item *index* is about to be submitted."""
        self._write(
            {
                "event": "submitting",
                "i": index,
                "key": self.key(index),
                "digest": input_digest(value),
            }
        )

    def record_submitted(self, index: int, job_id: str) -> None:
        """Note that item *index* became job *job_id*."""
        self._write({"event": "submitted", "i": index, "job_id": job_id})

    def record_abandoned(self, index: int, job_id: str) -> None:
        """Note that item *index*'s job *job_id* was cancelled by a stop, to be redone."""
        self._write({"event": "abandoned", "i": index, "job_id": job_id})

    def record_finished(self, index: int, event: dict[str, Any]) -> None:
        """Note that item *index* needs no more work."""
        self._write({"event": "finished", "i": index, **event})

    def _write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, separators=(",", ":"), default=str) + "\n"
        # One unbuffered append per event: what os.write returned survives a kill -9.
        os.write(self._fd, line.encode())

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
