"""Routes of runs: uploads, launch, list, show, logs, outputs, files, cancel, resume,
delete, and Server-Sent Events of their progress.

What a run stored (inputs, outputs, errors, step tools, logs) is shown with server paths
rewritten (:class:`~twinengine.api.paths.ServerPaths`: an output file's location is its
download URL); a file is served only from inside the run's output folder, never through
a link (:func:`~twinengine.api.files.open_beneath`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import mimetypes
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import PlainTextResponse, StreamingResponse

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.filenames import client_file_name
from twinengine.api.files import digest, file_response, open_beneath
from twinengine.api.missing import missing_run, missing_workflow
from twinengine.api.schemas import Limit, Offset
from twinengine.api.sse import KeepAlive, event_stream
from twinengine.core import NotFoundError, State
from twinengine.workflows.inputs import resolve_inputs
from twinengine.workflows.safetext import check_text

router = APIRouter(prefix="/api/v1", tags=["runs"], responses=ERROR_RESPONSES)
_FINAL = {s.value for s in State if s.finished} | {State.INTERRUPTED.value}
_POLL = 0.3


def visible_run(ctx: ServerContext, who: Principal, run_id: str, need: str = "viewer") -> dict:
    """The run ``run_id`` (or a unique prefix of it) if the caller has role ``need`` in its
    project; another project's run answers exactly like a missing one."""
    run = ctx.runs.get(run_id)
    ctx.owned(who, run.get("project"), need, missing_run(run_id))
    return run


def run_view(ctx: ServerContext, run: dict[str, Any], steps: bool = False) -> dict[str, Any]:
    view = dict(run)
    view["step_counts"] = run.get("steps") if isinstance(run.get("steps"), dict) else {}
    view["inputs"] = run.get("job_order")
    view.pop("steps", None)
    workflow = ctx.extras.get("workflow_names", {}).get(run.get("workflow_id"))
    if workflow is None and run.get("workflow_id"):
        try:
            row = ctx.registry.get(run["workflow_id"])
            workflow = (row["name"], row["version"])
        except NotFoundError:
            workflow = (None, None)
        ctx.extras.setdefault("workflow_names", {})[run["workflow_id"]] = workflow
    view["workflow_name"], view["workflow_version"] = workflow or (None, None)
    if steps:
        view["steps"] = ctx.runs.steps(run["id"])
    for key in ("inputs", "outputs", "error", "steps", "name"):
        view[key] = ctx.paths.value(view.get(key))
    return view


@router.post("/uploads", response_model=schemas.Upload, status_code=201)
def upload_input(
    file: Annotated[UploadFile, File(description="an input file for a run")],
    project: Annotated[str | None, Form(max_length=64)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Store an input file; use it as ``{"class": "File", "location": "upload:ID"}``."""
    project = ctx.project_for(who, project, "editor")
    name = client_file_name(file.filename, "upload")  # 300 characters: cut, not a 500
    return ctx.uploads.save(file.file, name, project=project, created_by=who.user)


@router.post("/runs", response_model=schemas.Run, status_code=201)
def launch_run(
    body: schemas.RunIn,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Queue a run of a registered workflow with an input object (its name and every
    string in it must be text a program can be given: no NUL …)."""
    check_text(body.name, "the run's name")
    workflow = ctx.registry.row(body.workflow)
    ctx.owned(who, workflow["project"], "editor", missing_workflow(body.workflow))
    interface = (workflow.get("interface") or {}).get("inputs", [])
    job = resolve_inputs(
        interface, body.inputs, project=workflow["project"], uploads_store=ctx.uploads
    )
    run_id = ctx.dispatcher.submit(
        workflow, job, created_by=who.user, name=body.name, cache=body.cache, given=body.inputs
    )
    return run_view(ctx, ctx.runs.get(run_id))


@router.get("/runs", response_model=schemas.RunPage)
def list_runs(
    project: Annotated[str | None, Query(max_length=64)] = None,
    state: Annotated[str | None, Query(max_length=16)] = None,
    workflow: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Runs, newest first, with filters and pagination."""
    items, total = ctx.runs.page(
        projects=ctx.visible(who, project),
        state=state,
        workflow_id=workflow,
        q=q,
        limit=limit,
        offset=offset,
    )
    return {
        "items": [run_view(ctx, r) for r in items],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.get("/runs/{run_id}", response_model=schemas.Run)
def show_run(
    run_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """A run with its steps."""
    run = visible_run(ctx, who, run_id)
    run["steps"] = ctx.runs.step_counts([run["id"]]).get(run["id"], {})
    return run_view(ctx, run, steps=True)


@router.get("/runs/{run_id}/logs", response_class=PlainTextResponse)
async def run_logs(
    run_id: str,
    step: Annotated[str | None, Query(max_length=500)] = None,
    stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stderr",
    follow: bool = False,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """A step's stdout or stderr (all steps when no step is named); ``follow`` streams
    until the step (or run) ends."""
    run = await run_in_threadpool(visible_run, ctx, who, run_id)
    if step:
        await run_in_threadpool(ctx.runs.find_step, run["id"], step)
    if not follow:
        text = await run_in_threadpool(ctx.runs.logs, run["id"], step, stream)
        return PlainTextResponse(ctx.paths.text(text))

    async def chunks() -> AsyncIterator[str]:
        sent = 0
        while True:
            text = await run_in_threadpool(ctx.runs.logs, run["id"], step, stream)
            whole = text.rfind("\n", sent) + 1  # whole lines only: a path is never cut
            if whole > sent:
                yield ctx.paths.text(text[sent:whole])
                sent = whole
            state = await run_in_threadpool(_state_of, ctx, run["id"], step)
            if state in _FINAL:
                text = await run_in_threadpool(ctx.runs.logs, run["id"], step, stream)
                if len(text) > sent:
                    yield ctx.paths.text(text[sent:])
                return
            await asyncio.sleep(_POLL)

    return StreamingResponse(chunks(), media_type="text/plain")


def _state_of(ctx: ServerContext, run_id: str, step: str | None) -> str:
    if step:
        return ctx.runs.find_step(run_id, step)["state"]
    return ctx.runs.get(run_id)["state"]


def _outdir(run: dict[str, Any]) -> Path | None:
    return Path(run["outdir"]) if run.get("outdir") else None


def _with_downloads(value: Any, run_id: str, outdir: Path | None) -> Any:
    """The output object with a ``download`` link and ``sha256`` on each File inside the
    output folder (paths are rewritten afterwards)."""
    if isinstance(value, list):
        return [_with_downloads(v, run_id, outdir) for v in value]
    if not isinstance(value, dict):
        return value
    item = {k: _with_downloads(v, run_id, outdir) for k, v in value.items()}
    if value.get("class") == "File" and outdir is not None:
        path = Path(str(value.get("path") or value.get("location", "")).removeprefix("file://"))
        relative = _relative(path, outdir)
        found = _digest(outdir, relative) if relative else None
        if relative and found:
            item["download"] = f"/api/v1/runs/{run_id}/files/{relative}"
            known = value.get("twin:sha256")  # what provenance names the file by
            item["sha256"] = str(known or found).removeprefix("sha256:").removeprefix("sha256$")
    return item


def _relative(path: Path, outdir: Path) -> str | None:
    """``path`` relative to the output folder, as written (no link resolved); None outside."""
    try:
        relative = path.relative_to(outdir).as_posix()
    except ValueError:
        return None
    return None if ".." in relative.split("/") else relative


_DIGESTS: dict[tuple[str, int, int], str | None] = {}


def _digest(outdir: Path, relative: str) -> str | None:
    """SHA-256 of an output file (remembered while the file is unchanged); None for a
    link, a pipe or anything that is not a regular file inside the output folder."""
    try:
        fd, info = open_beneath(outdir, relative)
    except NotFoundError:
        return None
    os.close(fd)
    key = (str(outdir / relative), info.st_mtime_ns, info.st_size)
    if key not in _DIGESTS:
        if len(_DIGESTS) > 10000:
            _DIGESTS.clear()
        _DIGESTS[key] = digest(outdir, relative)
    return _DIGESTS[key]


@router.get("/runs/{run_id}/outputs", response_model=schemas.Outputs)
def run_outputs(
    run_id: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """The run's CWL output object; each File in the output folder has a ``download`` link
    (also its ``location``) and its ``sha256``."""
    run = visible_run(ctx, who, run_id)
    outputs = _with_downloads(run.get("outputs"), run["id"], _outdir(run))
    return {"outputs": ctx.paths.value(outputs)}


@router.get("/runs/{run_id}/files/{path:path}", response_class=StreamingResponse)
def run_file(
    run_id: str,
    path: str,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> StreamingResponse:
    """Download a regular file from the run's output folder (never through a link)."""
    run = visible_run(ctx, who, run_id)
    outdir = _outdir(run)
    try:
        if outdir is None:
            raise NotFoundError("no output folder")
        fd, info = open_beneath(outdir, path)
    except NotFoundError:
        raise NotFoundError(f"run {run['id']} has no output file {path!r}") from None
    name = path.rsplit("/", 1)[-1]
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return file_response(fd, info, name, kind)


@router.post("/runs/{run_id}/cancel", response_model=schemas.Run)
def cancel_run(
    run_id: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> dict:
    """Cancel a queued or running run (its processes are stopped)."""
    run = visible_run(ctx, who, run_id, "editor")
    if not ctx.dispatcher.cancel_queued(run["id"]):
        ctx.runs.cancel(run["id"])
    return run_view(ctx, ctx.runs.get(run["id"]))


@router.post("/runs/{run_id}/resume", response_model=schemas.Run)
def resume_run(
    run_id: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> dict:
    """Continue an interrupted, failed or cancelled run, reusing its succeeded steps."""
    run = visible_run(ctx, who, run_id, "editor")
    ctx.dispatcher.requeue(run["id"])
    return run_view(ctx, ctx.runs.get(run["id"]))


@router.delete("/runs/{run_id}", status_code=204)
def delete_run(
    run_id: str, who: Principal = Depends(needs("run")), ctx: ServerContext = Depends(context)
) -> Response:
    """Delete a finished run's records (409 while it is queued or running)."""
    run = visible_run(ctx, who, run_id, "editor")
    ctx.runs.delete(run["id"])
    return Response(status_code=204)


def _sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=_iso)}\n\n"


def _iso(value: Any) -> str:
    """Datetimes in events as ISO 8601 UTC (``…Z``), like the JSON responses."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return aware.isoformat().replace("+00:00", "Z")
    return str(value)


def _step_event(step: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "name", "state", "started_at", "ended_at", "wall_time", "exit_code")
    return {k: step.get(k) for k in keys}


@router.get("/runs/{run_id}/events", response_class=StreamingResponse)
async def run_events(
    run_id: str,
    request: Request,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> StreamingResponse:
    """Server-Sent Events: the run's state and each step's, then every change; ``end``."""
    run = await run_in_threadpool(visible_run, ctx, who, run_id)

    async def events() -> AsyncIterator[str]:
        last_run: Any = None
        last_steps: dict[str, Any] = {}
        keepalive = KeepAlive(_POLL)
        while not await request.is_disconnected():
            current = await run_in_threadpool(ctx.runs.get, run["id"])
            steps = await run_in_threadpool(ctx.runs.steps, run["id"])
            for step in steps:
                event = _step_event(step)
                if last_steps.get(step["id"]) != event:
                    last_steps[step["id"]] = event
                    yield _sse("step", event)
            summary = {k: current.get(k) for k in ("id", "state", "started_at", "ended_at")}
            if summary != last_run:
                last_run = summary
                yield _sse("run", summary)
            if current["state"] in _FINAL:
                yield _sse("end", {"id": current["id"], "state": current["state"]})
                return
            if (ping := await keepalive.wait()) is not None:
                yield ping

    return event_stream(events())


@router.get("/stream/runs", response_class=StreamingResponse)
async def all_events(
    request: Request,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> StreamingResponse:
    """Server-Sent Events of the latest 200 visible runs: a ``run`` event per change."""
    projects = ctx.visible(who, None)

    async def events() -> AsyncIterator[str]:
        known: dict[str, Any] = {}
        keepalive = KeepAlive(_POLL * 3)
        while not await request.is_disconnected():
            items, _ = await run_in_threadpool(
                lambda: ctx.runs.page(projects=projects, limit=200, offset=0)
            )
            for item in items:
                summary = {k: item.get(k) for k in ("id", "state", "started_at", "ended_at")}
                if known.get(item["id"]) != summary:
                    known[item["id"]] = summary
                    yield _sse("run", summary)
            if (ping := await keepalive.wait()) is not None:
                yield ping

    return event_stream(events())
