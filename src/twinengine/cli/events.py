"""``twin sources``, ``twin triggers`` and ``twin events``: event-driven runs from the
command line (on the server's machine, against its database; a running ``twin serve``
picks the changes up within a second).

Names are unique within a project; ``--project`` says which project's is meant when
several projects have one of that name. Sources are listed and shown with their secrets
as ``***``. Whoever runs these commands holds the server's database, so a trigger added
here is an admin's (it also sees events of no project, such as runs of ``twin run``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors
from twinengine.core import ConfigError

sources_app = typer.Typer(help="Event sources: folders, buckets, streams …", no_args_is_help=True)
triggers_app = typer.Typer(
    help="Triggers: which events start which workflow.", no_args_is_help=True
)
events_app = typer.Typer(
    help="The event queue: events, dead letters, approvals.", no_args_is_help=True
)
console = LazyConsole(highlight=False)
Name = Annotated[str, typer.Argument(help="Its name.")]
InProject = Annotated[
    str | None, typer.Option("--project", help="Its project (when several have the name).")
]


def _store() -> Any:
    from twinengine.events.store import DefinitionStore

    return DefinitionStore()


def _queue() -> Any:
    from twinengine.events.queue import EventQueue

    return EventQueue()


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None


def _workflows() -> Any:
    """Find a registered workflow the way the server's event engine does."""
    from twinengine.events.lookup import WorkflowLookup
    from twinengine.workflows.registry import WorkflowRegistry

    return WorkflowLookup(WorkflowRegistry()).find


def _functions() -> Any:
    """Find a deployed function of a project the way the server's event engine does."""
    from twinengine.events.functions import FunctionRegistry
    from twinengine.events.lookup import function_of

    registry = FunctionRegistry()
    return lambda name, project: function_of(registry, name, project)


# -- sources ----------------------------------------------------------------------------
@sources_app.command("add")
@handle_errors
def sources_add(
    file: Annotated[Path, typer.Argument(help="YAML definition: name, kind, settings.")],
    project: Annotated[str, typer.Option(help="Its project.")] = "default",
    replace: Annotated[bool, typer.Option(help="Replace one of the same name.")] = False,
) -> None:
    """Add an event source."""
    row = _store().add_source(_read(file), project, None, replace)
    console.print(f"source {row['name']} ({row['kind']}) added to project {row['project']}")


@sources_app.command("list")
@handle_errors
def sources_list(
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
) -> None:
    """Sources with their status and last error."""
    for row in _store().sources([project] if project else None):
        state = "paused" if row["paused"] else (row["status"] or "new")
        error = f"  [red]{row['error']}[/]" if row["error"] else ""
        console.print(f"{row['name']:<20} {row['kind']:<8} {state:<9} {row['project']}{error}")


@sources_app.command("show")
@handle_errors
def sources_show(name: Name, project: InProject = None) -> None:
    """A source's settings (secrets as ***) and status, as JSON."""
    print(json.dumps(_store().source(name, project), indent=2, default=str))


def _lifecycle(app: typer.Typer, kind: str) -> None:
    """``pause``, ``resume`` and ``delete`` of a source or a trigger (by name)."""

    def pause(name: str, project: str | None, paused: bool) -> None:
        getattr(_store(), f"pause_{kind}")(name, paused, project)
        console.print(f"{kind} {name} {'paused' if paused else 'resumed'}")

    @app.command("pause")
    @handle_errors
    def pause_it(name: Name, project: InProject = None) -> None:
        pause(name, project, True)

    @app.command("resume")
    @handle_errors
    def resume_it(name: Name, project: InProject = None) -> None:
        pause(name, project, False)

    @app.command("delete")
    @handle_errors
    def delete_it(name: Name, project: InProject = None) -> None:
        getattr(_store(), f"delete_{kind}")(name, project)
        console.print(f"{kind} {name} deleted")


_lifecycle(sources_app, "source")


# -- triggers ---------------------------------------------------------------------------
@triggers_app.command("add")
@handle_errors
def triggers_add(
    file: Annotated[Path, typer.Argument(help="YAML definition (see docs/events.md).")],
    project: Annotated[str, typer.Option(help="Its project.")] = "default",
    replace: Annotated[bool, typer.Option(help="Replace one of the same name.")] = False,
) -> None:
    """Add a trigger (checked: every mistake names its field)."""
    row = _store().add_trigger(
        _read(file),
        project,
        None,
        replace,
        workflows=_workflows(),
        functions=_functions(),
        admin=True,
    )
    console.print(f"trigger {row['name']}: {row['source']} → {row['definition']['workflow']}")


@triggers_app.command("list")
@handle_errors
def triggers_list(
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
) -> None:
    for row in _store().triggers([project] if project else None):
        spec = row["definition"]
        flag = " (paused)" if row["paused"] else ""
        where = f"  (project {row['project']})"
        console.print(f"{row['name']:<24} {row['source']} → {spec['workflow']}{flag}{where}")


@triggers_app.command("show")
@handle_errors
def triggers_show(name: Name, project: InProject = None) -> None:
    """A trigger's definition and condition state, as JSON."""
    row = _store().trigger(name, project)
    keys = ("name", "project", "source", "paused", "admin", "definition", "state")
    print(
        json.dumps(
            {k: row[k] for k in keys},
            indent=2,
            default=str,
        )
    )


_lifecycle(triggers_app, "trigger")


# -- events -----------------------------------------------------------------------------
@events_app.command("list")
@handle_errors
def events_list(
    source: Annotated[str | None, typer.Option(help="Only this source's.")] = None,
    state: Annotated[str | None, typer.Option(help="Deliveries in this state (dead …).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 30,
) -> None:
    """Events, newest first, with what became of them."""
    items, total = _queue().events(None, source, state, limit, 0)
    for event in items:
        outcome = ", ".join(
            f"{d['trigger']}:{d['state']}" + (f"→{d['run_id']}" if d["run_id"] else "")
            for d in event["deliveries"]
        )
        console.print(
            f"{event['id']}  {event['source']:<12} {event['key'][:40]:<40} {outcome or '-'}"
        )
    console.print(f"[dim]{len(items)} of {total}[/]")


@events_app.command("show")
@handle_errors
def events_show(event_id: Annotated[str, typer.Argument(help="Event id.")]) -> None:
    """An event and its deliveries, as JSON."""
    print(json.dumps(_queue().event(event_id), indent=2, default=str))


@events_app.command("retry")
@handle_errors
def events_retry(
    event_id: Annotated[str, typer.Argument(help="Event id.")],
    trigger: Annotated[str | None, typer.Option(help="Only this trigger's delivery.")] = None,
) -> None:
    """Send an event's dead (or waiting) deliveries again now."""
    count = _queue().retry(event_id, trigger)
    console.print(f"{count} delivery(ies) of event {event_id} queued again")


@events_app.command("approvals")
@handle_errors
def events_approvals() -> None:
    """Runs waiting for a person's approval."""
    for item in _queue().awaiting(None):
        console.print(f"{item['id']}  trigger {item['trigger']}  event {item['key']}")


@events_app.command("approve")
@handle_errors
def events_approve(
    delivery: Annotated[str, typer.Argument(help="Delivery id (twin events approvals).")],
    reject: Annotated[bool, typer.Option("--reject", help="Refuse the run instead.")] = False,
    user: Annotated[str, typer.Option(help="Who decides (recorded).")] = "cli",
) -> None:
    """Approve (or reject) a run a trigger waits to start."""
    _queue().approve(delivery, user, not reject)
    console.print(f"delivery {delivery} {'rejected' if reject else 'approved'}")
