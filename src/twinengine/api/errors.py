"""How errors become responses: one JSON shape, 4xx for what a caller did wrong.

``{"error": {"code", "message", "hint", "details"}}`` for every error — TwinErrors
(their ``http_status``), request-validation failures (422, the offending fields in
``details``), unknown routes and methods, and, as a last resort, unexpected exceptions
(500, logged with the traceback, the message kept generic). The last resort is the
outermost middleware (:class:`UnexpectedErrors`), which answers and does not raise on:
a server that raised would have its connection closed after the 500, and the client's
next request on that keep-alive connection would be reset. As a safety net, every
message, hint and detail passes through :class:`~twinengine.api.paths.ServerPaths`, so
no error shows where the server keeps its files, whatever module raised it.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine.api.paths import ServerPaths
from twinengine.core import TwinError

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    hint: str | None = None
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


#: the error statuses every route may answer, with their one body shape (for OpenAPI)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": CODES[status].replace("_", " ")}
    for status in (400, 401, 403, 404, 409, 413, 422)
}


def error_response(
    status: int, message: str, hint: str | None = None, details: Any = None
) -> JSONResponse:
    body = {"code": CODES.get(status, "error"), "message": message, "hint": hint}
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": {**body, "details": details}}, status, headers=headers)


def _field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()))
        out.append({"field": where, "message": item.get("msg", "invalid")})
    return out


def install(app: FastAPI, paths: ServerPaths) -> None:
    def scrubbed(status: int, message: str, hint: str | None, details: Any = None) -> JSONResponse:
        return error_response(
            status,
            paths.text(message),
            paths.text(hint) if hint else hint,
            paths.value(details),
        )

    @app.exception_handler(TwinError)
    async def twin_error(_request: Request, exc: TwinError) -> JSONResponse:
        return scrubbed(exc.http_status, exc.message, exc.hint)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = _field_errors(exc)
        summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields[:5])
        return scrubbed(422, f"the request is not valid: {summary}", None, fields)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        return scrubbed(exc.status_code, str(exc.detail), getattr(exc, "hint", None))


class WatchedSend:
    """An ASGI ``send`` that notes whether the response has started: once it has, a
    middleware that catches an error can no longer answer with one of its own."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)


class UnexpectedErrors:
    """ASGI middleware (add it last, outermost): an exception nothing else answered is
    logged and becomes a 500 with the error shape — and the connection stays usable."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        watched = WatchedSend(send)
        try:
            await self.app(scope, receive, watched)
        except Exception:
            log.exception("unexpected error on %s %s", scope.get("method"), scope.get("path"))
            if watched.started:  # half a response is out: only closing the connection ends it
                raise
            response = error_response(500, "internal error; the server log has the details")
            await response(scope, receive, send)
