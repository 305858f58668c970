"""The batch journal: what an earlier run left behind, read back safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rungen_async._batch._journal import Journal, input_digest


def test_new_journal_writes_a_header_and_events(tmp_path: Path) -> None:
    """A fresh journal starts with its batch header; each event is one JSON line."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(0, {"prompt": "x"})
    journal.record_submitted(0, "job-0")
    journal.close()

    lines = [json.loads(line) for line in path.read_text().splitlines()]

    assert lines[0] == {"event": "batch", "version": 1, "batch_id": "b", "app_id": "app"}
    assert lines[1] == {
        "event": "submitting",
        "i": 0,
        "key": "b:0",
        "digest": input_digest({"prompt": "x"}),
    }
    assert lines[2] == {"event": "submitted", "i": 0, "job_id": "job-0"}


def test_reopened_journal_knows_each_items_state(tmp_path: Path) -> None:
    """Finished, submitted and never-confirmed items are told apart; the batch id is kept."""
    path = tmp_path / "j"
    first = Journal(path, app_id="app", batch_id=None)
    for index in range(3):
        first.record_submitting(index, {"i": index})
    first.record_submitted(0, "job-0")
    first.record_submitted(1, "job-1")
    first.record_finished(0, {"kind": "COMPLETED", "job": None, "error": None})
    first.close()

    second = Journal(path, app_id="app", batch_id=None)
    second.close()

    assert second.batch_id == first.batch_id
    assert set(second.finished) == {0}
    assert second.submitted == {1: "job-1"}
    assert set(second.submitting) == {2}
    assert second.key(2) == f"{first.batch_id}:2"


def test_torn_last_line_is_ignored_and_closed(tmp_path: Path) -> None:
    """A line cut short by a crash is skipped, and the next event starts on its own line."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(0, {"i": 0})
    journal.close()
    with path.open("a") as file:
        file.write('{"event": "submitted", "i": 0, "job_')

    reopened = Journal(path, app_id="app", batch_id=None)
    reopened.record_submitted(0, "job-0")
    reopened.close()
    again = Journal(path, app_id="app", batch_id=None)
    again.close()

    assert again.submitted == {0: "job-0"}


def test_abandoned_items_get_a_fresh_key(tmp_path: Path) -> None:
    """An item cancelled by a stop is redone under a new key, not its cancelled job's."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(4, {"i": 4})
    journal.record_submitted(4, "job-4")
    journal.record_abandoned(4, "job-4")
    journal.close()

    reopened = Journal(path, app_id="app", batch_id=None)
    reopened.close()

    assert reopened.submitted == {}
    assert reopened.key(4) == "b:4:1"


def test_journal_of_another_app_is_refused(tmp_path: Path) -> None:
    """Resuming a journal against another app is an error that says so."""
    path = tmp_path / "j"
    Journal(path, app_id="app-a", batch_id=None).close()

    with pytest.raises(ValueError, match="belongs to a batch on app 'app-a'"):
        Journal(path, app_id="app-b", batch_id=None)


def test_ambiguous_items_are_sent_again_under_their_key(tmp_path: Path) -> None:
    """An AMBIGUOUS outcome was never confirmed, so a resumed run re-sends it (same key)."""
    path = tmp_path / "j"
    journal = Journal(path, app_id="app", batch_id="b")
    journal.record_submitting(2, {"i": 2})
    journal.record_finished(2, {"kind": "AMBIGUOUS", "job": None, "error": "lost"})
    journal.close()

    reopened = Journal(path, app_id="app", batch_id=None)
    reopened.close()

    assert reopened.finished == {}
    assert 2 in reopened.submitting
    assert reopened.key(2) == "b:2"
