"""The MLflow UI under ``/mlflow`` of ``twin serve``, behind TwinEngine's access control.

The first request to ``/mlflow/`` starts the MLflow child
(:class:`~twinengine.api.mlflow_child.MlflowUI`: a Unix socket in a 0700 folder, never a
TCP port, so nothing else on the machine reaches MLflow without passing through the
proxy's checks); every request under ``/mlflow`` is then proxied to it.

A browser cannot send a bearer header, so ``POST /api/v1/session`` (with the token in
``Authorization``) sets an HTTP-only, same-site cookie for the ``/mlflow`` path
(``Secure`` over https or when ``TWIN_PUBLIC_URL`` is https); the proxy accepts that
cookie or the header, and a change made with the cookie must come from a page of this
server (its ``Origin`` or ``Referer``), which stops cross-site request forgery. Who may
use it is the ``mlflow_access`` setting (:mod:`twinengine.api.mlflow_rules`: admins by
default; with ``members``, MLflow having no projects, every member sees every project's
experiments). A change may not choose where MLflow writes: a body naming a storage
location or a model version's source elsewhere is refused (400) before it reaches
MLflow, an artifact upload must land in the server's artifact folder, and a run's
uploads are bounded. Artifacts are served with ``Content-Security-Policy: sandbox`` (an
uploaded HTML file cannot run scripts as this site). The child stops with the server.
"""

from __future__ import annotations

import asyncio
import html
import os
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from twinengine.api.accounts import Principal
from twinengine.api.context import bearer, caller, context
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.limits import takes_upload
from twinengine.api.mlflow_child import PREFIX, MlflowUI
from twinengine.api.mlflow_rules import (
    check_access,
    check_request,
    check_room,
    endpoint,
    upload_folder,
)
from twinengine.core import (
    AuthError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PayloadTooLargeError,
    Settings,
    StateError,
)

router = APIRouter(responses=ERROR_RESPONSES)
COOKIE = "twin_token"
_HOP = {"host", "cookie", "authorization", "connection", "keep-alive", "transfer-encoding"}
_READS = ("GET", "HEAD")
_RUN_UPLOAD = "mlflow/upload-artifact"  # the UI's upload: ?run_uuid=RUN&path=NAME


def _secure(request: Request) -> bool:
    public = os.environ.get("TWIN_PUBLIC_URL", "")
    return request.url.scheme == "https" or public.startswith("https://")


@router.post("/api/v1/session", tags=["access"], summary="Set the browser session cookie")
def open_session(
    request: Request,
    response: Response,
    who: Principal = Depends(caller),
    credentials: HTTPAuthorizationCredentials = Depends(bearer),  # as caller read it
) -> dict[str, str | None]:
    """Store the bearer token in an HTTP-only cookie valid for ``/mlflow`` (the MLflow UI)."""
    response.set_cookie(
        COOKIE,
        credentials.credentials.strip(),
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path=PREFIX,
    )
    return {"user": who.user, "path": PREFIX}


@router.delete("/api/v1/session", tags=["access"], summary="Clear the browser session cookie")
def close_session(
    request: Request, response: Response, who: Principal = Depends(caller)
) -> dict[str, str | None]:
    response.delete_cookie(
        COOKIE, path=PREFIX, httponly=True, samesite="strict", secure=_secure(request)
    )
    return {"user": None, "path": PREFIX}


def _principal(request: Request) -> tuple[Principal, bool]:
    """The caller and whether they came with the session cookie (not a header)."""
    header = request.headers.get("authorization", "")
    token = request.cookies.get(COOKIE, "")
    by_cookie = True
    if header.lower().startswith("bearer "):
        token, by_cookie = header.split(None, 1)[1], False
    if not token:
        raise AuthError(
            "the MLflow UI needs a TwinEngine token",
            hint="sign in to the web UI and open MLflow from there (POST /api/v1/session)",
        )
    credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    return caller(request, credentials), by_cookie


def _check_origin(request: Request) -> None:
    """A change made with the cookie comes from a page of this server (no CSRF)."""
    if request.headers.get("sec-fetch-site", "") == "cross-site":
        raise ForbiddenError("a cross-site request cannot change MLflow")
    source = request.headers.get("origin") or request.headers.get("referer") or ""
    parts = urlsplit(source)
    if not parts.netloc or parts.netloc != request.headers.get("host", ""):
        raise ForbiddenError(
            "a change through the MLflow session cookie must come from this server's pages",
            hint="scripts send Authorization: Bearer <token> instead of the cookie",
        )


async def _run_folder(client: httpx.AsyncClient, ui: MlflowUI, run_id: str) -> Path:
    """The local folder of an MLflow run's artifacts, if it lies in the artifact folder."""
    answer = await client.get(
        f"http://localhost{PREFIX}/api/2.0/mlflow/runs/get", params={"run_id": run_id}
    )
    if answer.status_code != 200:
        raise NotFoundError(f"no MLflow run {run_id[:64]!r}")
    location = str(answer.json().get("run", {}).get("info", {}).get("artifact_uri", ""))
    folder = ui.roots.local(location)
    if folder is None:
        raise InvalidInputError(
            "this run keeps its artifacts outside the server's artifact folder; "
            "uploads to it are refused",
            hint="log to a run of an experiment made on this server",
        )
    return folder


async def _read_capped(request: Request, cap: int) -> bytes:
    """The whole body, refused (413) past ``cap`` bytes."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise PayloadTooLargeError(
                f"a request to MLflow's REST API may have {cap // 1024} KB at most",
                hint="send less, or raise TWIN_MAX_REQUEST_KB on the server",
            )
    return bytes(body)


async def _checked_body(
    request: Request, path: str, ui: MlflowUI, client: httpx.AsyncClient, settings: Settings
) -> bytes | AsyncIterator[bytes]:
    """The body to send on: an artifact upload streamed (into a run's folder inside the
    artifact folder, with room left), anything else read whole and checked."""
    limit = 10 * settings.max_upload_mb * 1024 * 1024
    declared = request.headers.get("content-length", "")
    incoming = int(declared) if declared.isdigit() else 0
    folder = upload_folder(path, ui.roots)
    if folder is None and endpoint(path) == _RUN_UPLOAD:
        folder = await _run_folder(client, ui, request.query_params.get("run_uuid", ""))
    if folder is not None:
        await asyncio.to_thread(check_room, folder, incoming, limit)
        return request.stream()  # streamed, counted by the body limit
    body = await _read_capped(request, max(settings.max_request_kb, 64) * 1024)
    check_request(path, dict(request.query_params), body, ui.roots)
    return body


@router.api_route(
    PREFIX + "{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_model=None,
)
@takes_upload
async def proxy(request: Request, path: str) -> Response:
    try:
        who, by_cookie = _principal(request)
    except AuthError as exc:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            page = (
                f"<h1>MLflow</h1><p>{html.escape(str(exc))}. "
                "<a href='/'>Sign in to TwinEngine</a>.</p>"
            )
            return HTMLResponse(page, status_code=401)
        raise
    write = request.method not in _READS
    ctx = context(request)
    check_access(who, ctx.settings, write)
    if write and by_cookie:
        _check_origin(request)
    ui: MlflowUI = ctx.extras["mlflow_ui"]
    socket = ui.socket if ui.running() else None
    if socket is None:  # started (or restarted) off the event loop
        socket = await asyncio.to_thread(ui.ensure)
    client = ui.http(socket)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    content = await _checked_body(request, path, ui, client, ctx.settings) if write else None
    upstream = client.build_request(
        request.method,
        f"http://localhost{PREFIX}{path}",
        params=request.query_params,
        headers=headers,
        content=content,
    )
    try:
        answer = await client.send(upstream, stream=True)
    except ClientDisconnect:  # the caller went away while its body was streamed
        return Response(status_code=400)
    except httpx.HTTPError as exc:
        raise StateError(
            f"the MLflow UI did not answer: {str(exc) or type(exc).__name__}",
            hint="try again; the server log has its output",
        ) from None
    out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP | {"content-length"}}
    if "artifact" in path:  # user files: never run as a page of this site
        out["Content-Security-Policy"] = "sandbox"
        out["X-Content-Type-Options"] = "nosniff"
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=out,
        background=BackgroundTask(answer.aclose),
    )
