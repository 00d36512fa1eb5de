"""The MLflow UI under ``/mlflow`` of ``twin serve``, behind TwinEngine's access control.

The first request to ``/mlflow/`` starts ``mlflow server`` as a child process on a free
loopback port, on the same tracking store that ``twin train`` writes to
(``sqlite:///$TWIN_HOME/mlflow.db`` and ``$TWIN_HOME/mlartifacts``, or
``MLFLOW_TRACKING_URI``), with the static prefix ``/mlflow``; every request under
``/mlflow`` is then proxied to it. A browser cannot send a bearer header, so
``POST /api/v1/session`` (with the token in ``Authorization``) sets an HTTP-only,
same-site cookie for the ``/mlflow`` path; the proxy accepts that cookie or the header.
Reading needs the ``read`` scope, changing anything the ``run`` scope. MLflow itself has
no projects: every user with those scopes sees every experiment of the store.
The child stops with the server.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from starlette.background import BackgroundTask

from twinengine.api.accounts import Principal
from twinengine.api.context import bearer, caller, context
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.api.process import free_port, healthy
from twinengine.core import AuthError, TwinError
from twinengine.workflows.children import kill_group

router = APIRouter(responses=ERROR_RESPONSES)
PREFIX = "/mlflow"
COOKIE = "twin_token"
_HOP = {"host", "cookie", "authorization", "connection", "keep-alive", "transfer-encoding"}


class MlflowUI:
    """The ``mlflow server`` child of one ``twin serve`` (started on first use)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port: int | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.client: httpx.AsyncClient | None = None

    def command(self, port: int) -> list[str]:
        from twinengine.ai.tracking import tracking_uri

        return [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", tracking_uri(home=self.home)),
            *("--default-artifact-root", str(self.home / "mlartifacts")),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--static-prefix", PREFIX, "--workers", "1"),
        ]

    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None and self.port is not None

    def ensure(self, timeout: float = 60.0) -> int:
        """The port of a running MLflow server, starting it when needed."""
        with self._lock:
            if self.running():
                assert self.port is not None
                return self.port
            port = free_port()
            log = open(self.home / "mlflow-ui.log", "ab")  # noqa: SIM115 - the child keeps it
            self.child = subprocess.Popen(
                self.command(port),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.child.poll() is None:
                if healthy(f"http://127.0.0.1:{port}{PREFIX}"):
                    self.port = port
                    return port
                time.sleep(0.2)
            self.stop()
            raise TwinError(
                "the MLflow UI did not start",
                hint=f"see {self.home / 'mlflow-ui.log'}; is mlflow installed (the ai extra)?",
            )

    def stop(self) -> None:
        child, self.child, self.port = self.child, None, None
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:  # with the workers it started
                kill_group(child)


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
        secure=request.url.scheme == "https",
        path=PREFIX,
    )
    return {"user": who.user, "path": PREFIX}


@router.delete("/api/v1/session", tags=["access"], summary="Clear the browser session cookie")
def close_session(response: Response, who: Principal = Depends(caller)) -> dict[str, str | None]:
    response.delete_cookie(COOKIE, path=PREFIX)
    return {"user": None, "path": PREFIX}


def _principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    token = request.cookies.get(COOKIE, "")
    if header.lower().startswith("bearer "):
        token = header.split(None, 1)[1]
    if not token:
        raise AuthError(
            "the MLflow UI needs a TwinEngine token",
            hint="sign in to the web UI and open MLflow from there (POST /api/v1/session)",
        )
    return caller(request, HTTPAuthorizationCredentials(scheme="Bearer", credentials=token))


@router.api_route(
    PREFIX + "{path:path}",
    methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
    response_model=None,
)
async def proxy(request: Request, path: str) -> Response:
    try:
        who = _principal(request)
    except AuthError as exc:
        if request.method == "GET" and "text/html" in request.headers.get("accept", ""):
            page = f"<h1>MLflow</h1><p>{exc}. <a href='/'>Sign in to TwinEngine</a>.</p>"
            return HTMLResponse(page, status_code=401)
        raise
    who.require_scope("read" if request.method in ("GET", "HEAD") else "run")
    ui: MlflowUI = context(request).extras["mlflow_ui"]
    port = ui.port if ui.running() else None
    if port is None:  # started (or restarted) off the event loop
        port = await asyncio.to_thread(ui.ensure)
    if ui.client is None:
        ui.client = httpx.AsyncClient(timeout=60)
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
    upstream = ui.client.build_request(
        request.method,
        f"http://127.0.0.1:{port}{PREFIX}{path}",
        params=request.query_params,
        headers=headers,
        content=await request.body(),
    )
    answer = await ui.client.send(upstream, stream=True)
    out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP | {"content-length"}}
    return StreamingResponse(
        answer.aiter_raw(),
        status_code=answer.status_code,
        headers=out,
        background=BackgroundTask(answer.aclose),
    )
