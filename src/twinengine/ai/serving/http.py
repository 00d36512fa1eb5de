"""A lean HTTP/1.1 front-end for ASGI apps, used by :func:`~twinengine.ai.serving.serve`.

Pure-Python uvicorn parses HTTP with ``h11``, which costs about 100 µs of CPU per request
— more than the whole prediction for a small model. This module is a minimal
``asyncio.Protocol`` server for the one shape of traffic a model server sees: keep-alive
HTTP/1.1 requests with a ``Content-Length`` body (no chunked uploads, no upgrades). It
parses the request line and headers with a few byte operations, calls the ASGI app with a
standard ``http`` scope, and writes the status line, headers and body in one
``transport.write``. Pipelined requests on a connection are answered in order. Anything
it does not support gets a 400/411/501 answer and the connection is closed; for full HTTP
support run the same app under uvicorn (``serve(..., server="uvicorn")``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

log = logging.getLogger("twinengine.ai.serving")
ASGIApp = Callable[[dict, Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]], Any]
MAX_HEAD = 64 * 1024
MAX_BODY = 256 * 1024 * 1024
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _Protocol(asyncio.Protocol):
    def __init__(self, app: ASGIApp, server: tuple[str, int] | None) -> None:
        self.app = app
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.closed = False
        self.disconnected: asyncio.Future | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.disconnected is not None and not self.disconnected.done():
            self.disconnected.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _fail(self, status: int) -> None:
        assert self.transport is not None
        reason = _REASONS.get(status, b"Error")
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-length: 0\r\nconnection: close\r\n\r\n" % (status, reason)
        )
        self.transport.close()
        self.closed = True

    def _next(self) -> None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buffer) > MAX_HEAD:
                self._fail(431)
            return
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ")
        except ValueError:
            self._fail(400)
            return
        headers = []
        length = 0
        keep_alive = version == b"HTTP/1.1"
        for line in lines[1:]:
            key, sep, value = line.partition(b":")
            if not sep:
                self._fail(400)
                return
            key = key.strip().lower()
            value = value.strip()
            headers.append((key, value))
            if key == b"content-length":
                if not value.isdigit() or int(value) > MAX_BODY:
                    self._fail(413 if value.isdigit() else 400)
                    return
                length = int(value)
            elif key == b"transfer-encoding":
                self._fail(501)
                return
            elif key == b"connection":
                low = value.lower()
                keep_alive = low != b"close" if keep_alive else low == b"keep-alive"
        start = end + 4
        if len(self.buffer) < start + length:
            return  # the body is still arriving
        body = bytes(self.buffer[start : start + length])
        del self.buffer[: start + length]
        path, _, query = target.partition(b"?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": version[5:].decode("latin-1"),
            "method": method.decode("latin-1"),
            "scheme": "http",
            "path": path.decode("latin-1"),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "server": self.server,
        }
        self.busy = True
        asyncio.get_running_loop().create_task(self._handle(scope, body, keep_alive))

    async def _handle(self, scope: dict, body: bytes, keep_alive: bool) -> None:
        sent_body = False
        delivered = False
        head: list[bytes] = []

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            if self.disconnected is None:
                self.disconnected = asyncio.get_running_loop().create_future()
            await self.disconnected
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            nonlocal sent_body
            if message["type"] == "http.response.start":
                status = message["status"]
                head.append(b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"")))
                for key, value in message.get("headers", ()):
                    head.append(b"%s: %s\r\n" % (key, value))
                if not keep_alive:
                    head.append(b"connection: close\r\n")
                head.append(b"\r\n")
            elif message["type"] == "http.response.body":
                if self.closed or self.transport is None:
                    return
                head.append(message.get("body", b""))
                if not message.get("more_body"):
                    self.transport.write(b"".join(head))
                    head.clear()
                    sent_body = True

        try:
            await self.app(scope, receive, send)
        except Exception:
            log.exception("unhandled error in the ASGI app")
            if not sent_body and not self.closed:
                self._fail(500)
            return
        finally:
            self.busy = False
        if self.closed:
            return
        if not sent_body:
            self._fail(500)
        elif not keep_alive:
            assert self.transport is not None
            self.transport.close()
            self.closed = True
        elif self.buffer:
            self._next()


async def run_asgi(app: ASGIApp, sock: socket.socket, on_stop: Callable[[], None]) -> None:
    """Serve ``app`` on the bound ``sock`` until SIGINT/SIGTERM; then call ``on_stop``."""
    loop = asyncio.get_running_loop()
    host, port = sock.getsockname()[:2]
    startup = getattr(app, "startup", None)  # background work of the app (no lifespan here)
    if startup is not None:
        await startup()
    server = await loop.create_server(lambda: _Protocol(app, (host, port)), sock=sock, backlog=4096)
    stop = loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        except (NotImplementedError, RuntimeError, ValueError):
            pass
    try:
        await stop
    finally:
        server.close()
        on_stop()
