"""The core tables: runs and steps rows written and read with SQLAlchemy Core on SQLite."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, insert, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import Database, open_database
from twinengine.core.models import metadata, runs, steps

MakeRow = Callable[..., dict[str, Any]]


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return open_database(f"sqlite:///{tmp_path / 'twin.db'}")


def test_metadata_holds_runs_steps_and_provenance() -> None:
    assert set(metadata.tables) == {
        "runs",
        "steps",
        "prov_documents",
        "prov_elements",
        "prov_relations",
        "prov_members",
        "users",
        "tokens",
        "projects",
        "memberships",
        "workflows",
        "uploads",
        "event_sources",
        "triggers",
        "events",
        "deliveries",
        "functions",
        "function_calls",
        "notifications",
        "subscriptions",
    }
    assert [c.name for c in runs.primary_key] == ["id"]
    assert [c.name for c in steps.primary_key] == ["id"]
    (fk,) = steps.c.run_id.foreign_keys
    assert fk.column is runs.c.id
    assert fk.ondelete == "CASCADE"


@pytest.mark.parametrize(
    ("table", "columns"),
    [
        (runs, {"job_order", "inputs", "outputs", "options"}),
        (steps, {"inputs", "outputs", "command_line"}),
    ],
)
def test_json_columns(table, columns: set[str]) -> None:
    assert {c.name for c in table.columns if isinstance(c.type, JSON)} == columns


def test_round_trip_of_runs_and_steps(db: Database, round_trip) -> None:
    round_trip(db)


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        "just a string",
        42,
        3.5,
        True,
        [{"class": "Directory", "listing": [{"class": "File", "basename": "ä ö.txt"}]}],
        {"deep": {"er": {"est": [None, 1, "two", 3.0, False]}}},
        {"quote": 'he said "hi"\n\ttab', "backslash": "C:\\data"},
    ],
    ids=repr,
)
def test_json_values_round_trip(db: Database, make_run: MakeRow, value: Any) -> None:
    row = make_run(outputs=value)
    with db.engine.begin() as conn:
        conn.execute(insert(runs), row)
    with db.engine.connect() as conn:
        assert conn.execute(select(runs.c.outputs).where(runs.c.id == row["id"])).scalar() == value


def test_json_column_update_replaces_the_value(db: Database, make_run: MakeRow) -> None:
    row = make_run(options={"a": 1, "b": 2})
    with db.engine.begin() as conn:
        conn.execute(insert(runs), row)
        conn.execute(update(runs).where(runs.c.id == row["id"]).values(options={"c": [3]}))
    with db.engine.connect() as conn:
        assert conn.execute(select(runs.c.options)).scalar() == {"c": [3]}


def test_defaults_of_flags_and_attempts(db: Database, make_run: MakeRow, make_step) -> None:
    run = make_run()
    step = make_step(run["id"])
    with db.engine.begin() as conn:
        conn.execute(insert(runs), run)
        conn.execute(insert(steps), step)
    with db.engine.connect() as conn:
        got_run = conn.execute(select(runs)).mappings().one()
        got_step = conn.execute(select(steps)).mappings().one()
    assert got_run["cancel_requested"] is False
    assert got_run["attempt"] == 1
    assert got_step["attempt"] == 1
    for column in ("job_order", "outputs", "error", "exit_code", "started_at", "ended_at"):
        assert got_run[column] is None


def test_server_defaults_apply_to_raw_inserts(db: Database) -> None:
    """The migration sets database-side defaults too (for writers that bypass the models)."""
    from sqlalchemy import text

    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, workflow, state, created_at)"
                " VALUES ('r1', 'n', 'w.cwl', 'queued', CURRENT_TIMESTAMP)"
            )
        )
    with db.engine.connect() as conn:
        got = conn.execute(select(runs.c.cancel_requested, runs.c.attempt)).one()
    assert tuple(got) == (False, 1)


@pytest.mark.parametrize("column", ["name", "workflow", "state", "created_at"])
def test_required_run_columns(db: Database, make_run: MakeRow, column: str) -> None:
    row = make_run()
    del row[column]
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(runs), row)


def test_duplicate_run_id_is_rejected(db: Database, make_run: MakeRow) -> None:
    row = make_run()
    with db.engine.begin() as conn:
        conn.execute(insert(runs), row)
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(runs), make_run(id=row["id"]))


def test_step_needs_an_existing_run(db: Database, make_step: MakeRow) -> None:
    with pytest.raises(IntegrityError), db.engine.begin() as conn:
        conn.execute(insert(steps), make_step("missing-run"))


def test_deleting_a_run_deletes_its_steps_only(db: Database, make_run, make_step) -> None:
    keep, drop = make_run(), make_run()
    with db.engine.begin() as conn:
        conn.execute(insert(runs), [keep, drop])
        conn.execute(insert(steps), [make_step(keep["id"]), make_step(drop["id"])])
        conn.execute(runs.delete().where(runs.c.id == drop["id"]))
    with db.engine.connect() as conn:
        assert conn.execute(select(steps.c.run_id)).scalars().all() == [keep["id"]]


def test_query_steps_by_cache_key_and_state(db: Database, make_run, make_step) -> None:
    run = make_run()
    rows = [
        make_step(run["id"], cache_key="k1", state="succeeded", outputs={"o": 1}),
        make_step(run["id"], cache_key="k1", state="failed", outputs=None),
        make_step(run["id"], cache_key="k2", state="succeeded", outputs=None),
    ]
    with db.engine.begin() as conn:
        conn.execute(insert(runs), run)
        conn.execute(insert(steps), rows)
    with db.engine.connect() as conn:
        hits = conn.execute(
            select(steps.c.id, steps.c.outputs).where(
                steps.c.cache_key == "k1", steps.c.state == "succeeded"
            )
        ).all()
    assert [tuple(h) for h in hits] == [(rows[0]["id"], {"o": 1})]
