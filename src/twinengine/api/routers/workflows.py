"""Routes of the workflow registry: upload, validate, compose, list, show, delete."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Query, Response, UploadFile
from fastapi.responses import PlainTextResponse

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.filenames import client_file_name
from twinengine.api.missing import missing_workflow
from twinengine.api.schemas import Limit, Offset
from twinengine.core import InvalidInputError, PayloadTooLargeError
from twinengine.workflows.compose import compose, palette

router = APIRouter(prefix="/api/v1", tags=["workflows"], responses=ERROR_RESPONSES)


def _read_upload(ctx: ServerContext, file: UploadFile | None, content: str | None) -> tuple:
    """``(bytes, filename)`` of a multipart ``file`` or a ``content`` text field."""
    limit = ctx.settings.max_upload_mb * 1024 * 1024
    if file is not None and file.filename:
        data = file.file.read(limit + 1)
        name = client_file_name(file.filename, "workflow.cwl")
    elif content:
        data, name = content.encode(), "workflow.cwl"
    else:
        raise InvalidInputError("send the workflow as a multipart `file` or a `content` field")
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"the upload is larger than {ctx.settings.max_upload_mb} MB",
            hint="raise TWIN_MAX_UPLOAD_MB on the server",
        )
    return data, name


@router.post(
    "/workflows", response_model=schemas.Workflow, status_code=201, response_model_by_alias=True
)
def register_workflow(
    file: Annotated[UploadFile | None, File(description="a .cwl file or an archive")] = None,
    content: Annotated[str | None, Form(description="CWL text, instead of a file")] = None,
    name: Annotated[str | None, Form(max_length=128)] = None,
    project: Annotated[str | None, Form(max_length=64)] = None,
    main: Annotated[str | None, Form(max_length=500)] = None,
    description: Annotated[str | None, Form(max_length=5000)] = None,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Register a CWL document (or an archive holding one) as the next version of a name."""
    project = ctx.project_for(who, project, "editor")
    data, filename = _read_upload(ctx, file, content)
    return ctx.registry.register(
        data,
        filename,
        project=project,
        name=name,
        main=main,
        description=description,
        created_by=who.user,
    )


@router.post("/workflows/validate", response_model=schemas.Validation)
def validate_workflow(
    file: Annotated[UploadFile | None, File()] = None,
    content: Annotated[str | None, Form()] = None,
    main: Annotated[str | None, Form(max_length=500)] = None,
    project: Annotated[str | None, Form(max_length=64)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Validate without registering: errors with line and column, or the interface.
    The caller needs a role (viewer or above) in ``project`` (default: ``default``)."""
    ctx.project_for(who, project, "viewer")
    data, filename = _read_upload(ctx, file, content)
    return ctx.registry.validate(data, filename, main)


@router.post(
    "/workflows/compose",
    status_code=201,
    responses={200: {"model": schemas.ComposeResult}, 201: {"model": schemas.Workflow}},
)
def compose_workflow(
    body: schemas.ComposeIn,
    response: Response,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Write the composer's workflow as CWL; validate it (dry run) or register it."""
    project = ctx.project_for(who, body.project, "editor")
    spec = body.model_dump(by_alias=True)
    try:
        data, filename = compose(spec, ctx.registry, project)
    except InvalidInputError as exc:
        if not body.dry_run:
            raise
        response.status_code = 200  # a dry run answers with a verdict, not an error
        return {"valid": False, "errors": [{"message": str(exc)}], "cwl": ""}
    if body.dry_run:
        response.status_code = 200
        result = ctx.registry.validate(data, filename)
        text = data.decode() if filename.endswith(".cwl") else "(an archive: main.cwl + steps/)"
        return {"valid": result["valid"], "errors": result["errors"], "cwl": text}
    workflow = ctx.registry.register(
        data,
        filename,
        project=project,
        name=body.name,
        created_by=who.user,
        description=body.doc,
        layout=body.layout or None,
    )
    return schemas.Workflow.model_validate(workflow).model_dump(mode="json", by_alias=True)


@router.get("/workflows", response_model=schemas.WorkflowPage, response_model_by_alias=True)
def list_workflows(
    project: Annotated[str | None, Query(max_length=64)] = None,
    name: Annotated[str | None, Query(max_length=128)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    limit: Limit = 50,
    offset: Offset = 0,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Registered workflows, newest first."""
    items, total = ctx.registry.list(
        projects=ctx.visible(who, project), name=name, q=q, limit=limit, offset=offset
    )
    return {"items": items, "total": total, "limit": limit, "offset": offset}


def _visible_workflow(ctx: ServerContext, who: Principal, workflow_id: str, need: str) -> dict:
    workflow = ctx.registry.get(workflow_id)
    ctx.owned(who, workflow["project"], need, missing_workflow(workflow_id))
    return workflow


@router.get(
    "/workflows/{workflow_id}", response_model=schemas.Workflow, response_model_by_alias=True
)
def show_workflow(
    workflow_id: str,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """A workflow with its inputs, outputs and graph."""
    return _visible_workflow(ctx, who, workflow_id, "viewer")


@router.get("/workflows/{workflow_id}/content", response_class=PlainTextResponse)
def workflow_content(
    workflow_id: str,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> PlainTextResponse:
    """The main CWL document as text."""
    _visible_workflow(ctx, who, workflow_id, "viewer")
    return PlainTextResponse(ctx.registry.content(workflow_id), media_type="text/yaml")


@router.delete("/workflows/{workflow_id}", status_code=204)
def delete_workflow(
    workflow_id: str,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """Delete a workflow version (refused while one of its runs is active)."""
    _visible_workflow(ctx, who, workflow_id, "editor")
    ctx.registry.delete(workflow_id)
    return Response(status_code=204)


@router.get("/palette", response_model=schemas.Palette, response_model_by_alias=True)
def get_palette(
    project: Annotated[str | None, Query(max_length=64)] = None,
    who: Principal = Depends(needs("read")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """What a composer step can run: templates and registered workflows."""
    return {"items": palette(ctx.registry, ctx.visible(who, project))}
