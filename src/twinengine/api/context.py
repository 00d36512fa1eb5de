"""What every request handler of ``twin serve`` needs: stores, dispatcher, the caller.

:class:`ServerContext` holds the process's settings and the stores the routers call
(accounts, workflow registry, uploads, runs, provenance, the run dispatcher, the OIDC
verifier when an issuer is configured). :func:`caller` is the FastAPI dependency that
authenticates a request — an API token or an OIDC JWT in ``Authorization: Bearer`` —
and :func:`needs` wraps it with a scope check, so a route declares
``who: Principal = Depends(needs("run"))`` and never sees an anonymous request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from twinengine.api.accounts import AccountStore, Principal
from twinengine.api.missing import no_project
from twinengine.api.paths import ServerPaths
from twinengine.core import AuthError, Database, Settings, TwinError


@dataclass
class ServerContext:
    settings: Settings
    db: Database
    accounts: AccountStore
    registry: Any  # WorkflowRegistry
    uploads: Any  # UploadStore
    runs: Any  # RunStore
    dispatcher: Any  # RunDispatcher
    oidc: Any = None  # OidcVerifier
    extras: dict[str, Any] = field(default_factory=dict)
    paths: ServerPaths = field(init=False)  # what responses show in place of server paths

    def __post_init__(self) -> None:
        self.paths = ServerPaths(self.settings)

    def project_for(self, who: Principal, project: str | None, need: str = "viewer") -> str:
        """The project a request acts in (default: ``default``), checked against roles: one
        the caller is not in answers exactly like one that does not exist."""
        name = project or "default"
        if who.role_in(name) is None:
            raise no_project(name)
        who.check_project(name, need)
        return name

    def visible(self, who: Principal, project: str | None) -> list[str] | None:
        """Projects a listing covers: one asked-for project, or all the caller's."""
        if project:
            if who.role_in(project) is None:
                raise no_project(project)
            return [project]
        return who.visible_projects()

    def owned(self, who: Principal, project: str | None, need: str, missing: TwinError) -> None:
        """Whether the caller may act (role ``need``) on a resource of ``project``: the
        resource's own ``missing`` error when they have no role there — so another
        project's resource answers byte for byte like one that does not exist — and 403
        when their role is too low. Resources of no project (runs started with ``twin
        run``) are the admins' only."""
        if project is None:
            if who.visible_projects() is None:
                return
            raise missing
        if who.role_in(project) is None:
            raise missing
        who.check_project(project, need)


bearer = HTTPBearer(auto_error=False, description="an API token (twin_…) or an OIDC JWT")


def context(request: Request) -> ServerContext:
    return request.app.state.twin


def caller(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    if credentials is None or not credentials.credentials.strip():
        raise AuthError(
            "this endpoint needs a token", hint="send the header Authorization: Bearer <token>"
        )
    token = credentials.credentials.strip()
    ctx = context(request)
    if token.startswith("twin_"):
        return ctx.accounts.authenticate(token)
    if ctx.oidc is not None and ctx.oidc.looks_like_jwt(token):
        claims = ctx.oidc.verify(token)
        return ctx.accounts.oidc_principal(claims, frozenset(ctx.settings.oidc_scopes))
    raise AuthError("unknown token", hint="API tokens start with twin_")


def needs(scope: str) -> Callable[..., Principal]:
    def dependency(who: Principal = Depends(caller)) -> Principal:
        who.require_scope(scope)
        return who

    dependency.__name__ = f"needs_{scope}"
    return dependency
