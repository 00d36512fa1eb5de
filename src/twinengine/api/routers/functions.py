"""Routes of functions (serverless steps): deploy, list, show, delete, invoke, calls, logs.

The server's :class:`~twinengine.events.function_service.FunctionService` lives in
``ctx.extras["functions"]`` (made with the server context; :func:`shutdown_functions`
stops its workers when the app ends). Function names are per project: a route that names
one takes ``?project=``, or finds the name among the caller's projects (409 asking for
``?project=`` when several have it); a function or call of a project the caller is not
in answers exactly like a missing one (the same 404, naming no project). Invoking
answers 200 with the finished call — also when the *function* failed (``state: failed``
and its ``error``): the request was fine, the call is the resource — and 202 with the
call's id for ``?async=true``. 4xx are for bad requests only (unknown function, an
input that is not a JSON object, a bad timeout).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Items, Limit, Time
from twinengine.core import NotFoundError
from twinengine.events.function_service import FunctionService

router = APIRouter(prefix="/api/v1", tags=["functions"], responses=ERROR_RESPONSES)
Project = Annotated[str | None, Query(max_length=64, description="the function's project")]


class FunctionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["python", "command"]
    target: str | list[Annotated[str, Field(max_length=4096)]] = Field(
        description="module:function (python), or a command line: a string or a list"
    )
    project: str | None = Field(None, max_length=64)
    min_workers: int = Field(0, ge=0, le=64)
    max_workers: int = Field(2, ge=1, le=64)
    timeout: float = Field(60.0, gt=0, le=86400, description="seconds a call may take")
    env: dict[str, Annotated[str, Field(max_length=4096)]] | None = None
    network: bool = Field(False, description="the workers may use the network")


class Function(BaseModel):
    name: str
    project: str
    kind: str
    target: str
    min_workers: int
    max_workers: int
    timeout: float
    env: list[str] = Field(description="names of the variables set (values are not shown)")
    network: bool = False
    created_at: Time | None = None
    created_by: str | None = None
    workers: int = Field(0, description="workers running now on this server")
    busy: int = 0
    queued: int = 0


class Call(BaseModel):
    id: str
    function: str
    project: str | None = Field(None, description="the function's project")
    state: str
    input: Any = None
    result: Any = None
    error: str | None = None
    logs: str = ""
    created_at: Time | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    duration: float | None = Field(None, description="seconds the call ran")


class CallLog(BaseModel):
    id: str
    state: str
    created_at: Time | None = None
    started_at: Time | None = None
    ended_at: Time | None = None
    error: str | None = None
    logs: str = ""


class CallQueued(BaseModel):
    id: str
    state: str
    url: str = Field(description="where to poll the call")


def functions_of(ctx: ServerContext) -> FunctionService:
    """The server's function service (made with the app: see ``build_context``)."""
    return ctx.extras["functions"]


def shutdown_functions(ctx: ServerContext) -> None:
    """Stop the workers of every function (when the app ends)."""
    service = ctx.extras.pop("functions", None)
    if service is not None:
        service.shutdown()


def visible_function(
    ctx: ServerContext, who: Principal, name: str, project: str | None, need: str = "viewer"
) -> dict[str, Any]:
    """The function ``name`` of ``project`` — or of whichever of the caller's projects
    has it (409 asking for ``?project=`` when several do) — checked for role ``need``
    (403 below it). One of a project the caller is not in answers exactly like a
    missing one."""
    service = functions_of(ctx)
    try:
        if project is not None:  # a project the caller is not in: found nowhere
            found = service.get(name, project, None if who.role_in(project) else [])
        else:
            found = service.get(name, None, who.visible_projects())
    except NotFoundError:
        raise _missing(name) from None
    who.check_project(found["project"], need)
    return found


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"no function {name!r}", hint="`GET /api/v1/functions` lists yours")


def function_view(ctx: ServerContext, definition: dict[str, Any]) -> dict[str, Any]:
    view = {**definition, "env": sorted(definition.get("env") or {})}
    stats = functions_of(ctx).stats(definition["name"], definition["project"])
    view.update(workers=stats["workers"], busy=stats["busy"], queued=stats["queued"])
    return view


@router.get("/functions", response_model=Items)
def list_functions(
    project: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Deployed functions of the caller's projects (or of one), by name."""
    items = functions_of(ctx).list(ctx.visible(who, project))
    views = [Function(**function_view(ctx, f)).model_dump(mode="json") for f in items]
    return {"items": views}


@router.post("/functions", response_model=Function, status_code=201)
def deploy_function(
    body: FunctionIn,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Deploy a function in a project (the body's, else ``?project=``, else ``default``);
    one of the same name there is replaced (its workers restart), other projects' are
    theirs."""
    project = ctx.project_for(who, body.project or project, "editor")
    definition = functions_of(ctx).deploy(
        body.name,
        body.kind,
        body.target,
        project,
        min_workers=body.min_workers,
        max_workers=body.max_workers,
        timeout=body.timeout,
        env=body.env,
        created_by=who.user,
        network=body.network,
    )
    return function_view(ctx, definition)


@router.get("/functions/calls/{call_id}", response_model=Call)
def show_call(
    call_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """One call (poll an asynchronous invocation here)."""
    missing = NotFoundError(f"no function call {call_id!r}")
    try:
        call = functions_of(ctx).call(call_id)
    except NotFoundError:
        raise missing from None
    project = call["project"]  # None: a call recorded before calls had one (admins only)
    seen = who.role_in(project) is not None if project else who.visible_projects() is None
    if not seen:
        raise missing
    return call


@router.get("/functions/{name}", response_model=Function)
def show_function(
    name: str,
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """A function's definition and its workers now."""
    return function_view(ctx, visible_function(ctx, who, name, project))


@router.delete("/functions/{name}", status_code=204)
def delete_function(
    name: str,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """Delete a function, its workers and the records of its calls."""
    found = visible_function(ctx, who, name, project, "editor")
    functions_of(ctx).delete(name, found["project"])
    return Response(status_code=204)


@router.post(
    "/functions/{name}/invoke",
    response_model=Call,
    responses={202: {"model": CallQueued, "description": "queued (async=true)"}},
)
async def invoke_function(
    name: str,
    value: Annotated[dict[str, Any] | None, Body(description="the input object")] = None,
    run_async: Annotated[bool, Query(alias="async")] = False,
    timeout: Annotated[float | None, Query(gt=0, le=86400)] = None,
    project: Project = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Any:
    """Call a function with the JSON body as input. Waits and answers 200 with the call
    (``state`` succeeded or failed); with ``async=true`` answers 202 with its id at once."""
    definition = await run_in_threadpool(visible_function, ctx, who, name, project, "editor")
    service = functions_of(ctx)
    call_id, future = await run_in_threadpool(  # run only by that project's function
        service.enqueue, name, value or {}, timeout, definition["project"]
    )
    if run_async:
        url = f"/api/v1/functions/calls/{call_id}"
        return JSONResponse({"id": call_id, "state": "queued", "url": url}, status_code=202)
    await asyncio.wrap_future(future)  # no server thread is held while the call runs
    return await run_in_threadpool(service.call, call_id)


@router.get("/functions/{name}/calls", response_model=Items)
def function_calls(
    name: str,
    limit: Limit = 50,
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """The latest calls of a function, newest first."""
    found = visible_function(ctx, who, name, project)
    calls = functions_of(ctx).calls(name, limit, found["project"])
    return {"items": [Call(**c).model_dump(mode="json") for c in calls]}


@router.get("/functions/{name}/logs", response_model=Items)
def function_logs(
    name: str,
    limit: Limit = 20,
    project: Project = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """What the latest calls printed (with their id, state, times and error), newest first."""
    found = visible_function(ctx, who, name, project)
    entries = functions_of(ctx).logs(name, limit, found["project"])
    return {"items": [CallLog(**e).model_dump(mode="json") for e in entries]}
