"""Routes of events: sources, triggers, the event queue (with retry and the dead
letters), approvals, and the webhook endpoint sources post to.

Sources and triggers are named per project: a route that names one takes ``?project=``,
or finds the name among the caller's projects (and asks for ``?project=`` when several
have it). Whatever another project holds answers exactly like something missing (the
same 404, naming no project); acting needs the editor role in the resource's own
project. Sources are shown with their secrets as ``***``; sending ``***`` back when
replacing one keeps the stored secret. Definitions are YAML/JSON within the bounds of
:func:`~twinengine.core.boundedyaml.load_definition` (no anchors or aliases).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Limit, Offset
from twinengine.core import ConfigError, NotFoundError, PayloadTooLargeError
from twinengine.core.boundedyaml import load_definition
from twinengine.events.base import no_posts, source_class
from twinengine.events.folderbounds import check_watchable

router = APIRouter(prefix="/api/v1", tags=["events"], responses=ERROR_RESPONSES)
MAX_EVENT_BYTES = 1024 * 1024  # a webhook event's body
Project = Annotated[str | None, Query(max_length=64, description="the project it is in")]


def engine(ctx: ServerContext) -> Any:
    """The app's event engine (made with the app: see ``build_context``)."""
    return ctx.extras["events"]


async def _definition(request: Request, what: str, needs_: str) -> dict[str, Any]:
    body = await request.body()
    doc = await run_in_threadpool(load_definition, body, what)
    if not isinstance(doc, dict):
        raise ConfigError(f"{what} is a mapping with {needs_}")
    return doc


def _named(
    ctx: ServerContext, who: Principal, kind: str, name: str, project: str | None, need: str
) -> dict[str, Any]:
    """The source or trigger (``kind``) ``name`` — in ``project``, or in whichever of the
    caller's projects has it — checked for role ``need``."""
    lookup = getattr(engine(ctx).store, kind)
    if project is not None:  # a project the caller is not in: found nowhere, like a ghost
        found = lookup(name, project, None if who.role_in(project) else [])
    else:
        found = lookup(name, None, who.visible_projects())
    who.check_project(found["project"], need)
    return found


# -- sources and triggers -----------------------------------------------------------------
def _add_source(
    ctx: ServerContext, who: Principal, doc: dict[str, Any], project: str, replace: bool
) -> dict[str, Any]:
    if doc.get("kind") == "folder" and who.visible_projects() is not None:  # not an admin
        check_watchable(doc, ctx.settings.watch_roots)
    return engine(ctx).store.add_source(doc, project, who.user, replace)


def _add_trigger(
    ctx: ServerContext, who: Principal, doc: dict[str, Any], project: str, replace: bool
) -> dict[str, Any]:
    events = engine(ctx)
    return events.store.add_trigger(
        doc,
        project,
        who.user,
        replace,
        workflows=events.find_workflow,
        functions=events.find_function,
        admin=who.visible_projects() is None,
    )


def _definition_routes(
    kind: str, fields: str, add: Callable[..., dict[str, Any]], listed: str | None, added: str
) -> None:
    """GET (the list) and POST (add one) of sources or triggers (``kind``); ``fields``:
    what a definition has, ``add(ctx, who, doc, project, replace)`` stores one."""
    plural = f"{kind}s"

    @router.get(
        f"/{plural}", response_model=schemas.Items, name=f"list_{plural}", description=listed
    )
    def list_them(
        project: Project = None,
        who: Principal = Depends(needs("read")),
        ctx: ServerContext = Depends(context),
    ):
        return {"items": getattr(engine(ctx).store, plural)(ctx.visible(who, project))}

    @router.post(f"/{plural}", status_code=201, name=f"add_{kind}", description=added)
    async def add_it(
        request: Request,
        project: Project = None,
        replace: bool = False,
        who: Principal = Depends(needs("run")),
        ctx: ServerContext = Depends(context),
    ) -> dict:
        doc = await _definition(request, f"the {kind} definition", fields)
        project = ctx.project_for(who, doc.get("project") or project, "editor")
        made = await run_in_threadpool(add, ctx, who, doc, project, replace)
        await run_in_threadpool(engine(ctx).reload, True)
        return made


_definition_routes(
    "source",
    "name, kind and its settings",
    _add_source,
    "Event sources with their status (ok, retrying, down, paused, passive); secrets\n"
    "are shown as ``***``.",
    "Add a source from its YAML/JSON definition (name, kind, settings); ``replace``\n"
    "changes the one of that name in the same project (a ``***`` keeps its secret).",
)
_definition_routes(
    "trigger",
    "name, source and workflow",
    _add_trigger,
    None,
    "Add a trigger from its YAML/JSON definition (see docs/events.md). Its source,\n"
    "workflow and function must be in its project. A trigger an admin adds also sees\n"
    "events of no project (runs started with ``twin run``).",
)


def _named_routes(kind: str) -> None:
    """GET / pause / resume / DELETE of one source or trigger (``kind``) by name."""
    plural = f"{kind}s"

    def pause(
        ctx: ServerContext, who: Principal, name: str, project: str | None, paused: bool
    ) -> dict[str, Any]:
        found = _named(ctx, who, kind, name, project, "editor")
        store = engine(ctx).store
        changed = getattr(store, f"pause_{kind}")(name, paused, found["project"])
        engine(ctx).reload(True)
        return changed

    @router.get(f"/{plural}/{{name}}", name=f"show_{kind}")
    def show(
        name: str,
        project: Project = None,
        who: Principal = Depends(needs("read")),
        ctx: ServerContext = Depends(context),
    ) -> dict:
        return _named(ctx, who, kind, name, project, "viewer")

    @router.post(f"/{plural}/{{name}}/pause", name=f"pause_{kind}")
    def pause_it(
        name: str,
        project: Project = None,
        who: Principal = Depends(needs("run")),
        ctx: ServerContext = Depends(context),
    ) -> dict:
        return pause(ctx, who, name, project, True)

    @router.post(f"/{plural}/{{name}}/resume", name=f"resume_{kind}")
    def resume_it(
        name: str,
        project: Project = None,
        who: Principal = Depends(needs("run")),
        ctx: ServerContext = Depends(context),
    ) -> dict:
        return pause(ctx, who, name, project, False)

    @router.delete(f"/{plural}/{{name}}", status_code=204, name=f"delete_{kind}")
    def delete_it(
        name: str,
        project: Project = None,
        who: Principal = Depends(needs("run")),
        ctx: ServerContext = Depends(context),
    ) -> Response:
        found = _named(ctx, who, kind, name, project, "editor")
        getattr(engine(ctx).store, f"delete_{kind}")(name, found["project"])
        engine(ctx).reload(True)
        return Response(status_code=204)


_named_routes("source")
_named_routes("trigger")


# -- the queue ----------------------------------------------------------------------------
@router.get("/events", response_model=schemas.Page)
def list_events(
    source: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    project: Project = None,
    limit: Limit = 50,
    offset: Offset = 0,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Events newest first, each with its deliveries (state, attempts, run, error);
    ``state=dead`` lists the dead letters."""
    projects = ctx.visible(who, project)
    items, total = engine(ctx).queue.events(projects, source, state, limit, offset)
    return {"items": items, "total": total}


@router.get("/events/approvals", response_model=schemas.Items)
def approvals(
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
):
    """Deliveries waiting for a person to approve their run (of the caller's projects'
    triggers)."""
    return {"items": engine(ctx).queue.awaiting(ctx.visible(who, project))}


@router.post("/events/approvals/{delivery_id}")
def decide(
    delivery_id: str,
    approve: bool = True,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Approve (or, with ``approve=false``, reject) a waiting run: an editor of the
    trigger's project."""
    delivery = engine(ctx).queue.delivery(delivery_id)
    ctx.owned(who, delivery["project"], "editor", NotFoundError(f"no delivery {delivery_id!r}"))
    return engine(ctx).approve(delivery_id, who.user, approve)


def _event(ctx: ServerContext, who: Principal, event_id: str, need: str) -> dict[str, Any]:
    event = engine(ctx).queue.event(event_id)
    missing = NotFoundError(f"no event {event_id!r}", hint="`twin events list`")
    ctx.owned(who, event["project"], need, missing)
    return event


@router.get("/events/{event_id}")
def show_event(
    event_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    return _event(ctx, who, event_id, "viewer")


@router.post("/events/{event_id}/retry")
def retry_event(
    event_id: str,
    trigger: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Send an event's dead (or waiting-to-retry) deliveries again now."""
    _event(ctx, who, event_id, "editor")
    return {"retried": engine(ctx).retry(event_id, trigger)}


@router.post("/events/{source}", status_code=202)
async def post_event(
    source: str,
    request: Request,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Webhook: an event for a ``webhook`` source (JSON object or list), or a MinIO/S3
    bucket notification for an ``s3`` source. Stored before this answers."""
    events = engine(ctx)
    found = await run_in_threadpool(_named, ctx, who, "source", source, project, "editor")
    body = await request.body()
    if len(body) > MAX_EVENT_BYTES:
        raise PayloadTooLargeError(f"an event body may be at most {MAX_EVENT_BYTES} bytes")
    headers = {k.lower(): v for k, v in request.headers.items()}
    parsed = await run_in_threadpool(_parse_webhook, events, found, body, headers)
    ids = []
    for event in parsed:
        ids.append(await run_in_threadpool(events.ingest, event, found["project"]))
    return {"accepted": len(parsed), "new": len([i for i in ids if i]), "events": ids}


def _parse_webhook(
    events: Any, found: dict[str, Any], body: bytes, headers: dict[str, str]
) -> list[Any]:
    kind = source_class(found["kind"])
    if not kind.takes_posts():  # refused without building the source
        raise no_posts(found["name"], found["kind"])
    row = events.store.sealed_source(found["name"], found["project"])
    source = kind(row["name"], events.store.open_config(row))  # its secret checks the body
    return source.parse(body, headers.get("content-type", ""), headers)
