"""Events stored and turned into runs in batches: several events of a source in one
transaction (a repeat among them sends each on its own), deliveries marked done with
their runs in one statement (never when one was taken meanwhile), and a folder source
handing a batch of settled files to an ``emit`` that takes several at once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import Recorder, running
from twinengine.events.base import Event, SourceState
from twinengine.events.queue import EventQueue, LostLease
from twinengine.events.sources.folder import FolderSource

TRIGGER = {"name": "t", "project": "default", "spec": {"source": "drop"}, "paused": False}


def event(key: str) -> Event:
    return Event(source="drop", key=key, version="1")


def test_several_events_in_one_transaction_and_a_repeat_among_them() -> None:
    queue = EventQueue()
    stored = queue.ingest_many([event("a"), event("b")], "default", [TRIGGER], claim=True)
    assert stored is not None and len(stored) == 2
    assert [rows[0]["state"] for _, rows in stored] == ["running", "running"]
    assert [rows[0]["body"]["key"] for _, rows in stored] == ["a", "b"]
    # "b" was stored: the batch stores nothing, and one by one only "c" is new
    assert queue.ingest_many([event("b"), event("c")], "default", [TRIGGER]) is None
    assert queue.ingest(event("b"), "default", [TRIGGER]) == (None, [])
    event_id, rows = queue.ingest(event("c"), "default", [TRIGGER])
    assert event_id is not None and len(rows) == 1
    found, total = queue.events(["default"])
    assert total == 3 and sorted(e["key"] for e in found) == ["a", "b", "c"]


def test_deliveries_marked_done_together_unless_one_was_taken() -> None:
    queue = EventQueue()
    stored = queue.ingest_many([event("a"), event("b")], "default", [TRIGGER], claim=True)
    assert stored is not None
    (_, [first]), (_, [second]) = stored
    with queue.db.engine.begin() as conn:
        queue.mark_done(conn, [([first["id"]], "run1", None), ([second["id"]], "run2", None)])
    assert queue.delivery(first["id"])["run_id"] == "run1"
    assert queue.delivery(second["id"])["state"] == "done"

    stored = queue.ingest_many([event("c"), event("d")], "default", [TRIGGER], claim=True)
    assert stored is not None
    (_, [third]), (_, [fourth]) = stored
    queue.mark([fourth["id"]], state="pending")  # no longer leased to this worker
    with pytest.raises(LostLease), queue.db.engine.begin() as conn:
        queue.mark_done(conn, [([third["id"]], "run3", None), ([fourth["id"]], "run4", None)])
    assert queue.delivery(third["id"])["state"] == "running"  # rolled back with the rest
    assert queue.delivery(fourth["id"])["run_id"] is None


class BatchRecorder(Recorder):
    """An ``emit`` that also takes several events at once, as the server's does."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[int] = []

    def many(self, events: list[Any]) -> None:
        self.batches.append(len(events))
        for item in events:
            self(item)


def test_a_folder_source_hands_settled_files_over_in_one_batch(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    for name in ("a.txt", "b.txt", "c.txt"):
        (root / name).write_text(name)
    state = SourceState(tmp_path / "state", "incoming")
    seen = BatchRecorder()
    source = FolderSource("incoming", {"path": str(root), "mode": "poll", "settle": 0.05}, state)
    with running(source, seen):
        seen.wait_for(3)
    assert sorted(seen.keys) == ["a.txt", "b.txt", "c.txt"]
    assert seen.batches == [3]  # found by the first scan, ready together
    assert set(state.load()["files"]) == {"a.txt", "b.txt", "c.txt"}  # all acknowledged
