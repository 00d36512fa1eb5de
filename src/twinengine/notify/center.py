"""The :class:`NotificationCenter`: publish notes, fan them out, read and mark the inbox.

``publish`` stores one row in ``notifications`` (addressed to one user, or to everyone
in the note's project) and hands each matching subscription (see
:mod:`twinengine.notify.subscriptions`) to the background :class:`DeliveryPool`, so
the publisher never waits for, or fails because of, a channel. The inbox of a user is
every note addressed to them plus every project-wide note of their projects (an admin
sees all). ``read_at`` is one column per note, so marking a project-wide note read marks
it read for the whole project. ``test`` sends one note through one subscription
synchronously and raises the reason when it cannot be delivered.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, func, insert, or_, select, true, update

from twinengine.core import Database, NotFoundError, TwinError, get_database, new_id
from twinengine.core.models import memberships, notifications, users
from twinengine.core.times import utcnow
from twinengine.notify.base import DeliveryError, Notifier, make_notifier
from twinengine.notify.delivery import RETRY_DELAYS, DeliveryPool
from twinengine.notify.note import Note, check_kind, check_link, iso
from twinengine.notify.subscriptions import SubscriptionStore

log = logging.getLogger("twinengine.notify")

#: ``projects`` argument meaning "the user's projects, from the memberships table"
Projects = list[str] | None | Literal["members"]


class NotificationCenter:
    """Notifications of one metadata database (default: this process's)."""

    def __init__(
        self,
        db: Database | None = None,
        *,
        workers: int = 4,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self.db = db or get_database()
        self._notifiers: dict[str, Notifier] = {}
        self._lock = threading.Lock()
        self.store = SubscriptionStore(self.db, self.notifier)
        self.pool = DeliveryPool(workers, retry_delays)

    def notifier(self, channel: str) -> Notifier:
        """The (shared) notifier of ``channel``; TwinError naming the known channels."""
        with self._lock:
            if channel not in self._notifiers:
                self._notifiers[channel] = make_notifier(channel)
            return self._notifiers[channel]

    # -- publishing ---------------------------------------------------------------
    def publish(self, note: Note, user: str | None = None) -> str:
        """Store ``note`` (for ``user``, or everyone in its project), queue its deliveries
        and return its id. Delivery failures are logged, never raised here."""
        check_kind(note.kind)
        if not (note.title or "").strip():
            raise TwinError("a notification needs a title")
        if note.trigger is not None and len(note.trigger) > 64:
            raise TwinError("a trigger name has at most 64 characters")
        note = replace(
            note,
            link=check_link(note.link),
            data=dict(note.data or {}),
            id=new_id(),
            created_at=utcnow(),
            user=user if user is not None else note.user,
        )
        self._store(note)
        self._fan_out(note)
        return note.id  # type: ignore[return-value]

    def _store(self, note: Note) -> None:
        with self.db.engine.begin() as conn:
            conn.execute(
                insert(notifications).values(
                    id=note.id,
                    project=note.project,
                    user_name=note.user,
                    trigger=note.trigger,
                    kind=note.kind,
                    title=note.title[:10000],
                    body=note.body,
                    data=note.stored_data(),
                    created_at=note.created_at,
                )
            )

    def _fan_out(self, note: Note) -> None:
        try:
            matches = self.store.matching(note)
        except Exception:
            log.exception("cannot find the subscriptions of notification %s", note.id)
            return
        for sub in matches:
            if sub["channel"] == "ui":
                continue  # stored already: the UI reads the inbox
            try:
                notifier = self.notifier(sub["channel"])
            except TwinError as exc:
                log.warning("subscription %s: %s", sub["id"], exc)
                continue
            self.pool.submit(
                notifier.send,
                note,
                sub["target"],
                subscription_id=sub["id"],
                channel=sub["channel"],
            )

    def flush(self, timeout: float | None = 30.0) -> bool:
        """Wait for pending deliveries; False when some still run after ``timeout`` s."""
        return self.pool.flush(timeout)

    def close(self) -> None:
        """Finish the running deliveries and release the channels' connections."""
        self.pool.close()
        with self._lock:
            for notifier in self._notifiers.values():
                notifier.close()
            self._notifiers.clear()

    # -- subscriptions ------------------------------------------------------------
    def subscribe(
        self,
        user: str,
        channel: str,
        target: str | None = None,
        project: str | None = None,
        trigger: str | None = None,
        kinds: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A new subscription of ``user`` (checked: channel, target, trigger, kinds)."""
        return self.store.add(user, channel, target, project, trigger, kinds)

    def unsubscribe(self, subscription_id: str, user: str) -> None:
        self.store.remove(subscription_id, user)

    def subscriptions(self, user: str) -> list[dict[str, Any]]:
        return self.store.of_user(user)

    def test(self, subscription_id: str, user: str) -> dict[str, Any]:
        """Send a test note through one subscription now; DeliveryError with the reason."""
        sub = self.store.row(subscription_id, user)
        notifier = self.notifier(sub["channel"])
        note = Note(
            kind="test",
            title="Test notification from TwinEngine",
            body=f"This tests your {sub['channel']} subscription {sub['id']}: it works.",
            project=sub["project"],
            trigger=sub["trigger"],
            data={"subscription": sub["id"]},
            id=new_id(),
            created_at=utcnow(),
            user=user,
        )
        if sub["channel"] == "ui":
            self._store(note)  # into the inbox only: no fan-out to other channels
        else:
            try:
                notifier.send(note, sub["target"])
            except TwinError:
                raise
            except Exception as exc:  # what the channel's library said stays in the log
                log.warning("test of subscription %s failed: %s", sub["id"], exc)
                raise DeliveryError(
                    f"the {sub['channel']} delivery failed",
                    hint="the server log has the reason",
                ) from None
        target = notifier.describe(sub["target"])
        return {"ok": True, "channel": sub["channel"], "target": target, "note": note.id}

    # -- the inbox ----------------------------------------------------------------
    def projects_of(self, user: str) -> list[str] | None:
        """The user's projects from the memberships table; None for an admin (all)."""
        with self.db.engine.connect() as conn:
            admin = conn.execute(select(users.c.admin).where(users.c.name == user)).scalar()
            if admin:
                return None
            query = select(memberships.c.project).where(memberships.c.user_name == user)
            return sorted(conn.execute(query).scalars())

    def _visible(self, user: str, projects: Projects) -> ColumnElement[bool]:
        if projects == "members":
            projects = self.projects_of(user)
        if projects is None:
            return true()
        mine = notifications.c.user_name == user
        if not projects:
            return mine
        everyone = and_(notifications.c.user_name.is_(None), notifications.c.project.in_(projects))
        return or_(mine, everyone)

    def inbox(
        self,
        user: str,
        projects: Projects = "members",
        unread_only: bool = False,
        limit: int = 50,
        after: str | None = None,
        since: dt.datetime | None = None,
    ) -> list[dict[str, Any]]:
        """Notes for ``user`` or one of ``projects`` (None: all; "members": look them up),
        newest first — oldest first after the note ``after`` or from the time ``since``."""
        visible = self._visible(user, projects)
        query = select(notifications).where(visible)
        if unread_only:
            query = query.where(notifications.c.read_at.is_(None))
        order = [notifications.c.created_at.desc(), notifications.c.id.desc()]
        if after is not None:
            with self.db.engine.connect() as conn:
                mark = conn.execute(
                    select(notifications.c.created_at).where(notifications.c.id == after, visible)
                ).scalar()
            if mark is None:
                raise NotFoundError(f"no notification {after!r}", hint="`after` takes a note id")
            query = query.where(
                or_(
                    notifications.c.created_at > mark,
                    and_(notifications.c.created_at == mark, notifications.c.id > after),
                )
            )
        if since is not None:
            query = query.where(notifications.c.created_at >= since)
        if after is not None or since is not None:
            order = [notifications.c.created_at, notifications.c.id]
        query = query.order_by(*order).limit(max(1, min(int(limit), 1000)))
        with self.db.engine.connect() as conn:
            return [self._view(dict(r._mapping)) for r in conn.execute(query)]

    def note(self, note_id: str, user: str, projects: Projects = "members") -> dict[str, Any]:
        """One note as the inbox shows it; 404 when ``user`` may not see it."""
        query = select(notifications).where(
            notifications.c.id == note_id, self._visible(user, projects)
        )
        with self.db.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            raise NotFoundError(f"no notification {note_id!r}")
        return self._view(dict(row._mapping))

    @staticmethod
    def _view(row: dict[str, Any]) -> dict[str, Any]:
        view = Note.from_row(row).as_dict()
        view["read_at"] = iso(row.get("read_at"))
        view["read"] = row.get("read_at") is not None
        return view

    def unread_count(self, user: str, projects: Projects = "members") -> int:
        query = select(func.count()).select_from(notifications)
        query = query.where(self._visible(user, projects), notifications.c.read_at.is_(None))
        with self.db.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)

    def mark_read(
        self, ids: Iterable[str] | None, user: str, projects: Projects = "members"
    ) -> int:
        """Mark the notes ``ids`` (None: all unread) read if ``user`` may see them; how
        many were marked."""
        query = update(notifications).where(
            self._visible(user, projects), notifications.c.read_at.is_(None)
        )
        if ids is not None:
            wanted = list(dict.fromkeys(ids))
            if not wanted:
                return 0
            query = query.where(notifications.c.id.in_(wanted))
        with self.db.engine.begin() as conn:
            return conn.execute(query.values(read_at=utcnow())).rowcount or 0
