"""
The batch command's files: the JSONL inputs (checked before anything is sent) and the JSONL
results, written one line per outcome as it arrives and read back on ``--resume``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from attrs import frozen

from ._output import dumps
from ._parser import UsageError

#: Malformed lines listed in full before the rest are only counted.
MAX_REPORTED = 20


@frozen
class InputLine:
    """One job input and the line of the file it came from (1-based)."""

    line: int
    value: dict[str, Any]


def parse_inputs(path: Path) -> list[InputLine]:
    """
    Read a JSONL file of job inputs; blank lines are skipped.

    Raises:
        UsageError: The file cannot be read, holds no input, or has malformed lines (all
            of them are reported, with their line numbers).
    """
    try:
        with path.open("rb") as stream:
            raw_lines = stream.read().splitlines()
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    inputs: list[InputLine] = []
    problems: list[str] = []
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw)
        except UnicodeDecodeError:
            problems.append(f"{path}:{number}: not UTF-8 text")
            continue
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{number}: not valid JSON: {_json_problem(exc)}")
            continue
        if not isinstance(value, dict):
            problems.append(f"{path}:{number}: expected a JSON object, got {type(value).__name__}")
            continue
        inputs.append(InputLine(number, value))
    if problems:
        shown = problems[:MAX_REPORTED]
        if len(problems) > MAX_REPORTED:
            shown.append(f"... and {len(problems) - MAX_REPORTED} more malformed lines")
        count = len(problems)
        shown.append(f"{count} malformed line{'s' if count > 1 else ''}; nothing was submitted")
        raise UsageError("\n".join(shown))
    if not inputs:
        raise UsageError(f"{path} holds no inputs (one JSON object per line)")
    return inputs


def read_results(path: Path) -> dict[int, dict[str, Any]]:
    """
    Read the results an earlier run wrote, by input index.

    A line cut short by a crash, or anything else that is not a result object, is dropped:
    that item's outcome is written again.
    """
    records: dict[int, dict[str, Any]] = {}
    try:
        with path.open("rb") as stream:
            raw_lines = stream.read().splitlines()
    except FileNotFoundError:
        return records
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    for raw in raw_lines:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict) and type(record.get("index")) is int:
            records[record["index"]] = record
    return records


class ResultsWriter:
    """
    Appends one JSON line per outcome and flushes it, so a crash loses at most one line.

    Writes are small and synchronous on purpose: the line is on disk before the next outcome
    is taken, which is what makes ``--resume`` exact.
    """

    def __init__(self, path: Path, previous: dict[int, dict[str, Any]]) -> None:
        self.path = path
        self.written: set[int] = set(previous)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Rewrite what survived the last run cleanly, then carry on appending.
        self._stream: IO[str] = path.open("w", encoding="utf-8")
        for index in sorted(previous):
            self._stream.write(dumps(previous[index]) + "\n")
        self._stream.flush()

    def write(self, record: dict[str, Any]) -> bool:
        """Append *record* unless its ``index`` is already written; say whether it was."""
        if not self.claim(record["index"]):
            return False
        self.append(record)
        return True

    def claim(self, index: int) -> bool:
        """Reserve item *index*'s line (written later by `append`); False if it has one."""
        if index in self.written:
            return False
        self.written.add(index)
        return True

    def append(self, record: dict[str, Any]) -> None:
        """Append *record* (its index claimed) and flush it."""
        self._stream.write(dumps(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Close the file."""
        self._stream.close()


def _json_problem(exc: json.JSONDecodeError) -> str:
    """The decoder's message, said plainly where a trailing comma caused it."""
    doc, pos = exc.doc, exc.pos
    before = doc[:pos].rstrip()
    if doc[pos : pos + 1] in ("}", "]") and before.endswith(","):
        return f"trailing comma at column {len(before)} (JSON allows none before }} or ]): {exc}"
    return str(exc)
