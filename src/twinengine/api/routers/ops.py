"""Routes of operations: ``/health`` (no token) and Prometheus ``/metrics`` (server-wide
counters, every project's runs by state: an admin token only — a scraper is given one)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import func, select, text

from twinengine import __version__
from twinengine.api import schemas
from twinengine.api.accounts import Principal
from twinengine.api.context import ServerContext, context, needs
from twinengine.api.errors import ERROR_RESPONSES
from twinengine.core.models import runs

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)


@router.get("/health", response_model=schemas.Health)
def health(ctx: ServerContext = Depends(context)) -> dict:
    """Liveness and database reachability; needs no token."""
    try:
        with ctx.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        database = "ok"
    except Exception as exc:  # report, never fail the probe with a 500
        database = f"unreachable: {type(exc).__name__}"
    return {
        "status": "ok" if database == "ok" else "degraded",
        "version": __version__,
        "database": database,
        "sandbox": ctx.dispatcher.sandbox.name,  # "none": steps run unconfined
    }


@router.get("/metrics", response_class=Response)
def metrics(
    _who: Principal = Depends(needs("admin")), ctx: ServerContext = Depends(context)
) -> Response:
    """Prometheus metrics of the whole server (admins): requests, latencies, runs by
    state, dispatch queue."""
    gauges = ctx.extras["metrics"]
    with ctx.db.engine.connect() as conn:
        counts = dict(conn.execute(select(runs.c.state, func.count()).group_by(runs.c.state)).all())
    for state in ("queued", "running", "succeeded", "failed", "cancelled", "interrupted"):
        gauges.runs.labels(state=state).set(counts.get(state, 0))
    gauges.queue.set(ctx.dispatcher.queue_length())
    gauges.started.set(ctx.dispatcher.started_total)
    return Response(generate_latest(gauges.registry), media_type=CONTENT_TYPE_LATEST)
