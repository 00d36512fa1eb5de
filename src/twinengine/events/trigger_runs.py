"""What happens when a trigger fires: claimed deliveries become queued runs.

:class:`TriggerRuns` takes one trigger's claimed deliveries (leased by the queue, see
:mod:`twinengine.events.queue`) and, per delivery or per batch, applies the trigger's
condition and concurrency limit, runs its pre-processing function (of the trigger's own
project, looked up again each time), maps the events to the workflow's inputs — a run
may read, besides uploads and ``input_roots``, only what the events reported: the files
of the trigger's folder source (checked again now), the objects of its s3 source
(fetched into an upload), the outputs of an ended run of the trigger's own project —
and queues the runs in the same transaction that marks the deliveries done, so an event
leads to exactly one run even across a ``kill -9``. Deliveries without a condition or
function are queued together in one transaction; a failed attempt is retried with
backoff, then dead (and the trigger's people are told).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from twinengine.core import TwinError, new_id
from twinengine.events.conditions import evaluate, numbers
from twinengine.events.folderbounds import FolderBounds, reported_files
from twinengine.events.function_service import run_function
from twinengine.events.lookup import notify_trigger
from twinengine.events.objectfetch import ReportedObjects
from twinengine.events.queue import EventQueue
from twinengine.events.store import DefinitionStore
from twinengine.events.triggers import map_inputs, resolve, started_by
from twinengine.workflows import RunRequest
from twinengine.workflows.inputs import resolve_inputs

log = logging.getLogger(__name__)

#: ``(workflow, job, given, delivery ids)`` of one run to queue
QueuedRun = tuple[dict[str, Any], dict[str, Any], dict[str, Any], list[str]]


def _holds_mapping(value: Any) -> bool:
    """Whether ``value`` has a mapping at any depth (where a File or Directory could be)."""
    if isinstance(value, dict):
        return any(isinstance(v, dict) or _holds_mapping(v) for v in value.values())
    if isinstance(value, list):
        return any(isinstance(v, dict) or _holds_mapping(v) for v in value)
    return False


class TriggerRuns:
    """Turn a trigger's deliveries into runs (see the module docstring).

    ``find_workflow(ref, project)`` and ``find_function(name, project)`` look a trigger's
    targets up in its project; ``source_of(project, name)`` is the source as the engine
    last loaded it (None: gone)."""

    def __init__(
        self,
        settings: Any,
        db: Any,
        dispatcher: Any,
        queue: EventQueue,
        store: DefinitionStore,
        *,
        uploads: Any,
        functions: Any,
        notify: Any,
        find_workflow: Callable[[str, str], dict[str, Any]],
        find_function: Callable[[str, str], dict[str, Any]],
        source_of: Callable[[str, str], dict[str, Any] | None],
    ) -> None:
        self.settings, self.db, self.dispatcher = settings, db, dispatcher
        self.queue, self.store = queue, store
        self.uploads, self.functions, self.notify = uploads, functions, notify
        self.find_workflow, self.find_function = find_workflow, find_function
        self.source_of = source_of

    def deliver_each(self, trigger: dict[str, Any], group: list[dict[str, Any]]) -> None:
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
                self.deliver(trigger, [delivery])
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
                self.deliver(trigger, [delivery])
            return
        self.dispatcher.start_direct(run_ids)  # and wakes the queue for the others

    def deliver(self, trigger: dict[str, Any], group: list[dict[str, Any]]) -> None:
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
        except Exception as exc:  # every failure is the delivery's, not the worker's
            self._failed(trigger, group, exc)

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
                source = self.source_of(trigger["project"], spec["source"])
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
        self, conn: Any, trigger: dict[str, Any], runs: list[QueuedRun], run_ids: list[str]
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
                notify_trigger(
                    self.notify,
                    "event_dead",
                    (trigger["project"], trigger["name"]),
                    f"an event of trigger {trigger['name']} failed for good",
                    message,
                    {"delivery": delivery["id"]},
                )

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
            notify_trigger(self.notify, kind, (project, name), title, str(detail), detail)
        return fire

    def _preprocess(self, function: str, project: str, bodies: list[dict[str, Any]]) -> Any:
        """The result of the trigger's function — of its own project, checked now: a
        function of that name deleted and made again by another project is not it."""
        self.find_function(function, project)
        payload = bodies[0] if len(bodies) == 1 else {"events": bodies}
        return run_function(self.functions, function, payload, project=project)
