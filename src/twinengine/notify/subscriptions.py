"""Subscriptions: who wants which notes through which channel, and who gets a given note.

:class:`SubscriptionStore` owns the ``subscriptions`` table. A subscription belongs to
one user and names a channel and its target, optionally a project (None: every project
of the user), a trigger (None: any, including notes of no trigger) and a list of kinds
(empty: all). :meth:`SubscriptionStore.matching` applies the rules to a published note:
the project and trigger must match, the kind must be listed (or the list empty), and
the subscriber must be the note's addressee — or, for a note to a whole project, a
member of that project (an admin user counts as a member of every project); disabled
users and inactive subscriptions get nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import and_, insert, or_, select
from sqlalchemy import delete as sql_delete

from twinengine.core import Database, NotFoundError, StateError, TwinError, new_id
from twinengine.core.models import memberships, projects, subscriptions, users
from twinengine.core.times import utcnow
from twinengine.notify.base import Notifier
from twinengine.notify.note import Note, check_kind, iso

_TRIGGER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class SubscriptionStore:
    """Read and change subscriptions; ``notifier(channel)`` gives a channel's notifier."""

    def __init__(self, db: Database, notifier: Callable[[str], Notifier]) -> None:
        self.db = db
        self.notifier = notifier

    def add(
        self,
        user: str,
        channel: str,
        target: str | None = None,
        project: str | None = None,
        trigger: str | None = None,
        kinds: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A new active subscription, checked; :class:`TwinError` saying what is wrong."""
        if not isinstance(channel, str) or not channel or len(channel) > 16:
            raise TwinError(f"invalid channel {channel!r}", hint="e.g. ui, webhook, email")
        target = self.notifier(channel).check_target(target)
        if trigger is not None and not _TRIGGER.match(trigger):
            raise TwinError(
                f"invalid trigger name {trigger!r}", hint="1-64 letters, digits or . _ -"
            )
        if isinstance(kinds, str):
            kinds = [kinds]
        kinds = sorted({check_kind(k) for k in kinds})
        with self.db.engine.begin() as conn:
            if conn.execute(select(users.c.name).where(users.c.name == user)).first() is None:
                raise NotFoundError(f"no user {user!r}")
            if project is not None and (
                conn.execute(select(projects.c.name).where(projects.c.name == project)).first()
                is None
            ):
                raise NotFoundError(f"no project {project!r}", hint="`twin projects list`")
            for row in conn.execute(
                select(subscriptions).where(
                    subscriptions.c.user_name == user, subscriptions.c.channel == channel
                )
            ):
                same = (row.target, row.project, row.trigger, sorted(row.kinds or []))
                if same == (target, project, trigger, kinds):
                    raise StateError(
                        f"you already have this subscription ({row.id})",
                        hint="DELETE /api/v1/subscriptions/ID removes one",
                    )
            record = {
                "id": new_id(),
                "user_name": user,
                "project": project,
                "trigger": trigger,
                "kinds": kinds,
                "channel": channel,
                "target": target,
                "active": True,
                "created_at": utcnow(),
            }
            conn.execute(insert(subscriptions).values(**record))
        return self.view(record)

    def row(self, subscription_id: str, user: str) -> dict[str, Any]:
        """The stored subscription (target included) of ``user``; 404 for anyone else's."""
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(subscriptions).where(
                    subscriptions.c.id == subscription_id, subscriptions.c.user_name == user
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"no subscription {subscription_id!r}", hint="GET /api/v1/subscriptions"
            )
        return dict(row._mapping)

    def remove(self, subscription_id: str, user: str) -> None:
        self.row(subscription_id, user)
        with self.db.engine.begin() as conn:
            conn.execute(sql_delete(subscriptions).where(subscriptions.c.id == subscription_id))

    def of_user(self, user: str) -> list[dict[str, Any]]:
        query = (
            select(subscriptions)
            .where(subscriptions.c.user_name == user)
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        with self.db.engine.connect() as conn:
            return [self.view(dict(r._mapping)) for r in conn.execute(query)]

    def view(self, row: dict[str, Any]) -> dict[str, Any]:
        """A subscription as shown to its owner (the target's secrets hidden)."""
        try:
            target = self.notifier(row["channel"]).describe(row.get("target"))
        except TwinError:  # a plug-in channel that is no longer installed
            target = row.get("target")
        return {
            "id": row["id"],
            "user": row["user_name"],
            "channel": row["channel"],
            "target": target,
            "project": row.get("project"),
            "trigger": row.get("trigger"),
            "kinds": list(row.get("kinds") or []),
            "active": bool(row.get("active", True)),
            "created_at": iso(row.get("created_at")),
        }

    def matching(self, note: Note) -> list[dict[str, Any]]:
        """Active subscriptions (stored rows) that ``note`` must be delivered to."""
        query = select(subscriptions).where(subscriptions.c.active.is_(True))
        if note.project is None:
            query = query.where(subscriptions.c.project.is_(None))
        else:
            query = query.where(
                or_(subscriptions.c.project.is_(None), subscriptions.c.project == note.project)
            )
        if note.trigger is None:
            query = query.where(subscriptions.c.trigger.is_(None))
        else:
            query = query.where(
                or_(subscriptions.c.trigger.is_(None), subscriptions.c.trigger == note.trigger)
            )
        if note.user is not None:
            query = query.where(subscriptions.c.user_name == note.user)
        with self.db.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(query)]
            rows = [r for r in rows if not r["kinds"] or note.kind in r["kinds"]]
            if not rows:
                return []
            eligible = self._recipients(conn, note, {r["user_name"] for r in rows})
        return [r for r in rows if r["user_name"] in eligible]

    @staticmethod
    def _recipients(conn: Any, note: Note, candidates: set[str]) -> set[str]:
        """Which of ``candidates`` may receive ``note`` (addressee, member or admin)."""
        found = conn.execute(
            select(users.c.name, users.c.admin).where(
                users.c.name.in_(candidates), users.c.disabled.is_(False)
            )
        ).all()
        active = {name for name, _admin in found}
        if note.user is not None:
            return active & {note.user}
        admins = {name for name, admin in found if admin}
        if note.project is None:
            return admins
        members = conn.execute(
            select(memberships.c.user_name).where(
                and_(memberships.c.project == note.project, memberships.c.user_name.in_(active))
            )
        ).scalars()
        return admins | set(members)
