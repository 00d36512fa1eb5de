"""The event engine of ``twin serve``: sources feed the durable queue, triggers turn
queued deliveries into runs.

:class:`EventEngine` runs one thread per active source (retried with backoff when its
peer is down, its status — ok, retrying, down — written to the database for the CLI, API
and UI: :mod:`twinengine.events.runners`), a built-in ``runs`` source that emits an event
for every run that ends (so workflows chain workflows), and a worker thread that claims
due deliveries, groups them by trigger and batch, and hands them to
:class:`~twinengine.events.trigger_runs.TriggerRuns`, which applies each trigger's
condition, approval, concurrency limit and pre-processing function and queues the runs
with the deliveries marked done. ``emit`` blocks while the backlog is over
``max_backlog`` (back-pressure).

Projects never mix: an event of a project goes only to that project's triggers (an event
of no project — the end of a run started with ``twin run`` — only to triggers an admin
added), and a trigger reaches only its own project's workflow and function, looked up
again each time it fires (one deleted and re-made by another project is never reached).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any

from twinengine.core import TwinError
from twinengine.events.base import Event
from twinengine.events.lookup import WorkflowLookup, function_of, notify_trigger
from twinengine.events.queue import EventQueue
from twinengine.events.runners import RunsRunner, SourceRunner
from twinengine.events.store import DefinitionStore
from twinengine.events.transport import StreamTransport
from twinengine.events.trigger_runs import TriggerRuns

log = logging.getLogger(__name__)
_RELOAD_EVERY = 1.0
_CLAIM_EVERY = 0.1  # seconds between asking the queue for due deliveries, when busy
_DEFINED = ("name", "kind", "project", "config", "created_at")


def _defined(row: dict[str, Any]) -> tuple[Any, ...]:
    """What makes a source the same source (its status and error change as it runs)."""
    return tuple(row.get(key) for key in _DEFINED)


class EventEngine:
    """Sources → queue → triggers → runs, inside one server process."""

    def __init__(
        self,
        settings: Any,
        db: Any,
        dispatcher: Any,
        registry: Any,
        uploads: Any = None,
        functions: Any = None,
        notify: Any = None,
        max_backlog: int = 10_000,
    ) -> None:
        self.settings, self.db, self.dispatcher, self.registry = settings, db, dispatcher, registry
        self.uploads, self.functions, self.notify = uploads, functions, notify
        self.queue = EventQueue(db)
        self.store = DefinitionStore(db, settings)
        self.max_backlog = max_backlog
        self.runners: dict[tuple[str | None, str], SourceRunner] = {}  # (project, source)
        self.triggers: dict[tuple[str, str], list[dict[str, Any]]] = {}  # (project, source)
        self.admin_triggers: dict[str, list[dict[str, Any]]] = {}  # source -> admins' ones
        self.by_name: dict[tuple[str, str], dict[str, Any]] = {}  # (project, name)
        self.sources: dict[tuple[str, str], dict[str, Any]] = {}  # as answers show them
        self._version: Any = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self.workflows = WorkflowLookup(registry)
        self.runs = TriggerRuns(
            settings,
            db,
            dispatcher,
            self.queue,
            self.store,
            uploads=uploads,
            functions=functions,
            notify=notify,
            find_workflow=self.find_workflow,
            find_function=self.find_function,
            source_of=self.source_of,
        )
        self._backlog_checked = (0.0, 0)
        self._claimed_at = 0.0  # when the queue was last asked for due deliveries
        self._look = True  # something may be due there now (an approval, a retry)
        self._ready: deque[dict[str, Any]] = deque()  # leased at ingest, handed over here
        self.transport: Any = None
        self.state_folder = settings.home / "events" / "state"  # the sources' cursors
        if getattr(settings, "event_queue", None):
            self.transport = StreamTransport(
                settings.event_queue, self.ingest_local, self.state_folder
            )

    # -- life cycle ------------------------------------------------------------------
    def start(self) -> None:
        if self.db.is_sqlite:  # one machine: what the server before us leased is ours again
            self.queue.reclaim()  # (servers sharing PostgreSQL wait for leases to expire)
        self.reload()
        if self.transport is not None:
            self.transport.start()
        self._thread = threading.Thread(target=self._loop, name="twin-triggers", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self.transport is not None:
            self.transport.stop()
        for runner in self.runners.values():
            runner.stop_event.set()
        for runner in self.runners.values():
            runner.join(3)
        if self._thread is not None:
            self._thread.join(5)

    def reload(self, force: bool = False) -> None:
        """Pick up added, changed, paused or deleted sources and triggers (the API calls
        this after each change; changes made elsewhere are seen within a second)."""
        with self._reload_lock:
            version = self.store.version()
            if version == self._version and not force:
                return
            self._version = version
            self.workflows.clear()
            self._apply()

    def _apply(self) -> None:
        rows = self.store.sealed_sources()
        trig = self.store.triggers()
        shown = {(r["project"], r["name"]): self.store.view_of(r) for r in rows}
        by_source: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        by_admins: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in trig:
            by_source[(t["project"], t["source"])].append(self.store.candidate(t))
            if t["admin"]:
                by_admins[t["source"]].append(self.store.candidate(t))
        with self._lock:
            self.triggers = dict(by_source)
            self.admin_triggers = dict(by_admins)
            self.by_name = {(t["project"], t["name"]): t for t in trig}
            self.sources = shown
        wanted: dict[tuple[str | None, str], dict[str, Any]] = {
            (r["project"], r["name"]): r for r in rows if not r["paused"]
        }
        if any(t["source"] == "runs" for t in trig):
            wanted[(None, "runs")] = {"name": "runs", "kind": "runs", "config": {}, "project": None}
        for key in list(self.runners):  # a status change is no reason to restart
            if key not in wanted or _defined(self.runners[key].row) != _defined(wanted[key]):
                self.runners.pop(key).stop_event.set()
        for key, row in wanted.items():
            if key not in self.runners:
                runner = (RunsRunner if key == (None, "runs") else SourceRunner)(self, row)
                self.runners[key] = runner
                runner.start()

    # -- the queue's input -----------------------------------------------------------
    def ingest(self, event: Event, project: str | None) -> str | None:
        """Store an event durably; its id (None: a repeat, or handed to the broker that
        backs the queue — see :mod:`twinengine.events.transport`)."""
        if self.transport is not None:
            self.transport.publish(event, project)
            return None
        return self.ingest_local(event, project)

    def ingest_many(self, batch: list[Event], project: str | None) -> None:
        """Store several events of one source — in one transaction when they go to the
        database and none is a repeat (else one by one, as :meth:`ingest`)."""
        if self.transport is not None or len(batch) < 2:
            for event in batch:
                self.ingest(event, project)
            return
        self._hold_back()
        stored = self.queue.ingest_many(batch, project, self._candidates(batch[0], project), True)
        if stored is None:  # a repeat among them: each on its own, the repeat skipped
            for event in batch:
                self.ingest_local(event, project)
            return
        self._accepted([row for _, rows in stored for row in rows])

    def ingest_local(self, event: Event, project: str | None) -> str | None:
        """Store an event in the database (and wake the trigger worker)."""
        self._hold_back()
        candidates = self._candidates(event, project)
        event_id, rows = self.queue.ingest(event, project, candidates, claim=True)
        self._accepted(rows)
        return event_id

    def _hold_back(self) -> None:
        while self._backlog() > self.max_backlog and not self._stop.is_set():
            time.sleep(0.2)  # back-pressure: the source waits, its peer keeps the data

    def _candidates(self, event: Event, project: str | None) -> list[dict[str, Any]]:
        """The triggers that may see ``event``: a project's triggers for a project's
        events, admins' triggers for events of no project."""
        with self._lock:
            if project is None:
                return list(self.admin_triggers.get(event.source, []))
            return list(self.triggers.get((project, event.source), []))

    def _accepted(self, rows: list[dict[str, Any]]) -> None:
        """Hand stored deliveries on: leased ones to the worker in memory, approvals to
        people."""
        if rows:
            self._ready.extend(r for r in rows if r["state"] == "running")
            for row in rows:
                if row["state"] == "approval":
                    self._ask_approval(row)
            self._wake.set()

    def _backlog(self) -> int:
        """The queue's backlog, counted at most every 0.2 s."""
        when, count = self._backlog_checked
        if time.monotonic() - when > 0.2:
            count = self.queue.backlog()
            self._backlog_checked = (time.monotonic(), count)
        return count

    def _ask_approval(self, delivery: dict[str, Any]) -> None:
        key = delivery["body"].get("key")
        notify_trigger(
            self.notify,
            "approval_needed",
            (delivery["project"], delivery["trigger"]),
            f"trigger {delivery['trigger']} waits for approval",
            f"event {key}",
            {"delivery": delivery["id"]},
            link="/#/approvals",
        )

    # -- the worker ------------------------------------------------------------------
    def _loop(self) -> None:
        last_reload = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_reload > _RELOAD_EVERY:
                    self.reload()
                    last_reload = time.monotonic()
                busy = self.work()
                self.flush_batches()
            except Exception:
                log.exception("trigger worker failed; going on")
                busy = False
            if not busy:
                self._wake.wait(0.5)
                self._wake.clear()

    def work(self, limit: int = 200) -> bool:
        """Turn due deliveries into runs — first those ``ingest`` leased and handed over
        in memory, then those due in the queue; whether there was anything to do."""
        claimed: list[dict[str, Any]] = []
        while self._ready and len(claimed) < limit:
            claimed.append(self._ready.popleft())
        # the database is asked only now and then while ingest feeds the worker (what
        # becomes due there — retries, leases run out, deferred ones — can wait that long)
        if not claimed and (self._look or time.monotonic() - self._claimed_at >= _CLAIM_EVERY):
            self._claimed_at = time.monotonic()
            claimed = self.queue.claim(limit)
            self._look = len(claimed) >= limit  # a backlog: the next pass asks again
        by_trigger: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for delivery in claimed:
            by_trigger[(delivery["project"], delivery["trigger"])].append(delivery)
        for key, group in by_trigger.items():
            trigger = self.by_name.get(key)
            if trigger is None or trigger["paused"]:
                ids = [d["id"] for d in group]
                self.queue.mark(ids, state="skipped", error="trigger gone or paused")
                continue
            self.runs.deliver_each(trigger, group)
        return bool(claimed)

    def flush_batches(self) -> None:
        """Deliver the batches of batching triggers that are due (full, or old enough)."""
        for (project, name), trigger in list(self.by_name.items()):
            batch = trigger["definition"].get("batch")
            if not batch or trigger["paused"]:
                continue
            count, oldest = self.queue.batch_status(name, project)  # cheap: no bodies loaded
            if not count:
                continue
            age = time.time() - oldest.timestamp()
            size = batch.get("size") or 0
            seconds = batch.get("seconds")
            if not (size and count >= size) and not (seconds and age >= seconds):
                continue  # not due yet
            waiting = self.queue.batched(name, project)
            while size and len(waiting) >= size:
                self.runs.deliver(trigger, waiting[:size])
                waiting = waiting[size:]
            if waiting and batch.get("seconds") and age >= batch["seconds"]:
                self.runs.deliver(trigger, waiting)

    def source_of(self, project: str, name: str) -> dict[str, Any] | None:
        """The source ``name`` of ``project`` as last loaded (secrets shown as ``***``)."""
        with self._lock:
            return self.sources.get((project, name))

    def find_workflow(self, ref: str, project: str) -> dict[str, Any]:
        """A registered workflow by id, or by name (latest version), in ``project``."""
        return self.workflows.find(ref, project)

    def find_function(self, name: str, project: str) -> dict[str, Any]:
        """A deployed function of ``project``; NotFoundError alike for a missing one and
        for one of another project."""
        if self.functions is None:
            raise TwinError(f"function {name!r} cannot run: no function service here")
        return function_of(self.functions.registry, name, project)

    # -- people ------------------------------------------------------------------------
    def approve(self, delivery_id: str, user: str, approve: bool = True) -> dict[str, Any]:
        delivery = self.queue.approve(delivery_id, user, approve)
        self._look = True
        self._wake.set()
        return delivery

    def retry(self, event_id: str, trigger: str | None = None) -> int:
        count = self.queue.retry(event_id, trigger)
        self._look = True
        self._wake.set()
        return count
