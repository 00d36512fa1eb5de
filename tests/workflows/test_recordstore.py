"""Run records written through sqlite3 read back exactly as those written by SQLAlchemy."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import select

from twinengine.core import get_database, get_settings, models
from twinengine.core.columns import HEAD_REVISION, RUN_COLUMNS, STEP_COLUMNS
from twinengine.workflows.records import RunRecorder
from twinengine.workflows.recordstore import (
    SqlAlchemyRecordStore,
    SqliteRecordStore,
    open_record_store,
    sqlite_file,
)

JOB = {"reads": {"class": "File", "location": "file:///d/r1.fq"}, "labels": ["α", "雪"], "n": None}


def test_columns_module_matches_the_models() -> None:
    assert tuple(c.name for c in models.runs.columns) == RUN_COLUMNS
    assert tuple(c.name for c in models.steps.columns) == STEP_COLUMNS
    from twinengine.core.columns import BOOLEAN_COLUMNS, DATETIME_COLUMNS, JSON_COLUMNS

    written = ("runs", "steps", "prov_documents", "prov_elements", "prov_relations", "prov_members")
    for table in (models.metadata.tables[name] for name in written):  # the record store's
        for column in table.columns:
            kind = type(column.type).__name__
            assert (column.name in JSON_COLUMNS) == (kind == "JSON"), column.name
            assert (column.name in DATETIME_COLUMNS) == (kind == "DateTime"), column.name
            assert (column.name in BOOLEAN_COLUMNS) == (kind == "Boolean"), column.name


def record(store, run_id: str) -> None:
    """One run's life: created, started, steps queued/running/finished, resumed, finished."""
    rec = RunRecorder.create_run(
        store,
        run_id=run_id,
        name="wf.cwl",
        workflow="/w/wf.cwl",
        workflow_hash="ab" * 32,
        job_order=JOB,
        outdir="/o",
        work_dir="/w/runs/x",
        executor="local",
        options={"argv": ["--quiet"], "cache": False},
    )
    rec.run_started(JOB, resumed=False)
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC)
    for i in range(3):
        rec.step(f"{run_id}-s{i}", name=f"wf/step[{i}]", state="queued", created_at=when,
                 inputs={"i": i}, cache_key=f"{i:064x}")  # fmt: skip
    rec.flush()
    for i in range(3):
        rec.step(f"{run_id}-s{i}", state="running", started_at=when, command_line=["echo", i])
        state = "succeeded" if i < 2 else "failed"
        rec.step(f"{run_id}-s{i}", state=state, ended_at=when, exit_code=i, wall_time=0.5,
                 peak_memory=5 * 2**32, outputs={"out": i} if i < 2 else None)  # fmt: skip
    rec.flush()
    assert not rec.cancel_requested()
    rec.run_finished(rec_state("failed"), error="final process status is permanentFail")
    rec.run_started(JOB, resumed=True)
    rec.run_finished(rec_state("succeeded"), outputs={"out": [1, 2]})


def rec_state(name: str):
    from twinengine.core import State

    return State(name)


def rows(db, table, run_id: str) -> list[dict]:
    key = table.c.id if table is models.runs else table.c.run_id
    with db.engine.connect() as conn:
        found = conn.execute(select(table).where(key == run_id).order_by(table.c.id))
        return [dict(r._mapping) for r in found]


def test_sqlite3_and_sqlalchemy_write_the_same_rows() -> None:
    db = get_database()
    path = sqlite_file(get_settings().database_url)
    assert path is not None
    fast = open_record_store(get_settings())
    assert isinstance(fast, SqliteRecordStore)
    record(fast, "runfast")
    record(SqlAlchemyRecordStore(db), "runslow")
    for table in (models.runs, models.steps):
        a, b = rows(db, table, "runfast"), rows(db, table, "runslow")
        assert len(a) == len(b) > 0
        for left, right in zip(a, b, strict=True):
            for column in ("id", "run_id", "created_at", "started_at", "ended_at", "pid"):
                left.pop(column, None), right.pop(column, None)
            assert left == right
    with sqlite3.connect(path) as raw:  # stored as SQLAlchemy stores them, byte for byte
        shapes = raw.execute(
            "SELECT typeof(outputs), typeof(created_at), typeof(cancel_requested), attempt"
            " FROM runs ORDER BY id"
        ).fetchall()
    assert shapes == [("text", "text", "integer", 2)] * 2
    fast.close()


def test_reuse_queries_agree() -> None:
    db = get_database()
    fast = open_record_store(get_settings())
    slow = SqlAlchemyRecordStore(db)
    record(fast, "runfast")
    for store in (fast, slow):
        assert store.step_ids("runfast") == {"runfast-s0", "runfast-s1", "runfast-s2"}
        assert store.succeeded_steps("runfast") == {
            f"{0:064x}": {"id": "runfast-s0", "outputs": {"out": 0}},
            f"{1:064x}": {"id": "runfast-s1", "outputs": {"out": 1}},
        }
        assert store.lookup_cache(f"{1:064x}") == {"id": "runfast-s1", "outputs": {"out": 1}}
        assert store.lookup_cache(f"{2:064x}") is None  # failed: not reusable
    fast.close()


def test_a_new_or_older_database_goes_through_sqlalchemy(tmp_path: Path) -> None:
    settings = get_settings()
    path = Path(sqlite_file(settings.database_url))
    assert not path.exists()
    assert isinstance(open_record_store(settings), SqlAlchemyRecordStore)  # creates it
    assert isinstance(open_record_store(settings), SqliteRecordStore)
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE alembic_version SET version_num = 'older'")
    assert HEAD_REVISION != "older"
    assert isinstance(open_record_store(settings), SqlAlchemyRecordStore)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////abs/twin.db", "/abs/twin.db"),
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:////abs/twin.db?timeout=3", None),
        ("postgresql://localhost/twin", None),
    ],
)
def test_sqlite_file(url: str, path: str | None) -> None:
    assert sqlite_file(url) == path
