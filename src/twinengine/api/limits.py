"""How large a request body may be: counted as it streams, refused with 413 at the limit.

:class:`BodyLimit` is an ASGI middleware that wraps ``receive`` and counts the bytes of
the request body as they arrive, whatever the framing (``Content-Length`` or chunked),
so nothing past the limit is ever read into memory; a declared ``Content-Length`` over
the limit is refused as soon as the endpoint starts reading. Each route has one limit: a route
that takes a multipart form with ``File``/``Form`` fields, or an endpoint marked
:func:`takes_upload` (the MLflow proxy), accepts ``TWIN_MAX_UPLOAD_MB``; an endpoint
marked with :func:`limited_by` accepts what its setting says (a PROV document:
``TWIN_MAX_PROV_MB``, as parsing one costs far more memory than its size); every other
route (JSON and YAML bodies) accepts ``TWIN_MAX_REQUEST_KB``. The route is the one the
router put in the request's scope, read only when a body grows past the smallest limit,
so ordinary requests pay nothing for it. The 413 has the API's error shape and names
the setting that would allow more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import params
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from twinengine.api.errors import WatchedSend, error_response
from twinengine.core import Settings

_MARK = "_twin_body_limit"
_UPLOAD = "max_upload_mb"
_REQUEST = "max_request_kb"
_FRAMING = 1024 * 1024  # multipart boundaries and headers on top of an upload's file
F = TypeVar("F", bound=Callable[..., Any])


def limited_by(setting: str) -> Callable[[F], F]:
    """Mark an endpoint whose body may be as large as ``setting`` (a ``max_*_mb`` field
    of :class:`~twinengine.core.Settings`) says."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _MARK, setting)
        return endpoint

    return mark


def takes_upload(endpoint: F) -> F:
    """Mark an endpoint that reads a large raw body itself: it gets the upload limit."""
    return limited_by(_UPLOAD)(endpoint)


class BodyTooLarge(HTTPException):  # FastAPI lets an HTTPException through unchanged
    """A request body passed its route's limit (raised from ``receive``; answered 413)."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(status_code=413, detail=message)
        self.hint = hint


def _setting_of(route: Any) -> str:
    """The setting that limits the bodies of ``route``."""
    marked = getattr(getattr(route, "endpoint", None), _MARK, None)
    if marked:
        return marked
    if isinstance(route, APIRoute) and _takes_form(route.dependant):
        return _UPLOAD
    return _REQUEST


def _takes_form(dependant: Dependant) -> bool:
    """Whether a route (or one of its dependencies) reads form fields or files."""
    if any(isinstance(p.field_info, params.Form) for p in dependant.body_params):  # File too
        return True
    return any(_takes_form(d) for d in dependant.dependencies)


class BodyLimit:
    """ASGI middleware: the request body of each route stays within its limit."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.small = self.limit(_REQUEST)

    def limit(self, setting: str) -> int:
        """Bytes a body limited by ``setting`` may have."""
        value = int(getattr(self.settings, setting))
        if setting.endswith("_kb"):
            return value * 1024
        return max(value * 1024 * 1024 + (_FRAMING if setting == _UPLOAD else 0), self.small)

    def refusal(self, setting: str) -> tuple[str, str]:
        value = getattr(self.settings, setting)
        unit = "KB" if setting.endswith("_kb") else "MB"
        env = "TWIN_" + setting.upper()
        return (
            f"the request body is larger than {value} {unit}, the limit of this endpoint",
            f"send less, or raise {env} on the server",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        received = 0
        setting: str | None = None

        async def counted() -> Message:
            # the router has put the route in the scope before anything reads the body
            nonlocal received, setting
            if setting is None and declared is not None and declared > self.small:
                setting = _setting_of(scope.get("route"))
                if declared > self.limit(setting):
                    raise BodyTooLarge(*self.refusal(setting))
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.small:
                    setting = setting or _setting_of(scope.get("route"))
                    if received > self.limit(setting):
                        raise BodyTooLarge(*self.refusal(setting))
            return message

        watched = WatchedSend(send)
        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            if watched.started:
                raise
            message, hint = self.refusal(setting or _REQUEST)
            response = error_response(413, message, hint=hint)
            response.headers["Connection"] = "close"
            await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None
