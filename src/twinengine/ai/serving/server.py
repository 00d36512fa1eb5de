"""The online model server: one ONNX model behind a lean ASGI app, and :func:`serve`.

:class:`ModelServer` is a plain ASGI application (mountable in Starlette or FastAPI, run
by uvicorn) that loads an ONNX file into an ``onnxruntime`` session and answers
``POST /predict`` (JSON ``{"inputs": [[...]]}`` or ``{"inputs": {"name": [[...]]}}``, or a
binary ``application/x-npy`` / ``application/x-npz`` body; JSON or npy answers, chosen by
``Accept``), ``GET /health``, ``GET /metadata`` (the signature, dynamic dimensions as
``null``) and ``GET /metrics`` (Prometheus text). Routing is a dictionary look-up rather
than a framework router because the hot path is a few tens of microseconds. Concurrent
predictions are merged by :class:`~twinengine.ai.serving.batching.MicroBatcher`. A
request that does not fit the signature gets 422 and a message naming the signature.
:func:`serve` runs uvicorn, with ``replicas > 1`` as N processes sharing one port through
``SO_REUSEPORT``.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import multiprocessing
import signal
import socket
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from twinengine.ai.serving.batching import MicroBatcher, SignatureError
from twinengine.ai.serving.bundle import ModelBundle, load_bundle
from twinengine.ai.serving.metrics import ServingMetrics, Threshold
from twinengine.core.errors import ConfigError, TwinError

log = logging.getLogger("twinengine.ai.serving")

NPY = "application/x-npy"
NPZ = "application/x-npz"
_JSON_HEADERS = [(b"content-type", b"application/json")]


class _Loaded:
    """One model being served: its bundle, batcher and ``/metadata`` answer."""

    def __init__(self, bundle: ModelBundle, metrics: ServingMetrics, options: dict) -> None:
        self.bundle = bundle
        self.signature = bundle.signature
        self.batcher = MicroBatcher(
            bundle.session, bundle.signature, on_batch=metrics.batch, **options
        )
        self.metadata = json.dumps(bundle.describe()).encode()
        version = b"" if bundle.version is None else str(bundle.version).encode()
        self.headers = [*_JSON_HEADERS, *([(b"x-model-version", version)] if version else [])]


class ModelServer:
    """ASGI app serving one ONNX model, swappable while it serves (see module docstring)."""

    def __init__(
        self,
        model: str | Path | ModelBundle,
        *,
        name: str | None = None,
        max_batch: int = 256,
        max_wait_ms: float = 2.0,
        threads: int = 1,
        threshold: Threshold | str | Sequence[Threshold | str] | None = None,
        on_alert: Callable[[dict[str, Any]], None] | None = None,
        watch: Callable[[], ModelBundle | None] | None = None,
        poll_s: float = 2.0,
    ) -> None:
        bundle = model if isinstance(model, ModelBundle) else load_bundle(model, threads=threads)
        self.name = name or bundle.name
        self.metrics = ServingMetrics(self.name, threshold, on_alert)
        self._options = {"max_batch": max_batch, "max_wait_ms": max_wait_ms}
        self.active = _Loaded(bundle, self.metrics, self._options)
        self.metrics.version = bundle.version
        self.watch, self.poll_s = watch, poll_s
        self._tasks: list[asyncio.Task] = []
        self._routes = {
            ("POST", "/predict"): self._predict,
            ("GET", "/health"): self._health,
            ("GET", "/metadata"): self._meta,
            ("GET", "/metrics"): self._metrics,
        }

    def swap(self, bundle: ModelBundle) -> None:
        """Serve ``bundle`` from now on (call on the server's loop). Requests already
        begun finish on the model they started with; its batcher closes once idle."""
        old, self.active = self.active, _Loaded(bundle, self.metrics, self._options)
        self.metrics.version = bundle.version
        self.metrics.swaps += 1
        log.warning(
            "deployment %s: now serving %s (version %s, was %s)",
            self.name,
            bundle.path,
            bundle.version,
            old.bundle.version,
        )
        self._retire(old.batcher)

    def _retire(self, batcher: MicroBatcher) -> None:
        if batcher.idle():
            batcher.close()
        else:
            asyncio.get_running_loop().call_later(0.5, self._retire, batcher)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self.active.batcher.close()

    async def startup(self) -> None:
        """Start the background work: the model watcher and the threshold ticker."""
        if self.watch is not None:
            self._tasks.append(asyncio.create_task(self._watching()))
        if self.metrics.thresholds:
            self._tasks.append(asyncio.create_task(self._ticking()))

    async def _watching(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.watch is not None
        while True:
            await asyncio.sleep(self.poll_s)
            try:  # the registry look-up and the model load run off the loop
                bundle = await loop.run_in_executor(None, self.watch)
            except Exception as exc:  # the registry being away never stops serving
                log.warning("deployment %s: cannot check for a new version: %s", self.name, exc)
                continue
            if bundle is not None:
                self.swap(bundle)

    async def _ticking(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.metrics.check()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self.startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        handler = self._routes.get((scope["method"], scope["path"]))
        if handler is None:
            known = scope["path"] in {p for _, p in self._routes}
            status = 405 if known else 404
            await _send(send, status, _error("method not allowed" if known else "not found"))
            return
        await handler(scope, receive, send)

    async def _health(self, scope: dict, receive: Any, send: Any) -> None:
        await _send(send, 200, b'{"status":"ok"}')

    async def _meta(self, scope: dict, receive: Any, send: Any) -> None:
        await _send(send, 200, self.active.metadata)

    async def _metrics(self, scope: dict, receive: Any, send: Any) -> None:
        body = self.metrics.render().encode()
        await _send(send, 200, body, [(b"content-type", b"text/plain; version=0.0.4")])

    async def _predict(self, scope: dict, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        active = self.active  # the request finishes on this model, even across a swap
        active.batcher.begin()
        message = await receive()
        body = message.get("body", b"")
        while message.get("more_body"):
            message = await receive()
            body += message.get("body", b"")
        ctype, accept = b"", b""
        for key, value in scope["headers"]:
            if key == b"content-type":
                ctype = value
            elif key == b"accept":
                accept = value
        try:
            try:
                arrays = active.signature.check(_parse(body, ctype))
            except BaseException:
                active.batcher.abandon()
                raise
            outputs = await active.batcher.submit(arrays)
        except TwinError as exc:
            status = getattr(exc, "http_status", 400)
            self.metrics.request(status, time.perf_counter() - t0)
            await _send(send, status, _error(str(exc)))
            return
        except Exception as exc:  # a failure inside the model
            log.exception("model %s failed", self.name)
            self.metrics.request(500, time.perf_counter() - t0)
            await _send(send, 500, _error(f"model failed: {exc}"))
            return
        body, headers = _encode(outputs, active, accept)
        await _send(send, 200, body, headers)
        self.metrics.request(200, time.perf_counter() - t0)


def _encode(outputs: list[np.ndarray], active: _Loaded, accept: bytes) -> tuple[bytes, list]:
    """The answer body and headers, in the format ``accept`` asks for."""
    names = [s.name for s in active.signature.outputs]
    extra = active.headers[1:]  # the model version
    if accept.startswith(NPY.encode()):
        buf = io.BytesIO()
        np.save(buf, outputs[0], allow_pickle=False)
        return buf.getvalue(), [(b"content-type", NPY.encode()), *extra]
    if accept.startswith(NPZ.encode()):
        buf = io.BytesIO()
        np.savez(buf, **dict(zip(names, outputs, strict=True)))
        return buf.getvalue(), [(b"content-type", NPZ.encode()), *extra]
    if len(outputs) == 1:
        payload: Any = outputs[0].tolist()
    else:
        payload = {n: o.tolist() for n, o in zip(names, outputs, strict=True)}
    return json.dumps({"outputs": payload}).encode(), active.headers


def _parse(body: bytes, ctype: bytes) -> dict[str, Any] | list[Any]:
    if ctype.startswith(NPY.encode()) or ctype.startswith(NPZ.encode()):
        try:
            loaded = np.load(io.BytesIO(body), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise SignatureError(f"the body is not a valid .npy/.npz file: {exc}") from None
        if isinstance(loaded, np.ndarray):
            return [loaded]
        return {k: loaded[k] for k in loaded.files}
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise SignatureError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise SignatureError('the JSON body needs an "inputs" key: {"inputs": [[...], ...]}')
    inputs = doc["inputs"]
    return inputs if isinstance(inputs, dict) else [inputs]


def _error(message: str) -> bytes:
    return json.dumps({"error": message}).encode()


async def _send(send: Any, status: int, body: bytes, headers: list | None = None) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*(headers or _JSON_HEADERS), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _bound_socket(host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets whose proto says TCP,
    # and without it Nagle + delayed ACKs add 40 ms to every keep-alive request
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.set_inheritable(True)
    return sock


def check_address(host: str, port: int, reuse_port: bool = False) -> None:
    """Raise a clear error now if ``host:port`` cannot be listened on."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port (0-65535)")
    if reuse_port and not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError("replicas > 1 needs SO_REUSEPORT (Linux, BSD, macOS)")
    try:
        _bound_socket(host, port, reuse_port).close()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="is another server using the port? choose one with --port",
        ) from None


def _run_one(
    model: str | Any, host: str, port: int, reuse_port: bool, server: str, options: dict
) -> None:
    from twinengine.ai.serving.deploy import make_app

    app = make_app(model, options)
    sock = _bound_socket(host, port, reuse_port)
    log.info("serving %s on http://%s:%d (%s)", model, host, port, server)
    if server == "builtin":
        from twinengine.ai.serving.http import run_asgi

        asyncio.run(run_asgi(app, sock, app.close))
        return
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", backlog=4096)
    uvicorn.Server(config).run(sockets=[sock])


def serve(
    model: str | Path | Any,
    host: str = "127.0.0.1",
    port: int = 8080,
    replicas: int = 1,
    server: str = "builtin",
    **options: Any,
) -> None:
    """Serve ``model`` (an ONNX file or a :class:`~twinengine.ai.serving.deploy.RegistryRef`)
    until interrupted; ``replicas`` processes share the port.

    ``server`` is ``"builtin"`` (the lean HTTP/1.1 front-end of
    :mod:`twinengine.ai.serving.http`, fastest) or ``"uvicorn"`` (complete HTTP support).

    ``options`` go to :class:`ModelServer` (``max_batch``, ``max_wait_ms``, ``threads``,
    ``threshold``, ``name``, ``poll_s``, ``on_alert`` — picklable when ``replicas > 1``).
    """
    if replicas < 1:
        raise ConfigError(f"replicas must be at least 1, got {replicas}")
    if server not in ("builtin", "uvicorn"):
        raise ConfigError(f"unknown server {server!r}", hint='use "builtin" or "uvicorn"')
    check_address(host, port, replicas > 1)
    if replicas == 1:
        _run_one(_plain(model), host, port, False, server, options)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(
            target=_run_one, args=(_plain(model), host, port, True, server, options), daemon=True
        )
        for _ in range(replicas)
    ]
    for proc in procs:
        proc.start()

    def _stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        for proc in procs:
            proc.join()
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.join(10)


def _plain(model: Any) -> Any:
    return str(model) if isinstance(model, Path) else model
