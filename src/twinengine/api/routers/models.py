"""Routes of the model registry: list and show registered models, register a training
run's model, promote a version to an alias, roll production back.

They wrap :class:`twinengine.ai.registry.ModelRegistry` on the server's tracking store
(``MLFLOW_TRACKING_URI``, else ``sqlite:///$TWIN_HOME/mlflow.db`` — the store
``twin train`` writes to). Promotions and rollbacks are appended to the model's history
and recorded as PROV activities in the server's database. MLflow's registry has no
projects: reading needs the ``read`` scope, changing it the ``run`` scope; artifact
locations are shown with the server's paths rewritten (``$TWIN_HOME/…``). Running
deployments (``twin models serve NAME@production``) follow a promotion or a rollback
within seconds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.schemas import Strict

router = APIRouter(prefix="/api/v1", tags=["models"], responses=ERROR_RESPONSES)
NAME = Annotated[str, PathParam(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")]


class ModelSummary(BaseModel):
    name: str
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
    description: str
    aliases: dict[str, int]
    versions: list[ModelVersion]
    promotions: list[Promotion]


class RegisterIn(Strict):
    run_id: str = Field(min_length=1, max_length=64, description="the training run (MLflow)")
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


def registry(ctx: ServerContext, who: Principal | None = None) -> Any:
    """A ModelRegistry on the server's store (its PROV records in the server's database)."""
    from twinengine.ai.registry import ModelRegistry
    from twinengine.ai.tracking import tracking_uri

    uri = tracking_uri(home=ctx.settings.home)
    found = ModelRegistry(tracking_uri=uri, prov_db=ctx.db)
    found.actor = who.user if who is not None else None
    return found


@router.get("/models", response_model=list[ModelSummary], summary="List registered models")
async def list_models(
    ctx: ServerContext = Depends(context), who: Principal = Depends(needs("read"))
) -> list[dict[str, Any]]:
    return ctx.paths.value(await run_in_threadpool(lambda: registry(ctx).list()))


@router.get("/models/{name}", response_model=ModelDetail, summary="A model's versions")
async def show_model(
    name: NAME, ctx: ServerContext = Depends(context), who: Principal = Depends(needs("read"))
) -> dict[str, Any]:
    """Versions (aliases, tags, run, time), aliases and the promotion history."""
    return ctx.paths.value(await run_in_threadpool(lambda: registry(ctx).show(name)))


@router.post("/models/{name}/versions", response_model=Registered, summary="Register a run")
async def register_model(
    name: NAME,
    body: RegisterIn,
    ctx: ServerContext = Depends(context),
    who: Principal = Depends(needs("run")),
) -> dict[str, Any]:
    """Register a training run's model (ONNX, native, scaling) as a new version."""
    tags = {**body.tags, "twin.registered_by": who.user}
    version = await run_in_threadpool(
        lambda: registry(ctx).register(body.run_id, name, body.description, tags)
    )
    return {"name": name, "version": version, "run_id": body.run_id}


@router.post("/models/{name}/promote", response_model=Promotion, summary="Promote a version")
async def promote_model(
    name: NAME,
    body: PromoteIn,
    ctx: ServerContext = Depends(context),
    who: Principal = Depends(needs("run")),
) -> dict[str, Any]:
    """Point ``alias`` at ``version``; the old production version becomes ``previous``."""
    return await run_in_threadpool(
        lambda: registry(ctx, who).promote(name, body.version, body.alias, body.require_quality)
    )


@router.post("/models/{name}/rollback", response_model=Promotion, summary="Roll back")
async def rollback_model(
    name: NAME, ctx: ServerContext = Depends(context), who: Principal = Depends(needs("run"))
) -> dict[str, Any]:
    """Make the ``previous`` version production again (the two swap)."""
    return await run_in_threadpool(lambda: registry(ctx, who).rollback(name))
