"""Routes of access control: who am I, users, tokens, projects and their members."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, caller, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.mlflow_rules import may_open
from twinengine.core import ForbiddenError, NotFoundError

router = APIRouter(prefix="/api/v1", tags=["access"], responses=ERROR_RESPONSES)


@router.get("/me", response_model=schemas.Me)
def me(who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)) -> dict:
    """The caller: user, token scopes and projects with roles."""
    if who.visible_projects() is None:
        names = [p["name"] for p in ctx.accounts.projects()]
        projects = [{"name": n, "role": "owner"} for n in names]
    else:
        projects = [{"name": n, "role": r} for n, r in sorted(who.roles.items())]
    return {
        "user": ctx.accounts.user(who.user),
        "token": {"id": who.token_id, "scopes": sorted(who.scopes), "kind": who.kind},
        "projects": projects,
        "mlflow": may_open(who, ctx.settings),
    }


@router.get("/users", response_model=schemas.Items)
def list_users(
    _who: Principal = Depends(needs("admin")), ctx: ServerContext = Depends(context)
) -> dict:
    """Every user (admin)."""
    return {"items": ctx.accounts.users()}


@router.post("/users", response_model=schemas.User, status_code=201)
def add_user(
    body: schemas.UserIn,
    _who: Principal = Depends(needs("admin")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Create a user (admin)."""
    return ctx.accounts.add_user(body.name, admin=body.admin)


@router.get("/tokens", response_model=schemas.Items)
def list_tokens(
    user: str | None = None,
    who: Principal = Depends(caller),
    ctx: ServerContext = Depends(context),
) -> dict:
    """The caller's tokens (an admin may ask for another user's)."""
    if user and user != who.user:
        who.require_scope("admin")
    return {"items": ctx.accounts.tokens(user or who.user)}


@router.post("/tokens", response_model=schemas.TokenCreated, status_code=201)
def create_token(
    body: schemas.TokenIn, who: Principal = Depends(caller), ctx: ServerContext = Depends(context)
) -> dict:
    """A new token; the secret is in this response only. It has no scope its maker's
    token lacks (an admin's excepted) and expires no later than its maker's credential."""
    user = body.user or who.user
    if user != who.user:
        who.require_scope("admin")
    extra = set(body.scopes) - set(who.scopes)
    if extra and not who.is_admin:
        raise ForbiddenError(
            f"a token cannot grant scopes its creator lacks: {', '.join(sorted(extra))}"
        )
    record, secret = ctx.accounts.create_token(
        user, body.name, body.scopes, body.expires_days, not_after=who.expires_at
    )
    return {**record, "token": secret}


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(
    token_id: str, who: Principal = Depends(caller), ctx: ServerContext = Depends(context)
) -> Response:
    """Revoke a token (your own; an admin: anyone's)."""
    ctx.accounts.revoke_token(token_id, by=who)
    return Response(status_code=204)


@router.get("/projects", response_model=schemas.Items)
def list_projects(
    who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    """Projects the caller belongs to (an admin: all), with members."""
    items = ctx.accounts.projects(who.visible_projects())
    for item in items:
        item["role"] = who.role_in(item["name"])
    return {"items": items}


@router.post("/projects", response_model=schemas.Project, status_code=201)
def create_project(
    body: schemas.ProjectIn,
    who: Principal = Depends(needs("admin")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Create a project; its creator is its owner (admin)."""
    return ctx.accounts.create_project(body.name, who.user, body.description)


@router.get("/projects/{name}", response_model=schemas.Project)
def show_project(
    name: str, who: Principal = Depends(needs("read")), ctx: ServerContext = Depends(context)
) -> dict:
    who.check_project(name)
    return {**ctx.accounts.project(name), "role": who.role_in(name)}


@router.put("/projects/{name}/members/{user}", response_model=schemas.Member)
def set_member(
    name: str,
    user: str,
    body: schemas.MemberIn,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> dict:
    """Add a member or change their role (project owner or admin), by user name. An owner
    learns whether a name is a user who may be added — nothing else about them; a
    disabled account answers like a missing one."""
    who.check_project(name, "owner")
    try:
        account = ctx.accounts.user(user)
    except NotFoundError:
        account = None
    if account is None or (account["disabled"] and not who.is_admin):
        raise NotFoundError(
            f"no user {user!r}",
            hint="users appear when an admin adds them or when they first sign in (OIDC)",
        )
    ctx.accounts.set_member(name, user, body.role)
    return {"user": user, "role": body.role}


@router.delete("/projects/{name}/members/{user}", status_code=204)
def remove_member(
    name: str,
    user: str,
    who: Principal = Depends(needs("run")),
    ctx: ServerContext = Depends(context),
) -> Response:
    """Remove a member (project owner or admin)."""
    who.check_project(name, "owner")
    ctx.accounts.remove_member(name, user)
    return Response(status_code=204)
