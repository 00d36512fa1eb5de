"""Migration 0005 on a database with PROV written by 0004: every project that listed an
element gets its own row (documents of no project share ``""``), and back again."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text

import twinengine.core.database as database


def _to(engine, revision: str, down: bool = False) -> None:  # type: ignore[no-untyped-def]
    config = Config()
    config.set_main_option("script_location", str(Path(database.__file__).with_name("migrations")))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_elements_are_copied_into_each_project_that_lists_them(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    _to(engine, "0004")
    now = dt.datetime.now(dt.UTC).isoformat()
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO runs (id, name, workflow, state, created_at, project)"
                " VALUES ('R1', 'r', 'w', 'succeeded', :now, 'beta')"
            ),
            {"now": now},
        )
        for doc, run, project in (("D1", None, "alpha"), ("D2", "R1", None), ("D3", None, None)):
            conn.execute(
                text(
                    "INSERT INTO prov_documents (id, run_id, name, origin, created_at, project)"
                    " VALUES (:doc, :run, 'n', 'client', :now, :project)"
                ),
                {"doc": doc, "run": run, "now": now, "project": project},
            )
            conn.execute(text("INSERT INTO prov_members VALUES (:doc, 'ex:a', '')"), {"doc": doc})
        conn.execute(
            text(
                "INSERT INTO prov_elements (id, kind, attributes, document_id)"
                " VALUES ('ex:a', 'entity', '{\"ex:s\": 1}', 'D1')"
            )
        )
    _to(engine, "0005")
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT project, id FROM prov_elements ORDER BY project")).all()
    assert [tuple(r) for r in rows] == [("", "ex:a"), ("alpha", "ex:a"), ("beta", "ex:a")]
    _to(engine, "0004", down=True)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM prov_elements")).all() == [("ex:a",)]
