"""Fixtures shared by the core database tests (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import Database, new_id
from twinengine.core.models import runs, steps

#: a CWL-like job object exercising every JSON type, nesting and non-ASCII text
JOB_ORDER: dict[str, Any] = {
    "reads": {"class": "File", "location": "file:///data/r1.fastq", "size": 12},
    "threshold": 0.125,
    "iterations": 3,
    "labels": ["α", "β", "雪", "🌊"],
    "enabled": True,
    "optional": None,
    "nested": {"a": [1, [2, {"b": False}]], "empty": {}, "none": []},
}


def as_utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes (UTC as stored); PostgreSQL returns aware ones."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def run_row(**overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(),
        "name": "noise-model",
        "workflow": "/workflows/main.cwl",
        "state": "queued",
        "created_at": datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def step_row(run_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": new_id(),
        "run_id": run_id,
        "name": "main/align",
        "state": "queued",
        "created_at": datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC),
    }
    row.update(overrides)
    return row


def check_round_trip(db: Database) -> None:
    """Insert a run and its steps with SQLAlchemy Core, read them back, update, cascade."""
    created = datetime(2025, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
    run = run_row(
        workflow_hash="ab" * 32,
        job_order=JOB_ORDER,
        inputs={"reads": {"class": "File", "path": "/data/r1.fastq"}, "threshold": 0.125},
        options={"parallel": True, "cores": 4, "env": {"LANG": "C.UTF-8"}},
        created_at=created,
        executor="local",
        host="node-01",
        pid=4242,
    )
    step_rows = [
        step_row(
            run["id"],
            name=f"main/align/{i}",
            tool="#align",
            kind="CommandLineTool",
            cache_key=f"{i:064x}",
            inputs={"index": i},
            command_line=["bwa", "mem", "-t", "4", f"chunk {i}.fq"],
            peak_memory=5 * 2**32 + i,  # needs a 64-bit column
            wall_time=1.5 + i,
            created_at=created + timedelta(seconds=i),
        )
        for i in range(3)
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(runs), run)
        conn.execute(insert(steps), step_rows)

    with db.engine.connect() as conn:
        got = conn.execute(select(runs).where(runs.c.id == run["id"])).mappings().one()
        got_steps = (
            conn.execute(
                select(steps).where(steps.c.run_id == run["id"]).order_by(steps.c.created_at)
            )
            .mappings()
            .all()
        )
    assert got["job_order"] == JOB_ORDER
    assert got["inputs"] == run["inputs"]
    assert got["options"] == run["options"]
    assert got["outputs"] is None
    assert got["state"] == "queued"
    assert got["workflow_hash"] == "ab" * 32
    assert got["pid"] == 4242
    assert as_utc(got["created_at"]) == created
    assert got["started_at"] is None
    assert got["cancel_requested"] is False  # column default
    assert got["attempt"] == 1  # column default
    assert [s["id"] for s in got_steps] == [s["id"] for s in step_rows]
    for want, have in zip(step_rows, got_steps, strict=True):
        assert have["command_line"] == want["command_line"]
        assert have["inputs"] == want["inputs"]
        assert have["peak_memory"] == want["peak_memory"]
        assert have["wall_time"] == pytest.approx(want["wall_time"])
        assert have["attempt"] == 1
        assert as_utc(have["created_at"]) == want["created_at"]

    ended = created + timedelta(minutes=5)
    outputs = {"bam": {"class": "File", "location": "store://runs/x/out.bam", "checksum": None}}
    with db.engine.begin() as conn:
        conn.execute(
            update(runs)
            .where(runs.c.id == run["id"])
            .values(state="succeeded", outputs=outputs, ended_at=ended, exit_code=0)
        )
    with db.engine.connect() as conn:
        got = conn.execute(select(runs).where(runs.c.id == run["id"])).mappings().one()
    assert got["state"] == "succeeded"
    assert got["outputs"] == outputs
    assert as_utc(got["ended_at"]) == ended
    assert got["exit_code"] == 0

    # steps must belong to an existing run …
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(steps), step_row("no-such-run"))
    # … and go away with it
    with db.engine.begin() as conn:
        conn.execute(delete(runs).where(runs.c.id == run["id"]))
    with db.engine.connect() as conn:
        left = conn.execute(select(steps.c.id).where(steps.c.run_id == run["id"])).all()
    assert left == []


@pytest.fixture
def round_trip() -> Callable[[Database], None]:
    """``round_trip(db)`` checks that runs and steps rows survive a trip through ``db``."""
    return check_round_trip


@pytest.fixture
def make_run() -> Callable[..., dict[str, Any]]:
    """``make_run(**overrides)``: the values of a minimal valid ``runs`` row."""
    return run_row


@pytest.fixture
def make_step() -> Callable[..., dict[str, Any]]:
    """``make_step(run_id, **overrides)``: the values of a minimal valid ``steps`` row."""
    return step_row
