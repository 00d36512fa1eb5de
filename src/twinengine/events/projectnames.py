"""Definitions named per project — event sources, triggers, functions — found by name.

A name is unique within a project, so two projects may each have a ``clean``.
:func:`one_named` finds the row of a name in one project, or among the projects a
caller may see (``within``; None: any), refusing a name found in several of them
(:class:`~twinengine.core.StateError`, 409, naming them) and answering the same
:class:`~twinengine.core.NotFoundError` for every project outside them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select

from twinengine.core import NotFoundError, StateError


def one_named(
    db: Any,
    table: Table,
    what: str,
    name: str,
    project: str | None,
    within: list[str] | None,
    hint: str,
) -> Any:
    """The row of ``what`` ``name`` in ``table`` — in ``project``, or in the one of
    ``within`` that has it; ``hint`` says where to see what there is."""
    query = select(table).where(table.c.name == name)
    if project is not None:
        query = query.where(table.c.project == project)
    if within is not None:
        query = query.where(table.c.project.in_(within))
    with db.engine.connect() as conn:
        rows = conn.execute(query.order_by(table.c.project).limit(10)).all()
    if not rows:
        raise NotFoundError(f"no {what} {name!r}", hint=hint)
    if len(rows) > 1:
        raise StateError(
            f"{what} {name!r} is in several projects ({', '.join(r.project for r in rows)})",
            hint="name its project (?project=…, --project)",
        )
    return rows[0]
