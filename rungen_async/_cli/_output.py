"""
Everything the CLI writes: tables for people, JSON for scripts, errors on stderr.

The API key never reaches a stream: every write goes through `Console`, which masks each
secret it was given, so even an unexpected error message cannot leak it.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, TextIO

import attrs

MASK = "***"


def to_json(value: object) -> Any:
    """Turn models (attrs classes), enums and datetimes into plain JSON values."""
    cls = type(value)
    if attrs.has(cls):
        return {field.name: to_json(getattr(value, field.name)) for field in attrs.fields(cls)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    return value


def dumps(value: object, *, indent: int | None = None) -> str:
    """Serialise *value* as JSON, models included, keeping non-ASCII text readable."""
    return json.dumps(to_json(value), indent=indent, ensure_ascii=False)


def format_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Lay *rows* out in left-aligned columns under *headers*; None shows as ``-``."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [len(header) for header in headers]
    for row in cells:
        for column, text in enumerate(row):
            widths[column] = max(widths[column], len(text))
    lines = [headers, *cells]
    return "\n".join(
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def format_pairs(pairs: Iterable[tuple[str, object]]) -> str:
    """Lay out ``name: value`` lines with the values aligned."""
    items = [(name, _cell(value)) for name, value in pairs]
    width = max((len(name) for name, _ in items), default=0)
    return "\n".join(f"{name + ':':<{width + 1}} {value}" for name, value in items)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return dumps(value)
    return str(value)


class Console:
    """
    The CLI's two streams, with secrets masked on the way out.

    Args:
        json_mode: Whether results go out as JSON (``--json``) instead of tables.
        secrets: Strings (the API key) replaced by ``***`` wherever they would appear.
    """

    def __init__(
        self,
        stdout: TextIO,
        stderr: TextIO,
        *,
        json_mode: bool = False,
        secrets: Iterable[str] = (),
    ) -> None:
        self.stdout = stdout
        self.stderr = stderr
        self.json_mode = json_mode
        self._secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    def add_secret(self, secret: str | None) -> None:
        """Mask *secret* from now on (empty or very short strings are ignored)."""
        if secret and len(secret) >= 4 and secret not in self._secrets:
            self._secrets.append(secret)

    def unmask(self, public: str) -> None:
        """Stop masking *public* (a key meant to be shown, such as the emulator's demo key)."""
        if public in self._secrets:
            self._secrets.remove(public)

    def mask(self, text: str) -> str:
        """Return *text* with every secret replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        return text

    def out(self, text: str = "") -> None:
        """Write a line of output to stdout."""
        self._write(self.stdout, text + "\n")

    def err(self, text: str = "") -> None:
        """Write a line of diagnostics to stderr."""
        self._write(self.stderr, text + "\n")

    def raw_err(self, text: str) -> None:
        """Write *text* to stderr as is (the progress bar's ``\\r`` updates)."""
        self._write(self.stderr, text)

    def error(self, message: str) -> None:
        """Report an error on stderr as ``rungen: error: ...``."""
        self.err(f"rungen: error: {message}")

    def json(self, value: object) -> None:
        """Write *value* as indented JSON to stdout."""
        self.out(dumps(value, indent=2))

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
        """Write a table to stdout."""
        self.out(format_table(headers, rows))

    def pairs(self, pairs: Iterable[tuple[str, object]]) -> None:
        """Write aligned ``name: value`` lines to stdout."""
        self.out(format_pairs(pairs))

    def _write(self, stream: TextIO, text: str) -> None:
        stream.write(self.mask(text))
        stream.flush()
