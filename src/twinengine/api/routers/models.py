"""Routes of the model registry: list and show registered models, register a training
run's model, promote a version to an alias, roll production back.

They wrap :class:`twinengine.ai.registry.ModelRegistry` on the server's tracking store
(``MLFLOW_TRACKING_URI``, else ``sqlite:///$TWIN_HOME/mlflow.db`` — the store
``twin train`` writes to). A registered model belongs to a project (its tag
``twinengine.project``, written when it is registered here or with ``twin models
register --project``): the list shows the caller's projects' models, another project's
model answers exactly like a missing one, and registering, promoting and rolling back
need the editor role in the model's project. A model without the tag (made before
projects, or by MLflow directly) is seen and changed by admins only. Promotions and
rollbacks are appended to the model's history and recorded as PROV activities in the
server's database. No answer names the tracking store or a server path: version sources
are rewritten (``$TWIN_HOME/…``) or left out. Running deployments (``twin models serve
NAME@production``) follow a promotion or a rollback within seconds.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from twinengine.ai.registry import ModelRegistry
from twinengine.ai.tracking import tracking_uri
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Strict
from twinengine.core import NotFoundError, StateError

router = APIRouter(prefix="/api/v1", tags=["models"], responses=ERROR_RESPONSES)
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
NAME = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class ModelSummary(BaseModel):
    name: str
    project: str | None
    description: str
    latest: int | None
    versions: int
    aliases: dict[str, int]


class ModelVersion(BaseModel):
    version: int
    aliases: list[str]
    tags: dict[str, str]
    run_id: str | None
    created: str | None
    status: str | None
    description: str
    source: str | None


class Promotion(BaseModel):
    action: str
    alias: str
    from_: int | None = Field(alias="from")
    to: int
    who: str
    when: str

    model_config = {"populate_by_name": True}


class ModelDetail(BaseModel):
    name: str
    project: str | None
    description: str
    aliases: dict[str, int]
    versions: list[ModelVersion]
    promotions: list[Promotion]


class RegisterIn(Strict):
    run_id: str = Field(min_length=1, max_length=64, description="the training run (MLflow)")
    project: str | None = Field(
        None, min_length=1, max_length=64, description="default: your only project, or default"
    )
    description: str | None = Field(None, max_length=5000)
    tags: dict[str, str] = Field(default_factory=dict)


class Registered(BaseModel):
    name: str
    version: int
    run_id: str


class PromoteIn(Strict):
    version: int = Field(ge=1)
    alias: str = Field("production", pattern="^(production|staging)$")
    require_quality: bool = Field(False, description="refuse unless twin.quality=passed")


def registry(ctx: ServerContext, who: Principal | None = None) -> ModelRegistry:
    """A ModelRegistry on the server's store (its PROV records in the server's database)."""
    found = ModelRegistry(tracking_uri=tracking_uri(home=ctx.settings.home), prov_db=ctx.db)
    found.actor = who.user if who is not None else None
    return found


def missing_model(name: str) -> NotFoundError:
    """A model name no model of the caller's projects has (also another project's)."""
    return NotFoundError(f"no registered model {name!r}", hint="GET /api/v1/models lists yours")


def _owned(ctx: ServerContext, who: Principal, models: ModelRegistry, name: str, need: str) -> None:
    """The model ``name`` exists and the caller has role ``need`` in its project;
    another project's model (or, for non-admins, one of no project) answers like none."""
    try:
        project = models.project_of(name)
    except NotFoundError:
        raise missing_model(name) from None
    ctx.owned(who, project, need, missing_model(name))


def _shown(ctx: ServerContext, value: Any) -> Any:
    """A registry answer with server paths rewritten; a version source that still names
    a place on the server (outside the home, the store and the temporary folder) is left
    out."""
    shown = ctx.paths.value(value)
    for version in shown.get("versions", []) if isinstance(shown, dict) else []:
        source = str(version.get("source") or "")
        scheme = _SCHEME.match(source)
        if not source.startswith("$") and (scheme is None or scheme.group(1).lower() == "file"):
            version["source"] = None  # a path or file: URL the rewriting did not cover
    return shown


def default_project(who: Principal) -> str:
    """Where a model goes when no project is named: the caller's only project, else
    ``default``."""
    if not who.is_admin and len(who.roles) == 1:
        return next(iter(who.roles))
    return "default"


@router.get("/models", response_model=list[ModelSummary], summary="List registered models")
async def list_models(
    project: Annotated[str | None, Query(max_length=64)] = None,
    ctx: ServerContext = Depends(context),
    who: Principal = Depends(needs("read")),
) -> list[dict[str, Any]]:
    """The models of the caller's projects (or of ``project``); an admin sees all, also
    those of no project."""
    projects = ctx.visible(who, project)
    rows = await run_in_threadpool(lambda: registry(ctx).list())
    if projects is not None:
        rows = [r for r in rows if r["project"] in projects]
    return ctx.paths.value(rows)


@router.get("/models/{name}", response_model=ModelDetail, summary="A model's versions")
async def show_model(
    name: NAME, ctx: ServerContext = Depends(context), who: Principal = Depends(needs("read"))
) -> dict[str, Any]:
    """Versions (aliases, tags, run, time), aliases and the promotion history."""

    def show() -> dict[str, Any]:
        models = registry(ctx)
        _owned(ctx, who, models, name, "viewer")
        return models.show(name)

    return _shown(ctx, await run_in_threadpool(show))


@router.post("/models/{name}/versions", response_model=Registered, summary="Register a run")
async def register_model(
    name: NAME,
    body: RegisterIn,
    ctx: ServerContext = Depends(context),
    who: Principal = Depends(needs("run")),
) -> dict[str, Any]:
    """Register a training run's model (ONNX, native, scaling) as a new version of a model
    of ``project`` (the editor role there); a name another project's model has is not
    available."""
    project = ctx.project_for(who, body.project or default_project(who), "editor")
    tags = {**body.tags, "twin.registered_by": who.user}

    def register() -> int:
        models = registry(ctx)
        try:
            owner: str | None = models.project_of(name)
        except NotFoundError:
            owner = project
        if owner != project and not (owner is None and who.is_admin):
            if owner is not None and who.role_in(owner) is not None:
                raise StateError(
                    f"model {name!r} belongs to project {owner!r}",
                    hint=f'register its versions there ("project": "{owner}")',
                )
            raise StateError(
                f"the model name {name!r} is not available", hint="choose another name"
            )
        return models.register(body.run_id, name, body.description, tags, project=project)

    version = await run_in_threadpool(register)
    return {"name": name, "version": version, "run_id": body.run_id}


@router.post("/models/{name}/promote", response_model=Promotion, summary="Promote a version")
async def promote_model(
    name: NAME,
    body: PromoteIn,
    ctx: ServerContext = Depends(context),
    who: Principal = Depends(needs("run")),
) -> dict[str, Any]:
    """Point ``alias`` at ``version`` (the editor role in the model's project); the old
    production version becomes ``previous``."""

    def promote() -> dict[str, Any]:
        models = registry(ctx, who)
        _owned(ctx, who, models, name, "editor")
        return models.promote(name, body.version, body.alias, body.require_quality)

    return await run_in_threadpool(promote)


@router.post("/models/{name}/rollback", response_model=Promotion, summary="Roll back")
async def rollback_model(
    name: NAME, ctx: ServerContext = Depends(context), who: Principal = Depends(needs("run"))
) -> dict[str, Any]:
    """Make the ``previous`` version production again (the two swap; the editor role in
    the model's project)."""

    def rollback() -> dict[str, Any]:
        models = registry(ctx, who)
        _owned(ctx, who, models, name, "editor")
        return models.rollback(name)

    return await run_in_threadpool(rollback)
