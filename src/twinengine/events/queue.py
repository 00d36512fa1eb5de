"""The durable event queue in the metadata database: events, and one delivery per event
and trigger.

:meth:`EventQueue.ingest` stores an event and its deliveries (one per active trigger of
its source whose filter it passes; each delivery records its trigger's project, as
trigger names are unique within a project only) in one transaction, and skips an event
whose idempotency key (project, source, object, version) is already stored — a
re-delivered object or message is a no-op, which turns a source's at-least-once
delivery into exactly one run. Deliveries move
``pending → running → done`` (with the run id written in the same transaction that
creates the run), or ``retrying`` with exponential backoff and finally ``dead`` (the
dead-letter state, listed and retried by hand), or ``approval`` while a trigger waits for
a person, or ``batched`` while a batch fills. A lease makes a delivery whose worker died
due again. :meth:`EventQueue.backlog` is what back-pressure looks at.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import and_, bindparam, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from twinengine.core import Database, NotFoundError, StateError, get_database, new_id
from twinengine.core.models import deliveries, events, runs
from twinengine.core.times import as_utc as _aware
from twinengine.core.times import utcnow
from twinengine.events.base import Event
from twinengine.events.triggers import accepts

LEASE = dt.timedelta(seconds=120)
_EVENT_PROJECT = events.c.project.label("event_project")  # a delivery's is its trigger's
_INSERT_EVENT = insert(events)
_INSERT_DELIVERY = insert(deliveries)
_DONE = (  # one leased delivery turned into its run (still leased: else it was lost)
    update(deliveries)
    .where(deliveries.c.id == bindparam("_id"), deliveries.c.state == "running")
    .values(
        state="done",
        run_id=bindparam("_run"),
        batch_id=bindparam("_batch"),
        error=None,
        lease_until=None,
        updated_at=bindparam("_now"),
    )
)


def _of(trigger: str, project: str) -> Any:
    """The deliveries of trigger ``trigger`` of ``project``."""
    return and_(deliveries.c.trigger == trigger, deliveries.c.project == project)


def _deliveries(
    event_id: str,
    body: dict[str, Any],
    project: str | None,
    triggers: list[dict[str, Any]],
    claim: bool,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """The delivery rows of an event: one per trigger that is active and accepts it."""
    rows = []
    for trigger in triggers:
        if trigger.get("paused") or not accepts(trigger, body):
            continue
        spec = trigger["spec"]
        state = "approval" if spec.get("approval") else "pending"
        if spec.get("batch"):
            state = "batched"
        lease = None
        if claim and state == "pending":
            state, lease = "running", now + LEASE
        rows.append(
            {
                "id": new_id(),
                "event_id": event_id,
                "trigger": trigger["name"],
                "project": trigger.get("project", project),
                "state": state,
                "attempts": 0,
                "next_attempt_at": now,
                "lease_until": lease,
                "created_at": now,
                "updated_at": now,
            }
        )
    return rows


class LostLease(RuntimeError):
    """A delivery this worker leased was finished by another one."""


DUE_STATES = ("pending", "retrying")


class EventQueue:
    """Store events and hand their deliveries to the trigger engine."""

    def __init__(self, db: Database | None = None) -> None:
        self.db = db or get_database()

    def ingest(
        self,
        event: Event,
        project: str | None,
        triggers: list[dict[str, Any]],
        claim: bool = False,
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """Store ``event`` and a delivery per matching trigger (``{name, project, spec,
        paused}``: the caller picks the triggers that may see the event) in one
        transaction; ``(event id, delivery rows with the event's body)``, or
        ``(None, [])`` for a repeat. ``claim``: deliveries due at once are stored leased
        (``running``) to the caller, who hands them to its worker in memory."""
        stored = self.ingest_many([event], project, triggers, claim)
        return stored[0] if stored is not None else (None, [])

    def ingest_many(
        self,
        batch: list[Event],
        project: str | None,
        triggers: list[dict[str, Any]],
        claim: bool = False,
    ) -> list[tuple[str, list[dict[str, Any]]]] | None:
        """:meth:`ingest` for several events of one source, in one transaction:
        ``(event id, delivery rows)`` of each; None — nothing stored — when one of them
        is a repeat (the caller then stores them one by one, each repeat skipped)."""
        stored, event_rows, delivery_rows = [], [], []
        for event in batch:
            body = event.as_dict()
            event_id, now = new_id(), utcnow()  # each its own time: batches keep the order
            event_rows.append(
                {
                    "id": event_id,
                    "source": event.source,
                    "project": project,
                    "key": event.key,
                    "kind": event.kind,
                    "version": event.version,
                    "idem_key": event.idempotency_key(project),
                    "body": body,
                    "received_at": now,
                }
            )
            rows = _deliveries(event_id, body, project, triggers, claim, now)
            delivery_rows.extend(rows)
            stored.append((event_id, [{**r, "body": body, "event_project": project} for r in rows]))
        try:
            with self.db.engine.begin() as conn:
                conn.execute(_INSERT_EVENT, event_rows)  # values as parameters: compiled once
                if delivery_rows:
                    conn.execute(_INSERT_DELIVERY, delivery_rows)
        except IntegrityError:
            return None  # seen before: the first copy's deliveries stand
        return stored

    def reclaim(self) -> int:
        """Make every leased delivery due now (a restarted server takes back its own)."""
        with self.db.engine.begin() as conn:
            done = conn.execute(
                update(deliveries)
                .where(deliveries.c.state == "running")
                .values(state="pending", lease_until=None, next_attempt_at=utcnow())
            )
        return done.rowcount

    # -- the engine's side -------------------------------------------------------------
    def claim(self, limit: int = 100, trigger: str | None = None) -> list[dict[str, Any]]:
        """Due deliveries (pending/retrying, or leased by a worker that died), leased."""
        now = utcnow()
        due = or_(
            and_(deliveries.c.state.in_(DUE_STATES), deliveries.c.next_attempt_at <= now),
            and_(deliveries.c.state == "running", deliveries.c.lease_until < now),
        )
        query = select(deliveries.c.id).where(due)
        if trigger is not None:
            query = query.where(deliveries.c.trigger == trigger)
        with self.db.engine.begin() as conn:
            ids = [r.id for r in conn.execute(query.order_by(deliveries.c.created_at).limit(limit))]
            if not ids:
                return []
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(ids), due)
                .values(state="running", lease_until=now + LEASE, updated_at=now)
            )
            rows = conn.execute(
                select(deliveries, events.c.body, _EVENT_PROJECT)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id.in_(ids), deliveries.c.lease_until == now + LEASE)
            )
            return [dict(r._mapping) for r in rows]

    def batch_status(self, trigger: str, project: str) -> tuple[int, Any]:
        """How many deliveries of ``trigger`` wait in its batch, and the oldest one's time
        (``None`` when none): what decides whether the batch is due, without the bodies."""
        waiting = and_(_of(trigger, project), deliveries.c.state == "batched")
        with self.db.engine.connect() as conn:
            count, oldest = conn.execute(
                select(func.count(), func.min(deliveries.c.created_at)).where(waiting)
            ).one()
        return int(count or 0), _aware(oldest)

    def batched(self, trigger: str, project: str) -> list[dict[str, Any]]:
        """Deliveries of ``trigger`` waiting in its batch, oldest first."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries, events.c.body, _EVENT_PROJECT)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(_of(trigger, project), deliveries.c.state == "batched")
                .order_by(deliveries.c.created_at)
            )
            return [dict(r._mapping) for r in rows]

    def mark(self, ids: list[str], conn: Any = None, **values: Any) -> None:
        """Set fields of deliveries (inside ``conn``'s transaction when given). Marking
        them ``done`` requires that they are still ``running`` (leased): when another
        worker finished one meanwhile, :class:`LostLease` is raised and the caller's
        transaction — with the run it queued — rolls back: never two runs for one."""
        statement = (
            update(deliveries)
            .where(deliveries.c.id.in_(ids))
            .values(updated_at=utcnow(), lease_until=None, **values)
        )
        if values.get("state") == "done":
            statement = statement.where(deliveries.c.state == "running")
        if conn is not None:
            done = conn.execute(statement)
            if values.get("state") == "done" and done.rowcount != len(ids):
                raise LostLease(f"deliveries {ids} were taken by another worker")
            return
        with self.db.engine.begin() as own:
            own.execute(statement)

    def mark_done(self, conn: Any, runs: list[tuple[list[str], str, str | None]]) -> None:
        """Mark deliveries ``done`` with the run each led to — ``(delivery ids, run id,
        batch id)`` per run — inside ``conn``'s transaction, in one statement. Like
        :meth:`mark`, it raises :class:`LostLease` (rolling back the runs queued in the
        same transaction) when one of them is no longer leased."""
        now = utcnow()
        params = [
            {"_id": delivery, "_run": run_id, "_batch": batch_id, "_now": now}
            for ids, run_id, batch_id in runs
            for delivery in ids
        ]
        if params and conn.execute(_DONE, params).rowcount != len(params):
            taken = [p["_id"] for p in params]
            raise LostLease(f"deliveries {taken} were taken by another worker")

    def failed(self, delivery: dict[str, Any], error: str, retries: dict[str, Any]) -> str:
        """Record a failed attempt: ``retrying`` after a backoff, or ``dead``."""
        attempts = int(delivery.get("attempts") or 0) + 1
        if attempts >= retries["attempts"]:
            self.mark([delivery["id"]], state="dead", attempts=attempts, error=error)
            return "dead"
        delay = min(retries["max_delay"], retries["backoff"] ** attempts)
        self.mark(
            [delivery["id"]],
            state="retrying",
            attempts=attempts,
            error=error,
            next_attempt_at=utcnow() + dt.timedelta(seconds=delay),
        )
        return "retrying"

    def backlog(self) -> int:
        """Deliveries not yet turned into runs (what back-pressure looks at)."""
        with self.db.engine.connect() as conn:
            query = select(func.count()).where(deliveries.c.state.in_(("pending", "retrying")))
            return int(conn.execute(query).scalar() or 0)

    def in_flight(self, trigger: str, project: str) -> list[str]:
        """Run ids of the trigger's deliveries whose runs have not ended."""
        with self.db.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries.c.run_id.distinct())
                .join(runs, runs.c.id == deliveries.c.run_id)
                .where(_of(trigger, project), runs.c.state.in_(("queued", "running")))
            )
            return [r[0] for r in rows]

    # -- people's side ------------------------------------------------------------------
    def events(
        self,
        projects: list[str] | None,
        source: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        """Events newest first, each with its deliveries; ``state`` filters deliveries."""
        query = select(events)
        if projects is not None:
            query = query.where(events.c.project.in_(projects))
        if source:
            query = query.where(events.c.source == source)
        if state:
            query = query.where(
                events.c.id.in_(select(deliveries.c.event_id).where(deliveries.c.state == state))
            )
        with self.db.engine.connect() as conn:
            total = conn.execute(select(func.count()).select_from(query.subquery())).scalar()
            rows = [
                dict(r._mapping)
                for r in conn.execute(
                    query.order_by(events.c.received_at.desc()).limit(limit).offset(offset)
                )
            ]
            ids = [r["id"] for r in rows]
            found = conn.execute(select(deliveries).where(deliveries.c.event_id.in_(ids)))
            by_event: dict[str, list[dict[str, Any]]] = {}
            for d in found:
                by_event.setdefault(d.event_id, []).append(_delivery(dict(d._mapping)))
        for row in rows:
            row["received_at"] = _aware(row["received_at"])
            row["deliveries"] = by_event.get(row["id"], [])
        return rows, int(total or 0)

    def event(self, event_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(select(events).where(events.c.id == event_id)).first()
            if row is None:
                raise NotFoundError(f"no event {event_id!r}", hint="`twin events list`")
            item = dict(row._mapping)
            item["received_at"] = _aware(item["received_at"])
            item["deliveries"] = [
                _delivery(dict(d._mapping))
                for d in conn.execute(select(deliveries).where(deliveries.c.event_id == event_id))
            ]
        return item

    def retry(self, event_id: str, trigger: str | None = None) -> int:
        """Send an event's dead or failed deliveries again; how many."""
        self.event(event_id)
        query = update(deliveries).where(
            deliveries.c.event_id == event_id, deliveries.c.state.in_(("dead", "retrying"))
        )
        if trigger:
            query = query.where(deliveries.c.trigger == trigger)
        with self.db.engine.begin() as conn:
            done = conn.execute(
                query.values(state="pending", next_attempt_at=utcnow(), attempts=0, error=None)
            )
        if not done.rowcount:
            raise StateError(f"event {event_id} has no dead or retrying delivery to retry")
        return done.rowcount

    def approve(self, delivery_id: str, user: str, approve: bool = True) -> dict[str, Any]:
        """A person's decision on a delivery waiting for approval."""
        with self.db.engine.begin() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
            if row is None:
                raise NotFoundError(f"no delivery {delivery_id!r}")
            if row.state != "approval":
                raise StateError(f"delivery {delivery_id} is {row.state}, not waiting for approval")
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id, deliveries.c.state == "approval")
                .values(
                    state="pending" if approve else "skipped",
                    approved_by=user,
                    next_attempt_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        return self.delivery(delivery_id)

    def delivery(self, delivery_id: str) -> dict[str, Any]:
        with self.db.engine.connect() as conn:
            row = conn.execute(
                select(deliveries, _EVENT_PROJECT, events.c.key)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id == delivery_id)
            ).first()
        if row is None:
            raise NotFoundError(f"no delivery {delivery_id!r}")
        return _delivery(dict(row._mapping))

    def awaiting(self, projects: list[str] | None) -> list[dict[str, Any]]:
        """Deliveries waiting for a person's approval, of triggers of ``projects``."""
        query = (
            select(deliveries, _EVENT_PROJECT, events.c.key)
            .join(events, events.c.id == deliveries.c.event_id)
            .where(deliveries.c.state == "approval")
        )
        if projects is not None:
            query = query.where(deliveries.c.project.in_(projects))
        with self.db.engine.connect() as conn:
            return [_delivery(dict(r._mapping)) for r in conn.execute(query)]


def _delivery(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("created_at", "updated_at", "next_attempt_at", "lease_until"):
        if key in row:
            row[key] = _aware(row[key])
    row.pop("body", None)
    return row
