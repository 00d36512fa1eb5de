"""The event engine of ``twin serve``: sources feed the durable queue, triggers turn
queued deliveries into runs.

:class:`EventEngine` runs one thread per active source (retried with backoff when its
peer is down, its status — ok, retrying, down — written to the database for the CLI, API
and UI), a built-in ``runs`` source that emits an event for every run that ends (so
workflows chain workflows), and a worker thread that claims due deliveries and, per
trigger, applies its condition, batching, approval, concurrency limit and
pre-processing function, maps the event to the workflow's inputs and queues the run in
the same transaction that marks the delivery done — so an event leads to exactly one
run even across a ``kill -9``. A failed attempt is retried with backoff, then dead.
``emit`` blocks while the backlog is over ``max_backlog`` (back-pressure).

Projects never mix: an event of a project goes only to that project's triggers (an event
of no project — the end of a run started with ``twin run`` — only to triggers an admin
added), and a trigger reaches only its own project's workflow and function, looked up
again each time it fires (one deleted and re-made by another project is never reached).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict, deque
from typing import Any

from twinengine.core import TwinError, new_id
from twinengine.events.base import Event
from twinengine.events.conditions import evaluate, numbers
from twinengine.events.folderbounds import FolderBounds, reported_files
from twinengine.events.function_service import run_function
from twinengine.events.lookup import WorkflowLookup, function_of, publish_note
from twinengine.events.objectfetch import ReportedObjects
from twinengine.events.queue import EventQueue
from twinengine.events.runners import RunsRunner, SourceRunner
from twinengine.events.store import DefinitionStore
from twinengine.events.triggers import map_inputs, resolve, started_by
from twinengine.workflows import RunRequest
from twinengine.workflows.inputs import resolve_inputs

log = logging.getLogger(__name__)
_RELOAD_EVERY = 1.0
_CLAIM_EVERY = 0.1  # seconds between asking the queue for due deliveries, when busy
_DEFINED = ("name", "kind", "project", "config", "created_at")


def _holds_mapping(value: Any) -> bool:
    """Whether ``value`` has a mapping at any depth (where a File or Directory could be)."""
    if isinstance(value, dict):
        return any(isinstance(v, dict) or _holds_mapping(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict) or _holds_mapping(v) for v in value)
    return False


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
        self._backlog_checked = (0.0, 0)
        self._claimed_at = 0.0  # when the queue was last asked for due deliveries
        self._look = True  # something may be due there now (an approval, a retry)
        self._ready: deque[dict[str, Any]] = deque()  # leased at ingest, handed over here
        self.transport: Any = None
        self.state_folder = settings.home / "events" / "state"  # the sources' cursors
        if getattr(settings, "event_queue", None):
            from twinengine.events.transport import StreamTransport

            self.transport = StreamTransport(
                settings.event_queue, self.ingest_local, self.state_folder
            )
        self.processed = 0

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
        self._note(
            "approval_needed",
            (delivery["project"], delivery["trigger"]),
            f"trigger {delivery['trigger']} waits for approval",
            f"event {key}",
            {"delivery": delivery["id"]},
            link="/#/approvals",
        )

    def _note(
        self,
        kind: str,
        trigger: tuple[str, str],
        title: str,
        body: str,
        data: dict,
        link: str | None = None,
    ) -> None:
        """Tell ``trigger``'s (project, name) people about something."""
        publish_note(
            self.notify,
            kind=kind,
            title=title,
            body=body,
            project=trigger[0],
            trigger=trigger[1],
            data=data,
            link=link,
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
            self._deliver_each(trigger, group)
        return bool(claimed)

    def _deliver_each(self, trigger: dict[str, Any], group: list[dict[str, Any]]) -> None:
        """A run per delivery of one trigger, queued together in one transaction."""
        spec = trigger["definition"]
        limit = spec.get("concurrency") or 0
        if limit:
            room = max(0, limit - len(self.queue.in_flight(trigger["name"], trigger["project"])))
            later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=0.5)
            if group[room:]:
                self.queue.mark(
                    [d["id"] for d in group[room:]], state="pending", next_attempt_at=later
                )
            group = group[:room]
        if spec.get("condition") or spec.get("function"):
            for delivery in group:  # stateful or slow: one at a time
                self._deliver(trigger, [delivery])
            return
        ready = []
        for delivery in group:
            try:
                ready.append((delivery, *self._job(trigger, [delivery["body"]], None)))
            except Exception as exc:
                self._failed(trigger, [delivery], exc)
        if not ready:
            return
        run_ids: list[str] = []
        try:
            with self.db.engine.begin() as conn:
                self._queue_runs(
                    conn,
                    trigger,
                    [(workflow, job, given, [d["id"]]) for d, workflow, job, given in ready],
                    run_ids,
                )
        except Exception as exc:  # the batch failed as a whole: each delivery on its own
            self.dispatcher.start_direct(run_ids, committed=False)
            log.warning(
                "queueing %d runs of %s together failed: %s", len(ready), trigger["name"], exc
            )
            for delivery, *_ in ready:
                self._deliver(trigger, [delivery])
            return
        self.dispatcher.start_direct(run_ids)  # and wakes the queue for the others
        self.processed += len(ready)

    def _job(
        self, trigger: dict[str, Any], bodies: list[dict[str, Any]], result: Any
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """``(workflow, job, given)`` of one run of ``trigger`` for ``bodies``."""
        spec = trigger["definition"]
        workflow = self.find_workflow(spec["workflow"], trigger["project"])
        given = map_inputs(spec, bodies, result)
        job = given
        if self.uploads is not None:
            # besides uploads and input_roots, a run may read only what the events
            # reported: the files of the trigger's folder source (checked again now, links
            # resolved), the objects of its s3 source (fetched into an upload), the
            # outputs of an ended run of the trigger's own project
            extra: list[Any] = []
            reported: tuple[Any, ...] = ()
            wanted = given
            if spec["source"] == "runs":
                for body in bodies:
                    data = body.get("data") or {}
                    run_id = data.get("run_id")
                    if (
                        data.get("project") == trigger["project"]
                        and isinstance(run_id, str)
                        and run_id.isalnum()
                    ):
                        extra.append(self.settings.runs_dir / run_id / "outputs")
            elif _holds_mapping(given):  # only a File or Directory object reads a path
                with self._lock:
                    source = self.sources.get((trigger["project"], spec["source"]))
                if source is not None and source["kind"] == "folder":
                    bounds = FolderBounds.of(self.settings, self.store.added_by_admin(source))
                    reported = reported_files(source["config"], bodies, bounds)
                objects = ReportedObjects(self.settings, self.store, self.uploads)
                wanted = objects.fetched(given, bodies, source, trigger)
            interface = (workflow.get("interface") or {}).get("inputs", [])
            job = resolve_inputs(
                interface,
                wanted,
                project=workflow["project"],
                uploads_store=self.uploads,
                extra_roots=tuple(extra),
                reported=reported,
            )
        return workflow, job, given

    def _queue_runs(
        self,
        conn: Any,
        trigger: dict[str, Any],
        runs: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]],
        run_ids: list[str],
    ) -> None:
        """Queue a run per ``(workflow, job, given, delivery ids)`` inside ``conn``'s
        transaction and mark its deliveries done with it; each run's id is appended to
        ``run_ids`` as soon as it is queued (the caller forgets them on a rollback)."""
        requests = [
            RunRequest(
                workflow,
                job,
                started_by(trigger["name"]),
                name=f"{workflow['name']} ← {trigger['name']}",
                given=given,
            )
            for workflow, job, given, _ in runs
        ]
        queued = self.dispatcher.submit_many(requests, conn=conn, direct=True)
        run_ids.extend(queued)
        done = [
            (ids, run_id, new_id() if len(ids) > 1 else None)
            for (_, _, _, ids), run_id in zip(runs, queued, strict=True)
        ]
        self.queue.mark_done(conn, done)

    def _failed(self, trigger: dict[str, Any], group: list[dict[str, Any]], exc: Exception) -> None:
        message = str(exc) if isinstance(exc, TwinError) else f"{type(exc).__name__}: {exc}"
        for delivery in group:
            if self.queue.failed(delivery, message, trigger["definition"]["retries"]) == "dead":
                self._note(
                    "event_dead",
                    (trigger["project"], trigger["name"]),
                    f"an event of trigger {trigger['name']} failed for good",
                    message,
                    {"delivery": delivery["id"]},
                )

    def flush_batches(self) -> None:
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
                self._deliver(trigger, waiting[:size])
                waiting = waiting[size:]
            if waiting and batch.get("seconds") and age >= batch["seconds"]:
                self._deliver(trigger, waiting)

    def _deliver(self, trigger: dict[str, Any], group: list[dict[str, Any]]) -> None:
        """One run for ``group`` (one delivery, or a batch) of ``trigger``."""
        spec, ids = trigger["definition"], [d["id"] for d in group]
        bodies = [d["body"] for d in group]
        try:
            if spec.get("condition") and not self._condition_holds(trigger, bodies):
                self.queue.mark(ids, state="skipped", error="the condition did not hold")
                return
            result = None
            if spec.get("function"):
                result = self._preprocess(spec["function"], trigger["project"], bodies)
            workflow, job, given = self._job(trigger, bodies, result)
            run_ids: list[str] = []
            try:
                with self.db.engine.begin() as conn:
                    self._queue_runs(conn, trigger, [(workflow, job, given, ids)], run_ids)
            except BaseException:
                self.dispatcher.start_direct(run_ids, committed=False)
                raise
            self.dispatcher.start_direct(run_ids)  # and wakes the queue for the others
            self.processed += len(group)
        except Exception as exc:  # every failure is the delivery's, not the worker's
            self._failed(trigger, group, exc)

    def _condition_holds(self, trigger: dict[str, Any], bodies: list[dict[str, Any]]) -> bool:
        name, condition = trigger["name"], trigger["definition"]["condition"]
        project = trigger["project"]
        reference = next(iter(condition.values()))["value"]
        values = numbers([resolve(reference, [body]) for body in bodies])
        stored = self.store.trigger(name, project)["state"] or {}
        fire, state, detail = evaluate(condition, values, stored)
        self.store.save_state(name, project, state)
        if fire:
            kind = "drift" if "drift" in condition else "threshold"
            title = f"trigger {name}: {kind} detected"
            self._note(kind, (project, name), title, str(detail), detail)
        return fire

    def _preprocess(self, function: str, project: str, bodies: list[dict[str, Any]]) -> Any:
        """The result of the trigger's function — of its own project, checked now: a
        function of that name deleted and made again by another project is not it."""
        self.find_function(function, project)
        payload = bodies[0] if len(bodies) == 1 else {"events": bodies}
        return run_function(self.functions, function, payload, project=project)

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
