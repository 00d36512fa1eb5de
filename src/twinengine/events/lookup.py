"""What the event engine looks up outside itself: which registered workflow a trigger
names (an id, or a name — its latest version — in the trigger's project; remembered for
two seconds, so a burst of events resolves it once, forgotten when the definitions
change), which function (:func:`function_of`: of the trigger's project only), and the
notification centre it tells about approvals, drift and dead events. A workflow or a
function of another project answers exactly like a missing one."""

from __future__ import annotations

import logging
import time
from typing import Any

from twinengine.core import NotFoundError
from twinengine.notify import Note

log = logging.getLogger(__name__)


class WorkflowLookup:
    def __init__(self, registry: Any, keep: float = 2.0) -> None:
        self.registry, self.keep = registry, keep
        self._cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def find(self, ref: str, project: str) -> dict[str, Any]:
        key = (ref, project)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self.keep:
            return cached[1]
        row = self._find(ref, project)
        self._cache[key] = (time.monotonic(), row)
        return row

    def _find(self, ref: str, project: str) -> dict[str, Any]:
        try:
            row = self.registry.row(ref)
            if row["project"] == project:
                return row
        except NotFoundError:
            pass
        items, _ = self.registry.list(projects=[project], name=ref, limit=1)
        if items:
            row = self.registry.row(items[0]["id"])
            if row["project"] == project:
                return row
        raise NotFoundError(
            f"no workflow {ref!r} in project {project!r}",
            hint="register it first (POST /api/v1/workflows)",
        )

    def clear(self) -> None:
        self._cache.clear()


def function_of(registry: Any, name: str, project: str) -> dict[str, Any]:
    """The function ``name`` of ``project`` (a FunctionRegistry's definition)."""
    missing = NotFoundError(
        f"no function {name!r} in project {project!r}",
        hint="deploy it in the trigger's project (POST /api/v1/functions)",
    )
    try:
        definition = registry.get(name, project)
    except NotFoundError:
        raise missing from None
    if definition["project"] != project:
        raise missing
    return definition


def notify_trigger(
    center: Any,
    kind: str,
    trigger: tuple[str, str],
    title: str,
    body: str,
    data: dict,
    link: str | None = None,
) -> None:
    """Tell the people of ``trigger`` — its (project, name) — about something."""
    publish_note(
        center,
        kind=kind,
        title=title,
        body=body,
        project=trigger[0],
        trigger=trigger[1],
        data=data,
        link=link,
    )


def publish_note(center: Any, **note: Any) -> None:
    """Publish a notification through ``center`` (if any); a failure is only logged."""
    if center is None:
        return
    try:
        center.publish(Note(**note))
    except Exception:
        log.warning("notification %s failed", note.get("kind"), exc_info=True)
