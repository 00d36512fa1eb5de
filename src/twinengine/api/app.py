"""The FastAPI application of ``twin serve``: routers, errors, metrics, the web UI.

:func:`create_app` wires the stores of one TwinEngine home (database, registry,
uploads, runs, provenance) into a :class:`~twinengine.api.context.ServerContext`,
mounts the routers under ``/api/v1``, serves the built web UI from
``twinengine/web`` at ``/`` (any non-API path falls back to ``index.html`` for the
single-page app) and the API's ``/docs`` page (Swagger UI's files from the same build),
counts requests for ``/metrics`` (admins), limits request bodies as they stream
(:mod:`twinengine.api.limits`), answers an unexpected error with a 500 that keeps the
connection open, and starts the run dispatcher for the lifetime of the app.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from twinengine import __version__
from twinengine.api import errors
from twinengine.api.accounts import AccountStore
from twinengine.api.context import ServerContext
from twinengine.api.limits import BodyLimit
from twinengine.api.mlflow_child import MlflowUI
from twinengine.api.routers import (
    access,
    events,
    functions,
    mlflow_ui,
    models,
    notify,
    ops,
    provenance,
    runs,
    workflows,
)
from twinengine.core import NotFoundError, Settings, get_database, get_settings, get_store

WEB = Path(__file__).resolve().parent.parent / "web"


@dataclass
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    runs: Gauge
    queue: Gauge
    started: Gauge

    @classmethod
    def create(cls) -> Metrics:
        reg = CollectorRegistry()
        return cls(
            reg,
            Counter(
                "twin_http_requests", "HTTP requests", ["method", "route", "status"], registry=reg
            ),
            Histogram(
                "twin_http_request_seconds",
                "HTTP request latency",
                ["method", "route"],
                registry=reg,
            ),
            Gauge("twin_runs", "Runs by state", ["state"], registry=reg),
            Gauge("twin_dispatch_queue", "Runs waiting for a slot", registry=reg),
            Gauge("twin_runs_started", "Runs this server started", registry=reg),
        )


def build_context(settings: Settings) -> ServerContext:
    from twinengine.workflows.dispatch import RunDispatcher
    from twinengine.workflows.inputs import UploadStore
    from twinengine.workflows.registry import WorkflowRegistry
    from twinengine.workflows.runs import RunStore

    db = get_database(settings)
    oidc = None
    if settings.oidc_issuer:
        from twinengine.api.oidc import OidcVerifier

        oidc = OidcVerifier(settings.oidc_issuer, settings.oidc_audience, settings.oidc_jwks_url)
    ctx = ServerContext(
        settings=settings,
        db=db,
        accounts=AccountStore(db),
        registry=WorkflowRegistry(db, settings),
        uploads=UploadStore(db, settings),
        runs=RunStore(db, get_store(settings)),
        dispatcher=RunDispatcher(settings, db),
        oidc=oidc,
        extras={"metrics": Metrics.create()},
    )
    from twinengine.events.engine import EventEngine
    from twinengine.events.function_service import FunctionService
    from twinengine.notify import NotificationCenter

    ctx.extras["notify"] = NotificationCenter(db)
    ctx.extras["functions"] = FunctionService(db, settings, sandbox=ctx.dispatcher.sandbox)
    ctx.extras["events"] = EventEngine(
        settings,
        db,
        ctx.dispatcher,
        ctx.registry,
        uploads=ctx.uploads,
        notify=ctx.extras["notify"],
        functions=ctx.extras["functions"],
    )
    ctx.extras["mlflow_ui"] = MlflowUI(Path(settings.home))  # its child starts on first use
    return ctx


def create_app(settings: Settings | None = None, *, dispatch: bool = True) -> FastAPI:
    """The application for ``settings`` (default: this process's); ``dispatch=False``
    queues runs without starting them (tests of the API alone)."""
    ctx = build_context(settings or get_settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if dispatch:
            ctx.dispatcher.start()
            ctx.extras["events"].start()
        try:
            yield
        finally:
            ctx.extras["events"].stop()
            ctx.dispatcher.stop()
            ctx.extras["mlflow_ui"].stop()
            ctx.extras["notify"].close()
            functions.shutdown_functions(ctx)

    app = FastAPI(
        title="TwinEngine",
        version=__version__,
        description="REST API of TwinEngine, the Digital Twin Engine: workflows, runs, "
        "provenance and access control. Send `Authorization: Bearer <token>`.",
        lifespan=lifespan,
        openapi_url="/openapi.json",  # public: it describes the API and holds no data
        docs_url=None,  # served below with Swagger UI's files from this server, not a CDN
        redoc_url=None,
    )
    app.state.twin = ctx
    errors.install(app, ctx.paths)
    for module in (
        ops,
        access,
        workflows,
        runs,
        provenance,
        events,
        notify,
        functions,
        models,
        mlflow_ui,
    ):
        app.include_router(module.router)
    # inside the request counter (a task group there would wrap its 413 in an ExceptionGroup)
    app.add_middleware(BodyLimit, settings=ctx.settings)
    _count_requests(app, ctx.extras["metrics"])
    app.add_middleware(errors.UnexpectedErrors)  # outermost: a 500 leaves the connection open
    _serve_docs(app)
    _serve_web(app)
    return app


def _count_requests(app: FastAPI, metrics: Metrics) -> None:
    @app.middleware("http")
    async def count(request: Request, call_next):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        metrics.requests.labels(request.method, path, str(response.status_code)).inc()
        metrics.latency.labels(request.method, path).observe(time.perf_counter() - start)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")  # a type is a type
        return response


def _serve_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI on ``/openapi.json``, its script and style from the built web
    UI (``web/swagger``), so the page works offline and loads nothing from elsewhere."""
    assets = WEB / "swagger"

    @app.get("/docs", include_in_schema=False, response_model=None)
    def docs() -> HTMLResponse:
        if not (assets / "swagger-ui-bundle.js").is_file():
            raise NotFoundError(
                "the API documentation page is not built", hint="run `make ui`; /openapi.json is"
            )
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="TwinEngine API",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="data:,",
        )


def _serve_web(app: FastAPI) -> None:
    index = WEB / "index.html"

    @app.get("/", include_in_schema=False, response_model=None)
    def home() -> FileResponse | HTMLResponse:
        if index.is_file():
            return FileResponse(index, media_type="text/html")
        return HTMLResponse(
            "<h1>TwinEngine</h1><p>The web UI is not built: run <code>make ui</code>. "
            "The API is described at <a href='/openapi.json'>/openapi.json</a>.</p>"
        )

    @app.get("/{path:path}", include_in_schema=False, response_model=None)
    def web_file(path: str) -> FileResponse:
        if path.startswith(("api/", "openapi.json", "docs")):
            raise NotFoundError(f"no such endpoint: /{path}")
        target = (WEB / path).resolve()
        if target.is_relative_to(WEB) and target.is_file():
            return FileResponse(target)
        if index.is_file() and "." not in Path(path).name:
            return FileResponse(index, media_type="text/html")  # a client-side route
        raise NotFoundError(f"no such page: /{path}")
