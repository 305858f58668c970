"""The CLI's building blocks: tables, JSON, masking, the input file, durations."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rungen_async import Job, JobStatus
from rungen_async._cli._files import MAX_REPORTED, ResultsWriter, parse_inputs, read_results
from rungen_async._cli._output import Console, format_table, to_json
from rungen_async._cli._parser import UsageError
from rungen_async._cli._progress import format_duration


def test_format_table_aligns_columns() -> None:
    """Columns are as wide as their widest cell; None shows as a dash."""
    table = format_table(("ID", "NAME"), [("a1", None), ("b22", "long name")])

    assert table.splitlines() == ["ID   NAME", "a1   -", "b22  long name"]


def test_to_json_handles_models() -> None:
    """Models become dicts, enums their value, datetimes ISO strings."""
    job = Job(id="j1", status=JobStatus.COMPLETED, created_at=datetime(2025, 1, 1, tzinfo=UTC))

    data = to_json(job)

    assert data["status"] == "COMPLETED"
    assert data["created_at"] == "2025-01-01T00:00:00+00:00"
    json.dumps(data)


def test_console_masks_secrets() -> None:
    """Every secret is replaced by *** on both streams."""
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err, secrets=["s3cret-key"])

    console.out("key=s3cret-key")
    console.error("bad s3cret-key!")

    assert out.getvalue() == "key=***\n"
    assert err.getvalue() == "rungen: error: bad ***!\n"


def test_parse_inputs_skips_blank_lines_and_keeps_line_numbers(tmp_path: Path) -> None:
    """Blank lines are skipped; each input remembers its line."""
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "a"}\n\n  \n{"prompt": "b"}\n')

    inputs = parse_inputs(path)

    assert [(item.line, item.value["prompt"]) for item in inputs] == [(1, "a"), (4, "b")]


def test_parse_inputs_reports_every_malformed_line(tmp_path: Path) -> None:
    """Each bad line is named with its number, and nothing is returned."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"prompt": "a"}\n{"prompt": \n[1, 2]\n"text"\n\xff\xfe\n{"ok": 1}\n')

    with pytest.raises(UsageError) as caught:
        parse_inputs(path)

    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f"{path}:2: not valid JSON")
    assert lines[1] == f"{path}:3: expected a JSON object, got list"
    assert lines[2] == f"{path}:4: expected a JSON object, got str"
    assert lines[3].startswith(f"{path}:5: ")
    assert lines[-1] == "4 malformed lines; nothing was submitted"


def test_parse_inputs_caps_the_list(tmp_path: Path) -> None:
    """Past MAX_REPORTED bad lines the rest are only counted."""
    path = tmp_path / "in.jsonl"
    path.write_text("nope\n" * (MAX_REPORTED + 5))

    with pytest.raises(UsageError) as caught:
        parse_inputs(path)

    lines = str(caught.value).splitlines()
    assert len(lines) == MAX_REPORTED + 2
    assert lines[-2] == "... and 5 more malformed lines"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(None, "cannot read", id="missing"),
        pytest.param("\n\n", "holds no inputs", id="empty"),
    ],
)
def test_parse_inputs_unreadable_or_empty(
    tmp_path: Path, content: str | None, message: str
) -> None:
    """A missing or empty file is a usage error."""
    path = tmp_path / "in.jsonl"
    if content is not None:
        path.write_text(content)

    with pytest.raises(UsageError, match=message):
        parse_inputs(path)


def test_results_survive_a_torn_last_line(tmp_path: Path) -> None:
    """read_results drops a line cut short; the writer rewrites the rest and skips repeats."""
    path = tmp_path / "out.jsonl"
    path.write_text('{"index": 0, "status": "COMPLETED"}\n{"index": 1, "sta')

    previous = read_results(path)
    writer = ResultsWriter(path, previous)
    wrote_again = writer.write({"index": 0, "status": "COMPLETED"})
    wrote_new = writer.write({"index": 1, "status": "FAILED"})
    writer.close()

    assert list(previous) == [0]
    assert (wrote_again, wrote_new) == (False, True)
    assert [json.loads(line)["index"] for line in path.read_text().splitlines()] == [0, 1]


def test_format_duration() -> None:
    """Minutes and seconds, hours only when needed."""
    assert [format_duration(s) for s in (0, 65, 3725)] == ["0:00", "1:05", "1:02:05"]
