"""The batch journal: SQLite rows read back safely, one writer, old journals converted."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from rungen_async import (
    JournalLockedError,
    export_results,
    journal_items,
    read_journal,
)
from rungen_async._batch import _journal
from rungen_async._batch._journal import Journal, input_digest

_DONE = {"kind": "COMPLETED", "job": {"id": "job-0", "status": "COMPLETED"}, "error": None}


def _states(path: Path) -> dict[int, str]:
    return {item.index: item.state for item in journal_items(path, which="all")}


def test_reopened_journal_knows_each_items_state(tmp_path: Path) -> None:
    """Finished, submitted and never-confirmed items are told apart; the batch id is kept."""
    path = tmp_path / "j"
    first = Journal(path, app_id="app", batch_id=None)
    for index in range(3):
        first.record_submitting(index, {"i": index})
    first.record_submitted(0, "job-0")
    first.record_submitted(1, "job-1")
    first.record_finished(0, _DONE)
    first.close()

    second = Journal(path, app_id="app", batch_id=None)
    states = [second.state(index) for index in range(4)]
    second.close()

    assert second.batch_id == first.batch_id
    assert [s.state if s else None for s in states] == [
        "finished",
        "submitted",
        "submitting",
        None,
    ]
    assert states[1] is not None
    assert states[1].job_id == "job-1"
    assert states[2] is not None
    assert states[2].unconfirmed
    assert states[2].key == f"{first.batch_id}:2"
    assert states[2].digest == input_digest({"i": 2})


def test_a_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    """While one Journal holds the file, opening it again fails and says who holds it."""
    path = tmp_path / "j"
    holder = Journal(path, app_id="app", batch_id=None)
    with pytest.raises(JournalLockedError) as caught:
        Journal(path, app_id="app", batch_id=None)
    holder.close()
    Journal(path, app_id="app", batch_id=None).close()  # free again once closed

    message = str(caught.value)
    assert f"process {os.getpid()}" in message
    assert str(path) in message
    assert "wait for that run to finish, or stop it" in message
    assert caught.value.pid == os.getpid()


def test_a_killed_holder_frees_the_journal(tmp_path: Path) -> None:
    """The lock dies with its process: after SIGKILL the journal opens at once."""
    path = tmp_path / "j"
    code = (
        "import sys\n"
        "from rungen_async._batch._journal import Journal\n"
        f"journal = Journal({str(path)!r}, app_id='app', batch_id='b')\n"
        "journal.record_submitting(0, {'i': 0})\n"
        "journal.record_submitted(0, 'job-0')\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "held\n"
            with pytest.raises(JournalLockedError, match=f"process {child.pid}"):
                Journal(path, app_id="app", batch_id=None)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)

    reopened = Journal(path, app_id="app", batch_id=None)
    item = reopened.state(0)
    reopened.close()
    assert item is not None
    assert item.job_id == "job-0"


def test_abandoned_items_get_a_fresh_key(tmp_path: Path) -> None:
    """An item whose job a stop cancelled is submitted again under a new key."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(0, {"i": 0})
    journal.record_submitted(0, "job-0")
    journal.record_abandoned(0, "job-0")
    key = journal.key(0)
    journal.record_submitting(0, {"i": 0})
    journal.close()

    assert key == "b:0:1"
    assert _states(path) == {0: "submitting"}
    assert next(journal_items(path)).key == "b:0:1"


def test_ambiguous_outcomes_stay_unconfirmed_with_their_key(tmp_path: Path) -> None:
    """An AMBIGUOUS outcome was never confirmed: the journal keeps it as such, key and cause."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(2, {"i": 2})
    journal.record_finished(2, {"kind": "AMBIGUOUS", "job": None, "error": "connection lost"})
    journal.close()

    (item,) = journal_items(path)
    assert (item.state, item.key, item.error) == ("submitting", "b:2", "connection lost")
    assert read_journal(path).counts == {"unconfirmed": 1}


def test_journal_of_another_app_is_refused(tmp_path: Path) -> None:
    """A journal belongs to one app's batch."""
    path = tmp_path / "j"
    Journal(path, app_id="app-a", batch_id=None).close()

    with pytest.raises(ValueError, match="belongs to a batch on app 'app-a'"):
        Journal(path, app_id="app-b", batch_id=None)


def test_a_file_that_is_not_a_journal_is_refused_clearly(tmp_path: Path) -> None:
    """Pointing the journal at some other file says so instead of corrupting it."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database, not JSON\n" * 100)

    with pytest.raises(ValueError, match="is not a rungen-async journal"):
        Journal(path, app_id="app", batch_id=None)
    assert path.read_text().startswith("not a database")


def test_an_old_json_lines_journal_is_converted(tmp_path: Path) -> None:
    """A 0.1 journal is read once into SQLite (torn last line skipped), kept as .v1.jsonl."""
    path = tmp_path / "j"
    events = [
        {"event": "batch", "version": 1, "batch_id": "b", "app_id": "app"},
        {"event": "submitting", "i": 0, "key": "b:0", "digest": "d0"},
        {"event": "submitted", "i": 0, "job_id": "job-0"},
        {"event": "finished", "i": 0, **_DONE},
        {"event": "submitting", "i": 1, "key": "b:1", "digest": "d1"},
        {"event": "submitted", "i": 1, "job_id": "job-1"},
        {"event": "submitting", "i": 2, "key": "b:2", "digest": "d2"},
        {"event": "submitting", "i": 3, "key": "b:3", "digest": "d3"},
        {"event": "submitted", "i": 3, "job_id": "job-3"},
        {"event": "abandoned", "i": 3, "job_id": "job-3"},
    ]
    text = "".join(json.dumps(event) + "\n" for event in events) + '{"event": "subm'
    path.write_text(text)

    journal = Journal(path, app_id="app", batch_id=None)
    fresh_key = journal.key(3)
    journal.close()

    assert journal.batch_id == "b"
    assert _states(path) == {0: "finished", 1: "submitted", 2: "submitting", 3: "abandoned"}
    assert fresh_key == "b:3:1"
    assert (tmp_path / "j.v1.jsonl").read_text() == text
    old = tmp_path / "k"
    old.write_text(json.dumps(events[0]) + "\n")
    with pytest.raises(ValueError, match=r"belongs to a batch on app 'app', not 'other'"):
        Journal(old, app_id="other", batch_id=None)


def test_status_and_export_read_a_journal(tmp_path: Path) -> None:
    """read_journal counts per outcome and state; export_results writes finished items."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    for index in range(4):
        journal.record_submitting(index, {"i": index})
    journal.record_submitted(0, "job-0")
    journal.record_finished(0, _DONE)
    journal.record_submitted(1, "job-1")
    journal.record_finished(2, {"kind": "FAILED", "job": None, "error": "out of memory"})
    status = read_journal(path)  # while the writer holds it
    journal.close()
    out = io.StringIO()
    written = export_results(path, out)

    assert status.counts == {"COMPLETED": 1, "running": 1, "FAILED": 1, "unconfirmed": 1}
    assert (status.journaled, status.left, status.last_index) == (4, 2, 3)
    assert status.app_id == "app"
    assert status.batch_id == "b"
    assert [item.index for item in journal_items(path)] == [1, 3]
    assert written == 2
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(line["index"], line["kind"]) for line in lines] == [(0, "COMPLETED"), (2, "FAILED")]
    assert lines[1]["error"] == "out of memory"


def test_status_of_an_old_journal_says_how_to_convert_it(tmp_path: Path) -> None:
    """Asking an unconverted 0.1 journal for its status gives a message saying what to do."""
    path = tmp_path / "j"
    path.write_text('{"event": "batch", "version": 1, "batch_id": "b", "app_id": "app"}\n')

    with pytest.raises(ValueError, match="--resume"):
        read_journal(path)
    with pytest.raises(FileNotFoundError, match="no journal"):
        read_journal(tmp_path / "missing")


def test_resume_reads_the_journal_a_chunk_at_a_time(tmp_path: Path) -> None:
    """Streaming: walking 10,000 items holds at most one chunk of rows in memory."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    for index in range(10_000):
        journal.record_finished(index, _DONE)
    journal.close()

    reopened = Journal(path, app_id="app", batch_id=None)
    sizes = set()
    for index in range(10_000):
        assert reopened.state(index) is not None
        sizes.add(len(reopened._chunk))
    reopened.close()

    assert max(sizes) == _journal._CHUNK < 10_000
