"""Routes of events: sources, triggers, the event queue (with retry and the dead
letters), approvals, and the webhook endpoint sources post to."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Limit, Offset
from twinengine.core import ConfigError, PayloadTooLargeError

router = APIRouter(prefix="/api/v1", tags=["events"], responses=ERROR_RESPONSES)
MAX_EVENT_BYTES = 1024 * 1024  # a webhook event's body


def engine(ctx: ServerContext) -> Any:
    """The app's event engine (made with the app: see ``build_context``)."""
    return ctx.extras["events"]


def _definition(text: bytes) -> Any:
    try:
        return yaml.safe_load(text.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"the definition is not valid YAML/JSON: {exc}") from None


def _visible(ctx: ServerContext, who: Principal, project: str, need: str = "viewer") -> None:
    ctx.owned(who, project, need)


# -- sources ------------------------------------------------------------------------------
@router.get("/sources", response_model=schemas.Items)
def list_sources(who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)):
    """Event sources with their status (ok, retrying, down, paused, passive)."""
    return {"items": engine(ctx).store.sources(who.visible_projects())}


@router.post("/sources", status_code=201)
async def add_source(
    request: Request,
    project: Annotated[str | None, Query(max_length=64)] = None,
    replace: bool = False,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add a source from its YAML/JSON definition (name, kind, settings)."""
    body = await request.body()
    doc = _definition(body)
    if not isinstance(doc, dict):
        raise ConfigError("a source is a mapping with name, kind and its settings")
    project = ctx.project_for(who, doc.get("project") or project, "editor")
    events = engine(ctx)
    made = await run_in_threadpool(events.store.add_source, doc, project, who.user, replace)
    await run_in_threadpool(events.reload, True)
    return made


# -- triggers -----------------------------------------------------------------------------
@router.get("/triggers", response_model=schemas.Items)
def list_triggers(who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)):
    return {"items": engine(ctx).store.triggers(who.visible_projects())}


@router.post("/triggers", status_code=201)
async def add_trigger(
    request: Request,
    project: Annotated[str | None, Query(max_length=64)] = None,
    replace: bool = False,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add a trigger from its YAML/JSON definition (see docs/events.md)."""
    doc = _definition(await request.body())
    if not isinstance(doc, dict):
        raise ConfigError("a trigger is a mapping with at least name, source and workflow")
    project = ctx.project_for(who, doc.get("project") or project, "editor")
    events = engine(ctx)
    made = await run_in_threadpool(
        lambda: events.store.add_trigger(
            doc, project, who.user, replace, workflows=events.find_workflow
        )
    )
    await run_in_threadpool(events.reload, True)
    return made


def _named_routes(kind: str) -> None:
    """GET / pause / resume / DELETE of one source or trigger (``kind``) by name."""
    plural = f"{kind}s"

    def get(ctx: ServerContext, name: str) -> dict[str, Any]:
        return getattr(engine(ctx).store, kind)(name)

    def pause(ctx: ServerContext, who: Principal, name: str, paused: bool) -> dict[str, Any]:
        _visible(ctx, who, get(ctx, name)["project"], "editor")
        changed = getattr(engine(ctx).store, f"pause_{kind}")(name, paused)
        engine(ctx).reload(True)
        return changed

    @router.get(f"/{plural}/{{name}}", name=f"show_{kind}")
    def show(
        name: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
    ) -> dict:
        found = get(ctx, name)
        _visible(ctx, who, found["project"])
        return found

    @router.post(f"/{plural}/{{name}}/pause", name=f"pause_{kind}")
    def pause_it(
        name: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
    ) -> dict:
        return pause(ctx, who, name, True)

    @router.post(f"/{plural}/{{name}}/resume", name=f"resume_{kind}")
    def resume_it(
        name: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
    ) -> dict:
        return pause(ctx, who, name, False)

    @router.delete(f"/{plural}/{{name}}", status_code=204, name=f"delete_{kind}")
    def delete_it(
        name: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
    ) -> Response:
        _visible(ctx, who, get(ctx, name)["project"], "editor")
        getattr(engine(ctx).store, f"delete_{kind}")(name)
        engine(ctx).reload(True)
        return Response(status_code=204)


_named_routes("source")
_named_routes("trigger")


# -- the queue ----------------------------------------------------------------------------
@router.get("/events", response_model=schemas.Page)
def list_events(
    source: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Events newest first, each with its deliveries (state, attempts, run, error);
    ``state=dead`` lists the dead letters."""
    items, total = engine(ctx).queue.events(who.visible_projects(), source, state, limit, offset)
    return {"items": items, "total": total}


@router.get("/events/approvals", response_model=schemas.Items)
def approvals(who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)):
    """Deliveries waiting for a person to approve their run."""
    return {"items": engine(ctx).queue.awaiting(who.visible_projects())}


@router.post("/events/approvals/{delivery_id}")
def decide(
    delivery_id: str,
    approve: bool = True,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Approve (or, with ``approve=false``, reject) a waiting run."""
    delivery = engine(ctx).queue.delivery(delivery_id)
    _visible(ctx, who, delivery["project"], "editor")
    return engine(ctx).approve(delivery_id, who.user, approve)


@router.get("/events/{event_id}")
def show_event(
    event_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    event = engine(ctx).queue.event(event_id)
    _visible(ctx, who, event["project"])
    return event


@router.post("/events/{event_id}/retry")
def retry_event(
    event_id: str,
    trigger: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Send an event's dead (or waiting-to-retry) deliveries again now."""
    _visible(ctx, who, engine(ctx).queue.event(event_id)["project"], "editor")
    return {"retried": engine(ctx).retry(event_id, trigger)}


@router.post("/events/{source}", status_code=202)
async def post_event(
    source: str,
    request: Request,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Webhook: an event for a ``webhook`` source (JSON object or list), or a MinIO/S3
    bucket notification for an ``s3`` source. Stored before this answers."""
    events = engine(ctx)
    row = await run_in_threadpool(events.store.source, source)
    _visible(ctx, who, row["project"], "editor")
    body = await request.body()
    if len(body) > MAX_EVENT_BYTES:
        raise PayloadTooLargeError(f"an event body may be at most {MAX_EVENT_BYTES} bytes")
    parsed = await run_in_threadpool(_parse_webhook, row, body, request)
    ids = []
    for event in parsed:
        ids.append(await run_in_threadpool(events.ingest, event, row["project"]))
    return {"accepted": len(parsed), "new": len([i for i in ids if i]), "events": ids}


def _parse_webhook(row: dict[str, Any], body: bytes, request: Request) -> list[Any]:
    from twinengine.events.base import no_posts, source_class

    kind = source_class(row["kind"])
    if not kind.takes_posts():  # refused without building the source
        raise no_posts(row["name"], row["kind"])
    source = kind(row["name"], row["config"])
    headers = {k.lower(): v for k, v in request.headers.items()}
    return source.parse(body, headers.get("content-type", ""), headers)
