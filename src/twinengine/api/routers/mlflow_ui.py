"""The MLflow UI under ``/mlflow`` of ``twin serve``, behind TwinEngine's access control.

The first request to ``/mlflow/`` starts ``mlflow server`` as a child process on the
same tracking store that ``twin train`` writes to (``sqlite:///$TWIN_HOME/mlflow.db``
and ``$TWIN_HOME/mlartifacts``, or ``MLFLOW_TRACKING_URI``), with the static prefix
``/mlflow``; every request under ``/mlflow`` is then proxied to it. The child listens on
a Unix socket in a folder only the server's user may enter (``$TWIN_HOME/mlflow-ui``,
mode 0700), never on a TCP port, so nothing else on the machine — a step, another local
user — can reach MLflow without passing through the proxy's checks.

A browser cannot send a bearer header, so ``POST /api/v1/session`` (with the token in
``Authorization``) sets an HTTP-only, same-site cookie for the ``/mlflow`` path
(``Secure`` over https or when ``TWIN_PUBLIC_URL`` is https); the proxy accepts that
cookie or the header, and a change made with the cookie must come from a page of this
server (its ``Origin`` or ``Referer``), which stops cross-site request forgery. Reading
needs the ``read`` scope and a role in some project, changing anything the ``run`` scope
and the editor role in some project (admins: always). MLflow itself has no projects:
whoever passes sees every experiment of the store. Artifacts are served with
``Content-Security-Policy: sandbox`` (an uploaded HTML file cannot run scripts as this
site). The child stops with the server.
"""

from __future__ import annotations

import asyncio
import html
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect

from twinengine.ai.tracking import tracking_uri
from twinengine.api.accounts import ROLES, Principal
from twinengine.api.context import bearer, caller, context
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.limits import takes_upload
from twinengine.core import AuthError, ForbiddenError, StateError, TwinError
from twinengine.workflows.children import kill_group

router = APIRouter(responses=ERROR_RESPONSES)
PREFIX = "/mlflow"
COOKIE = "twin_token"
_HOP = {"host", "cookie", "authorization", "connection", "keep-alive", "transfer-encoding"}
_READS = ("GET", "HEAD")
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


class MlflowUI:
    """The ``mlflow server`` child of one ``twin serve`` (started on first use)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.socket: Path | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.client: httpx.AsyncClient | None = None

    def command(self, socket_path: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", tracking_uri(home=self.home)),
            *("--default-artifact-root", str(self.home / "mlartifacts")),
            *("--uvicorn-opts", f"--uds {socket_path}"),  # uvicorn binds it, not the port
            *("--host", "127.0.0.1", "--static-prefix", PREFIX, "--workers", "1"),
        ]

    def socket_path(self) -> Path:
        """A socket in a fresh folder only this user may enter (under ``$TWIN_HOME``,
        or a private temporary folder when that path would be too long)."""
        folder = self.home / "mlflow-ui"
        if len(str(folder / "mlflow.sock")) > _SOCKET_PATH_MAX:
            folder = Path(tempfile.mkdtemp(prefix="twin-mlflow-"))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        path = folder / "mlflow.sock"
        path.unlink(missing_ok=True)
        return path

    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None and self.socket is not None

    def ensure(self, timeout: float = 60.0) -> Path:
        """The socket of a running MLflow server, starting it when needed."""
        with self._lock:
            if self.running():
                assert self.socket is not None
                return self.socket
            path = self.socket_path()
            log = open(self.home / "mlflow-ui.log", "ab")  # noqa: SIM115 - the child keeps it
            self.child = subprocess.Popen(
                self.command(path),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.child.poll() is None:
                if _answers(path):
                    self.socket = path
                    return path
                time.sleep(0.2)
            self.stop()
            raise TwinError(
                "the MLflow UI did not start",
                hint=f"see {self.home / 'mlflow-ui.log'}; is mlflow installed (the ai extra)?",
            )

    def http(self, path: Path) -> httpx.AsyncClient:
        """The proxy's client of the child's socket."""
        if self.client is None:
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            self.client = httpx.AsyncClient(transport=transport, timeout=60)
        return self.client

    def stop(self) -> None:
        child, self.child, self.socket = self.child, None, None
        self.client = None
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:  # with the workers it started
                kill_group(child)


def _answers(path: Path) -> bool:
    """Whether the MLflow server on socket ``path`` answers its health check."""
    if not path.exists():
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=2) as client:
            return client.get(f"http://localhost{PREFIX}/health").status_code == 200
    except httpx.HTTPError:
        return False


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


def _check_access(who: Principal, write: bool) -> None:
    """Reading needs a role in some project; writing the ``run`` scope and editor there."""
    who.require_scope("run" if write else "read")
    if who.is_admin:
        return
    need = ROLES.index("editor" if write else "viewer")
    if not any(ROLES.index(role) >= need for role in who.roles.values()):
        raise ForbiddenError(
            "the MLflow UI is for members of a project"
            + (" with the editor role" if write else ""),
            hint="ask a project owner to add you",
        )


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
    _check_access(who, write)
    if write and by_cookie:
        _check_origin(request)
    ui: MlflowUI = context(request).extras["mlflow_ui"]
    socket = ui.socket if ui.running() else None
    if socket is None:  # started (or restarted) off the event loop
        socket = await asyncio.to_thread(ui.ensure)
    client = ui.http(socket)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    upstream = client.build_request(
        request.method,
        f"http://localhost{PREFIX}{path}",
        params=request.query_params,
        headers=headers,
        content=request.stream() if write else None,  # streamed, counted by the body limit
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
