"""Event sources and triggers as stored definitions: add, list, show, pause, resume,
delete — what the CLI (``twin sources``, ``twin triggers``), the API and the UI change,
and what the running engine reads.

A source is ``{name, kind, project, config}`` (its config checked by constructing the
source class, so a bad field fails when it is added, not later in a thread); a trigger is
a checked definition (:func:`~twinengine.events.triggers.parse_trigger`) whose source
and workflow must be in the same project. ``version()`` changes whenever a definition
does, so the engine reloads only then.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from sqlalchemy import Integer, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import ConfigError, Database, NotFoundError, StateError, get_database
from twinengine.core.models import event_sources, triggers
from twinengine.core.times import as_utc, utcnow
from twinengine.events.base import source_class
from twinengine.events.triggers import parse_trigger

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED_SOURCES = {"runs", "ai"}  # run completions; AI guard stops and alerts (built in)


def _row(row: Any) -> dict[str, Any]:
    """A stored definition as a dict, its times in UTC (SQLite gives them back naive)."""
    return {key: as_utc(value) for key, value in row._mapping.items()}


class DefinitionStore:
    """Sources and triggers in the metadata database."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or get_database()

    # -- sources ------------------------------------------------------------------------
    def add_source(
        self,
        definition: str | dict[str, Any],
        project: str = "default",
        created_by: str | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        doc = yaml.safe_load(definition) if isinstance(definition, str) else dict(definition)
        if not isinstance(doc, dict):
            raise ConfigError("a source is a mapping with name, kind and its settings")
        name, kind = doc.pop("name", None), doc.pop("kind", None)
        project = doc.pop("project", None) or project
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_SOURCES:
            raise ConfigError(f"source: name: {name!r} is not a usable name (or is reserved)")
        if not isinstance(kind, str):
            raise ConfigError(f"source {name!r}: kind is required (folder, s3, nats, …)")
        source_class(kind)(name, doc)  # checks the settings; raises ConfigError naming them
        row = {
            "name": name,
            "kind": kind,
            "project": project,
            "config": doc,
            "paused": False,
            "status": "new",
            "created_at": utcnow(),
            "created_by": created_by,
        }
        with self.db.engine.begin() as conn:
            if replace:
                conn.execute(delete(event_sources).where(event_sources.c.name == name))
            try:
                conn.execute(insert(event_sources).values(**row))
            except IntegrityError:
                raise StateError(f"source {name!r} exists", hint="delete it first") from None
        return self.source(name)

    def source(self, name: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(event_sources).where(event_sources.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no event source {name!r}", hint="`twin sources list`")
        return _row(row)

    def sources(self, projects: list[str] | None = None) -> list[dict[str, Any]]:
        query = select(event_sources).order_by(event_sources.c.name)
        if projects is not None:
            query = query.where(event_sources.c.project.in_(projects))
        with self.db.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    def set_source_status(self, name: str, status: str, error: str | None = None) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(event_sources)
                .where(event_sources.c.name == name)
                .values(status=status, error=error, status_at=utcnow())
            )

    def pause_source(self, name: str, paused: bool = True) -> dict[str, Any]:
        self.source(name)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(event_sources)
                .where(event_sources.c.name == name)
                .values(paused=paused, status="paused" if paused else "new", status_at=utcnow())
            )
        return self.source(name)

    def delete_source(self, name: str) -> None:
        self.source(name)
        with self.db.engine.begin() as conn:
            used = conn.execute(select(triggers.c.name).where(triggers.c.source == name)).first()
            if used:
                raise StateError(f"trigger {used.name!r} uses source {name!r}; delete it first")
            conn.execute(delete(event_sources).where(event_sources.c.name == name))

    # -- triggers -----------------------------------------------------------------------
    def add_trigger(
        self,
        definition: str | bytes | dict[str, Any],
        project: str = "default",
        created_by: str | None = None,
        replace: bool = False,
        workflows: Any = None,
    ) -> dict[str, Any]:
        spec = parse_trigger(definition)
        project = spec.get("project") or project
        spec["project"] = project
        if spec["source"] not in RESERVED_SOURCES:
            source = self.source(spec["source"])
            if source["project"] != project:
                raise ConfigError(
                    f"trigger {spec['name']!r}: source: {spec['source']!r} is not in "
                    f"project {project!r}"
                )
        if workflows is not None:
            workflows(spec["workflow"], project)  # raises when it cannot be found
        now = utcnow()
        row = {
            "name": spec["name"],
            "project": project,
            "source": spec["source"],
            "definition": spec,
            "paused": False,
            "state": {},
            "created_at": now,
            "updated_at": now,
            "created_by": created_by,
        }
        with self.db.engine.begin() as conn:
            if replace:
                conn.execute(delete(triggers).where(triggers.c.name == spec["name"]))
            try:
                conn.execute(insert(triggers).values(**row))
            except IntegrityError:
                raise StateError(
                    f"trigger {spec['name']!r} exists", hint="use --replace to update it"
                ) from None
        return self.trigger(spec["name"])

    def trigger(self, name: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(triggers).where(triggers.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no trigger {name!r}", hint="`twin triggers list`")
        return _row(row)

    def triggers(
        self, projects: list[str] | None = None, source: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(triggers).order_by(triggers.c.name)
        if projects is not None:
            query = query.where(triggers.c.project.in_(projects))
        if source is not None:
            query = query.where(triggers.c.source == source)
        with self.db.engine.connect() as conn:
            return [_row(r) for r in conn.execute(query)]

    @staticmethod
    def candidate(row: dict[str, Any]) -> dict[str, Any]:
        """A stored trigger as :meth:`EventQueue.ingest` matches events against it."""
        return {
            "name": row["name"],
            "spec": row["definition"],
            "paused": row["paused"],
            "project": row["project"],
        }

    def pause_trigger(self, name: str, paused: bool = True) -> dict[str, Any]:
        self.trigger(name)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(triggers)
                .where(triggers.c.name == name)
                .values(paused=paused, updated_at=utcnow())
            )
        return self.trigger(name)

    def delete_trigger(self, name: str) -> None:
        self.trigger(name)
        with self.db.engine.begin() as conn:
            conn.execute(delete(triggers).where(triggers.c.name == name))

    def save_state(self, name: str, state: dict[str, Any]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(update(triggers).where(triggers.c.name == name).values(state=state))

    def version(self) -> tuple[Any, ...]:
        """Changes whenever a source or trigger is added, changed or removed."""
        with self.db.engine.connect() as conn:
            s = conn.execute(
                select(
                    func.count(),
                    func.max(event_sources.c.created_at),
                    func.sum(event_sources.c.paused.cast(Integer)),
                )
            ).first()
            t = conn.execute(
                select(
                    func.count(),
                    func.max(triggers.c.updated_at),
                    func.sum(triggers.c.paused.cast(Integer)),
                )
            ).first()
        return (tuple(s), tuple(t))
