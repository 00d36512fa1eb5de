"""Routes of notifications: the caller's inbox (list, mark read, a live Server-Sent Events
stream), their subscriptions (list, add, remove, send a test), and publishing a note to
a project. One :class:`~twinengine.notify.NotificationCenter` per app lives in
``ctx.extras["notify"]``, created on first use. Notes are shown with server paths
rewritten; deliveries go to public addresses only (see :mod:`twinengine.notify.addresses`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator

from twinengine.api.accounts import ROLES, Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Limit, Strict, Time
from twinengine.api.sse import KeepAlive, event_stream
from twinengine.core import ForbiddenError, NotFoundError, TwinError
from twinengine.notify import Note

router = APIRouter(prefix="/api/v1", tags=["notifications"], responses=ERROR_RESPONSES)
_POLL = 0.5
_LOOKBACK = dt.timedelta(seconds=2)  # notes committed late, with an earlier timestamp
KIND = Field(pattern=r"^[a-z][a-z0-9_.-]{0,31}$")
EDITOR = ROLES.index("editor")


def center(ctx: ServerContext) -> Any:
    """The app's NotificationCenter (made with the app: see ``build_context``)."""
    return ctx.extras["notify"]


# -- bodies ------------------------------------------------------------------------------
class Notification(BaseModel):
    id: str
    kind: str
    title: str
    body: str = ""
    project: str | None = None
    trigger: str | None = None
    user: str | None = None  # the addressee; None: everyone in the project
    data: dict[str, Any] = Field(default_factory=dict)
    link: str | None = None
    url: str | None = None
    created_at: Time
    read: bool = False
    read_at: Time | None = None


class NotificationPage(BaseModel):
    items: list[Notification]
    unread: int


class NoteIn(Strict):
    kind: str = KIND
    title: str = Field(min_length=1, max_length=500)
    body: str = Field("", max_length=20000)
    project: str | None = Field(None, min_length=1, max_length=64)  # default: "default"
    trigger: str | None = Field(None, min_length=1, max_length=64)
    data: dict[str, Any] = Field(default_factory=dict)
    link: str | None = Field(None, max_length=2000, description="a UI path, e.g. /#/runs/ID")
    user: str | None = Field(None, min_length=1, max_length=64, description="one addressee")


class ReadIn(Strict):
    ids: list[Annotated[str, Field(min_length=1, max_length=32)]] | None = Field(
        None, max_length=1000
    )
    all: bool = False

    @model_validator(mode="after")
    def one_of(self) -> ReadIn:
        if (self.ids is None) == (not self.all):
            raise ValueError('give either "ids": [...] or "all": true')
        return self


class ReadOut(BaseModel):
    marked: int


class SubscriptionIn(Strict):
    channel: str = Field(min_length=1, max_length=16, description="ui, webhook, email, apprise")
    target: str | None = Field(None, max_length=2000)
    project: str | None = Field(None, min_length=1, max_length=64)  # None: all of yours
    trigger: str | None = Field(None, min_length=1, max_length=64)  # None: any
    kinds: list[Annotated[str, KIND]] = Field(default_factory=list, max_length=50)


class Subscription(BaseModel):
    id: str
    user: str
    channel: str
    target: str | None
    project: str | None
    trigger: str | None
    kinds: list[str]
    active: bool
    created_at: Time


class SubscriptionPage(BaseModel):
    items: list[Subscription]


class TestResult(BaseModel):
    ok: bool
    channel: str
    target: str | None
    note: str | None


# -- the inbox ---------------------------------------------------------------------------
@router.get("/notifications", response_model=NotificationPage)
def list_notifications(
    unread: bool = False,
    limit: Limit = 50,
    after: Annotated[str | None, Query(min_length=1, max_length=32)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """The caller's notes (theirs and their projects'), newest first; with ``after`` (a
    note id) the newer ones, oldest first. ``unread`` counts all unread notes."""
    notes = center(ctx)
    projects = who.visible_projects()
    items = notes.inbox(who.user, projects, unread_only=unread, limit=limit, after=after)
    return {"items": ctx.paths.value(items), "unread": notes.unread_count(who.user, projects)}


@router.post("/notifications/read", response_model=ReadOut)
def mark_read(
    body: ReadIn, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """Mark notes read: ``{"ids": [...]}`` or ``{"all": true}``; how many were marked."""
    ids = None if body.all else body.ids
    return {"marked": center(ctx).mark_read(ids, who.user, who.visible_projects())}


@router.post("/notifications", response_model=Notification, status_code=201)
def publish(
    body: NoteIn, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> dict:
    """Publish a note to a project (editor role; default ``default``), or to one member of
    it (``user``). A ``link`` must be a path of this site (one ``/``, no backslash,
    whitespace or control character)."""
    project = ctx.project_for(who, body.project, "editor")
    if body.user is not None:
        try:
            addressee = ctx.accounts.user(body.user)
        except NotFoundError:
            addressee = None
        if addressee is None or not (
            addressee["admin"] or project in ctx.accounts.roles_of(body.user)
        ):
            raise NotFoundError(f"no user {body.user!r} in project {project!r}")
    note = Note(
        kind=body.kind,
        title=body.title,
        body=body.body,
        project=project,
        trigger=body.trigger,
        data=body.data,
        link=body.link,
    )
    notes = center(ctx)
    note_id = notes.publish(note, body.user)
    return ctx.paths.value(notes.note(note_id, who.user, None))


def _sse(note: dict[str, Any]) -> str:
    return f"id: {note['id']}\nevent: note\ndata: {json.dumps(note)}\n\n"


@router.get("/notifications/stream", response_class=StreamingResponse)
async def notification_stream(
    request: Request, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> StreamingResponse:
    """Server-Sent Events: a ``note`` event for each note published for the caller from
    now on (after ``Last-Event-ID`` when reconnecting); ``: ping`` every 15 s."""
    notes = center(ctx)
    projects = who.visible_projects()
    start = dt.datetime.now(dt.UTC)
    resume = request.headers.get("last-event-id", "").strip()[:32] or None

    def poll(since: dt.datetime) -> list[dict[str, Any]]:
        return notes.inbox(who.user, projects, limit=200, since=since)

    def missed() -> list[dict[str, Any]]:
        try:
            return notes.inbox(who.user, projects, limit=200, after=resume)
        except TwinError:  # an unknown id: start from now
            return []

    async def events() -> AsyncIterator[str]:
        yield "retry: 2000\n: connected\n\n"
        seen: dict[str, dt.datetime] = {}
        cursor = start
        backlog = await run_in_threadpool(missed) if resume else []
        keepalive = KeepAlive(_POLL)
        while not await request.is_disconnected():
            items = backlog or await run_in_threadpool(poll, max(start, cursor - _LOOKBACK))
            backlog = []
            for item in items:
                if item["id"] in seen:
                    continue
                created = dt.datetime.fromisoformat(item["created_at"])
                seen[item["id"]] = created
                cursor = max(cursor, created)
                keepalive.heard()
                yield _sse(ctx.paths.value(item))
            horizon = cursor - 2 * _LOOKBACK
            seen = {k: v for k, v in seen.items() if v >= horizon}
            if (ping := await keepalive.wait()) is not None:
                yield ping

    return event_stream(events())


# -- subscriptions -----------------------------------------------------------------------
@router.get("/subscriptions", response_model=SubscriptionPage)
def list_subscriptions(
    who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """The caller's subscriptions (targets' secrets hidden)."""
    return {"items": center(ctx).subscriptions(who.user)}


def _may_subscribe(ctx: ServerContext, who: Principal, project: str | None) -> None:
    """A subscription makes the server send notes somewhere: it needs the editor role in
    its project — or, without a project (all of the caller's), in each of theirs."""
    if project is not None:
        ctx.project_for(who, project, "editor")
        return
    if who.is_admin:
        return
    below = sorted(p for p, role in who.roles.items() if ROLES.index(role) < EDITOR)
    if below or not who.roles:
        where = f"you are a viewer in {', '.join(below)}" if below else "you have no project"
        raise ForbiddenError(
            f"a subscription to all your projects needs the editor role in each; {where}",
            hint='name one project where you are an editor: "project": "NAME"',
        )


@router.post("/subscriptions", response_model=Subscription, status_code=201)
def subscribe(
    body: SubscriptionIn,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Subscribe the caller to notes of one project (or all theirs) through a channel;
    needs the editor role there (in each of them)."""
    _may_subscribe(ctx, who, body.project)
    return center(ctx).subscribe(
        who.user, body.channel, body.target, body.project, body.trigger, body.kinds
    )


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(
    subscription_id: str,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """Remove one of the caller's subscriptions."""
    center(ctx).unsubscribe(subscription_id, who.user)
    return Response(status_code=204)


@router.post("/subscriptions/{subscription_id}/test", response_model=TestResult)
def test_subscription(
    subscription_id: str,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Send a test note through one subscription now (the editor role in its project, as
    when subscribing); 400 saying only that it failed or was refused."""
    notes = center(ctx)
    _may_subscribe(ctx, who, notes.store.row(subscription_id, who.user)["project"])
    return notes.test(subscription_id, who.user)
