"""Event sources and triggers as stored definitions: add, list, show, pause, resume,
delete — what the CLI (``twin sources``, ``twin triggers``), the API and the UI change,
and what the running engine reads.

Names are unique within a project: two projects may each have a source ``incoming``,
and nothing done in one project (adding with ``replace``, pausing, deleting) ever
reaches the other's. A lookup names the project, or searches the projects given
(``within``) and refuses a name found in several. A source is ``{name, kind, project,
config}``; its config is checked by constructing the source class (so a bad field fails
when it is added, not later in a thread), and its secrets are sealed in the database
and shown as ``***`` (see :mod:`~twinengine.events.sourcesecrets`) — only
:meth:`DefinitionStore.sealed_sources` and :meth:`DefinitionStore.open_config` give them
back, for the engine. A trigger is a checked definition
(:func:`~twinengine.events.triggers.parse_trigger`) whose source, workflow and
function must be in its own project; ``admin`` records whether an admin added it (only
such triggers see events of no project). ``version()`` changes whenever a definition
does, so the engine reloads only then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from sqlalchemy import Integer, Table, and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import (
    ConfigError,
    Database,
    NotFoundError,
    Settings,
    StateError,
    TwinError,
    get_database,
    get_settings,
)
from twinengine.core.boundedyaml import load_definition
from twinengine.core.models import event_sources, triggers, users
from twinengine.core.secrets import SecretBox
from twinengine.core.times import as_utc, utcnow
from twinengine.events.base import source_class
from twinengine.events.projectnames import one_named
from twinengine.events.sourcesecrets import (
    REDACTED,
    redacted_view,
    restore,
    scrub,
    seal,
    secret_values,
    still_redacted,
    unseal,
)
from twinengine.events.triggers import parse_trigger

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED_SOURCES = {"runs", "ai"}  # run completions; AI guard stops and alerts (built in)
Check = Callable[[str, str], Any]  # (name, project) -> found, or raises NotFoundError


def _row(row: Any) -> dict[str, Any]:
    """A stored definition as a dict, its times in UTC (SQLite gives them back naive)."""
    return {key: as_utc(value) for key, value in row._mapping.items()}


def secret_keys(kind: str) -> frozenset[str]:
    """The settings a source kind declares secret (none when the kind is unknown here)."""
    try:
        return source_class(kind).secret_fields
    except TwinError:
        return frozenset()


def _named(table: Table, name: str, project: str) -> Any:
    return and_(table.c.name == name, table.c.project == project)


class DefinitionStore:
    """Sources and triggers in the metadata database."""

    def __init__(self, db: Database | None = None, settings: Settings | None = None) -> None:
        self.db = db or get_database(settings)
        self._settings = settings
        self._box: SecretBox | None = None

    @property
    def box(self) -> SecretBox:
        """What seals the sources' secrets (the server's key, read on first use)."""
        if self._box is None:
            self._box = SecretBox((self._settings or get_settings()).secret_key_path)
        return self._box

    # -- lookups ------------------------------------------------------------------------
    def _one(
        self, table: Table, what: str, name: str, project: str | None, within: list[str] | None
    ) -> Any:
        """The row of ``name`` in ``project`` — or in the one of ``within`` (None: any)
        that has it; NotFoundError (the same for every project the caller cannot see)."""
        listing = "sources" if table is event_sources else "triggers"
        return one_named(self.db, table, what, name, project, within, f"`twin {listing} list`")

    # -- sources ------------------------------------------------------------------------
    def add_source(
        self,
        definition: str | bytes | dict[str, Any],
        project: str = "default",
        created_by: str | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Check and store a source (``replace``: the one of that name in ``project``)."""
        doc = _mapping(definition, "the source definition", "name, kind and its settings")
        name, kind = doc.pop("name", None), doc.pop("kind", None)
        project = doc.pop("project", None) or project
        if not isinstance(name, str) or not _NAME.match(name) or name in RESERVED_SOURCES:
            raise ConfigError(f"source: name: {name!r} is not a usable name (or is reserved)")
        if not isinstance(kind, str):
            raise ConfigError(f"source {name!r}: kind is required (folder, s3, nats, …)")
        cls = source_class(kind)
        keys = cls.secret_fields
        with self.db.engine.connect() as conn:
            old = conn.execute(
                select(event_sources).where(_named(event_sources, name, project))
            ).first()
        if old is not None and not replace:
            raise StateError(
                f"source {name!r} exists in project {project!r}",
                hint="replace it (?replace=true, --replace), or delete it first",
            )
        config = doc
        if old is not None and REDACTED in json.dumps(doc):  # "***" sent back: keep those
            config = restore(doc, unseal(old.config, self.box), keys)
        if still_redacted(config, keys):
            raise ConfigError(
                f"source {name!r}: a secret is given as {REDACTED}, but there is no stored "
                "value of that setting to keep",
                hint=f"give the secret itself ({REDACTED} keeps only the value GET showed so)",
            )
        try:
            cls(name, config)  # checks the settings; raises ConfigError naming them
        except TwinError as exc:  # an error never repeats a secret
            exc.message = scrub(exc.message, secret_values(config, keys))
            exc.args = (exc.message,)
            raise
        row = {
            "name": name,
            "kind": kind,
            "project": project,
            "config": seal(config, self.box, keys),
            "paused": False,
            "status": "new",
            "created_at": utcnow(),
            "created_by": created_by,
        }
        try:
            with self.db.engine.begin() as conn:
                if replace:
                    conn.execute(delete(event_sources).where(_named(event_sources, name, project)))
                conn.execute(insert(event_sources).values(**row))
        except IntegrityError:
            raise StateError(f"source {name!r} exists in project {project!r}") from None
        return self.source(name, project)

    def _source_view(self, row: Any) -> dict[str, Any]:
        return self.view_of(_row(row))

    def view_of(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """A source of :meth:`sealed_sources` as answers show it (secrets ``***``)."""
        item = dict(sealed)
        item["config"] = redacted_view(item["config"], self.box, secret_keys(item["kind"]))
        return item

    def source(
        self, name: str, project: str | None = None, within: list[str] | None = None
    ) -> dict[str, Any]:
        """A source as answers show it (secrets ``***``)."""
        return self._source_view(self._one(event_sources, "event source", name, project, within))

    def sources(self, projects: list[str] | None = None) -> list[dict[str, Any]]:
        """Sources of ``projects`` (None: all) as answers show them (secrets ``***``)."""
        return [self._source_view(r) for r in self._source_rows(projects)]

    def _source_rows(self, projects: list[str] | None) -> list[Any]:
        query = select(event_sources).order_by(event_sources.c.project, event_sources.c.name)
        if projects is not None:
            query = query.where(event_sources.c.project.in_(projects))
        with self.db.engine.connect() as conn:
            return list(conn.execute(query))

    def sealed_sources(self) -> list[dict[str, Any]]:
        """Every source as stored (secrets sealed): what the engine runs. Never answer
        with these; :meth:`open_config` opens a config for the source object."""
        return [_row(r) for r in self._source_rows(None)]

    def sealed_source(self, name: str, project: str) -> dict[str, Any]:
        return _row(self._one(event_sources, "event source", name, project, None))

    def open_config(self, row: dict[str, Any]) -> dict[str, Any]:
        """A stored source's config with its secrets opened (for the source object)."""
        return unseal(row["config"], self.box)

    def added_by_admin(self, row: dict[str, Any]) -> bool:
        """Whether a source was added by the operator (the CLI: no user) or by a user who
        is an admin now — such a folder source may watch beyond ``watch_roots``."""
        if not row.get("created_by"):
            return True
        with self.db.engine.connect() as conn:
            query = select(users.c.admin).where(users.c.name == row["created_by"])
            return bool(conn.execute(query).scalar())

    def set_source_status(
        self, name: str, project: str, status: str, error: str | None = None
    ) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(event_sources)
                .where(_named(event_sources, name, project))
                .values(status=status, error=error, status_at=utcnow())
            )

    def pause_source(
        self, name: str, paused: bool = True, project: str | None = None
    ) -> dict[str, Any]:
        row = self._one(event_sources, "event source", name, project, None)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(event_sources)
                .where(_named(event_sources, name, row.project))
                .values(paused=paused, status="paused" if paused else "new", status_at=utcnow())
            )
        return self.source(name, row.project)

    def delete_source(self, name: str, project: str | None = None) -> None:
        row = self._one(event_sources, "event source", name, project, None)
        with self.db.engine.begin() as conn:
            used = conn.execute(
                select(triggers.c.name).where(
                    triggers.c.source == name, triggers.c.project == row.project
                )
            ).first()
            if used:
                raise StateError(f"trigger {used.name!r} uses source {name!r}; delete it first")
            conn.execute(delete(event_sources).where(_named(event_sources, name, row.project)))

    # -- triggers -----------------------------------------------------------------------
    def add_trigger(
        self,
        definition: str | bytes | dict[str, Any],
        project: str = "default",
        created_by: str | None = None,
        replace: bool = False,
        workflows: Check | None = None,
        functions: Check | None = None,
        admin: bool = False,
    ) -> dict[str, Any]:
        """Check and store a trigger. Its source, and — given ``workflows``/``functions``
        (``(name, project)`` → found, or NotFoundError) — its workflow and function must
        be in ``project``. ``admin``: an admin adds it (it also sees events of no
        project); replacing a trigger gives it the new adder's mark."""
        spec = parse_trigger(definition)
        name = spec["name"]
        project = spec.get("project") or project
        spec["project"] = project
        if spec["source"] not in RESERVED_SOURCES:
            try:
                self._one(event_sources, "event source", spec["source"], project, None)
            except NotFoundError:
                raise ConfigError(
                    f"trigger {name!r}: source: no event source {spec['source']!r} in "
                    f"project {project!r}",
                    hint="add the source first, in the trigger's project",
                ) from None
        if workflows is not None:
            workflows(spec["workflow"], project)  # raises when it cannot be found
        if functions is not None and spec.get("function"):
            functions(spec["function"], project)
        now = utcnow()
        row = {
            "name": name,
            "project": project,
            "source": spec["source"],
            "definition": spec,
            "paused": False,
            "state": {},
            "created_at": now,
            "updated_at": now,
            "created_by": created_by,
            "admin": bool(admin),
        }
        try:
            with self.db.engine.begin() as conn:
                if replace:
                    conn.execute(delete(triggers).where(_named(triggers, name, project)))
                conn.execute(insert(triggers).values(**row))
        except IntegrityError:
            raise StateError(
                f"trigger {name!r} exists in project {project!r}",
                hint="replace it (?replace=true, --replace)",
            ) from None
        return self.trigger(name, project)

    def trigger(
        self, name: str, project: str | None = None, within: list[str] | None = None
    ) -> dict[str, Any]:
        return _row(self._one(triggers, "trigger", name, project, within))

    def triggers(
        self, projects: list[str] | None = None, source: str | None = None
    ) -> list[dict[str, Any]]:
        query = select(triggers).order_by(triggers.c.project, triggers.c.name)
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
            "admin": bool(row.get("admin")),
        }

    def pause_trigger(
        self, name: str, paused: bool = True, project: str | None = None
    ) -> dict[str, Any]:
        row = self._one(triggers, "trigger", name, project, None)
        with self.db.engine.begin() as conn:
            conn.execute(
                update(triggers)
                .where(_named(triggers, name, row.project))
                .values(paused=paused, updated_at=utcnow())
            )
        return self.trigger(name, row.project)

    def delete_trigger(self, name: str, project: str | None = None) -> None:
        row = self._one(triggers, "trigger", name, project, None)
        with self.db.engine.begin() as conn:
            conn.execute(delete(triggers).where(_named(triggers, name, row.project)))

    def save_state(self, name: str, project: str, state: dict[str, Any]) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                update(triggers).where(_named(triggers, name, project)).values(state=state)
            )

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


def _mapping(definition: str | bytes | dict[str, Any], what: str, needs: str) -> dict[str, Any]:
    """A definition's mapping: parsed within bounds from YAML/JSON text, or copied."""
    text = isinstance(definition, str | bytes)
    doc = load_definition(definition, what) if text else definition
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} is a mapping with {needs}")
    return dict(doc)
