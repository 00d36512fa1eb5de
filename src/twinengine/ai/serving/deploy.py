"""Deployments of registered models: follow an alias, swap versions hot, send alerts.

A :class:`RegistryRef` names what to serve (``NAME@ALIAS``, ``NAME/VERSION`` or ``NAME``)
and where the registry is; it is small and picklable, so every replica process opens
it itself. :meth:`RegistryRef.open` loads the version the reference designates now and
returns a watcher: a callable that the server runs every ``poll_s`` seconds off its
event loop, which returns the newly loaded version when the alias has moved (a
promotion, or ``twin models rollback``) and ``None`` otherwise — the server then swaps
models between requests, so none is dropped. A pinned ``NAME/VERSION`` has no watcher.
:class:`AlertSink` turns threshold crossings (see
:class:`~twinengine.ai.serving.metrics.ServingMetrics`) into JSON webhooks — signed
like TwinEngine's own, so an event source of ``twin serve`` can receive them and
trigger a retraining workflow — and, for a project, an event of the built-in source
``ai`` (for triggers) and a note in TwinEngine's notification centre.
:func:`make_app` builds the :class:`~twinengine.ai.serving.server.ModelServer` of a
file or a reference.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twinengine.ai.serving.bundle import ModelBundle, load_bundle, registry_bundle

log = logging.getLogger("twinengine.ai.serving")
Watch = Callable[[], ModelBundle | None]  # loads the next version when the alias moved


@dataclass(frozen=True)
class RegistryRef:
    """A registered model to serve: ``ref`` in the registry at ``tracking_uri``."""

    ref: str
    tracking_uri: str | None = None

    @property
    def pinned(self) -> bool:
        """``NAME/VERSION`` never moves; an alias or a bare name may."""
        return "@" not in self.ref and "/" in self.ref

    def registry(self) -> Any:
        from twinengine.ai.registry import ModelRegistry

        return ModelRegistry(tracking_uri=self.tracking_uri, provenance=False)

    def open(self, threads: int = 1) -> tuple[ModelBundle, Watch | None]:
        """The version served now, and the watcher that loads the next one (None for a
        pinned ``NAME/VERSION``)."""
        registry = self.registry()
        bundle = registry_bundle(registry, self.ref, threads=threads)
        if self.pinned:
            return bundle, None
        state = {"version": bundle.version}

        def watch() -> ModelBundle | None:
            found = registry.version_of(self.ref)
            if int(found.version) == state["version"]:
                return None
            loaded = registry_bundle(registry, self.ref, threads=threads, found=found)
            state["version"] = loaded.version
            return loaded

        return bundle, watch

    def __str__(self) -> str:
        return self.ref


@dataclass
class AlertSink:
    """Where threshold alerts go: webhooks (JSON, optionally signed) and notifications."""

    webhooks: list[str] = field(default_factory=list)
    secret: str | None = None
    token: str | None = None
    project: str | None = None  # publish notes to this project of TwinEngine
    timeout_s: float = 5.0

    def __call__(self, alert: dict[str, Any]) -> None:
        """Deliver ``alert`` on a thread of its own (never blocks the serving loop)."""
        threading.Thread(target=self.deliver, args=(alert,), daemon=True).start()

    def deliver(self, alert: dict[str, Any]) -> None:
        body = json.dumps(
            {**alert, "key": f"{alert['deployment']}/{alert['threshold']}", "kind": "threshold"}
        ).encode()
        for url in self.webhooks:
            try:
                self._post(url, body)
            except Exception as exc:  # an alert channel being down never stops serving
                log.warning("alert webhook %s failed: %s", url, exc)
        if self.project is not None:
            try:
                self._notify(alert)
            except Exception as exc:
                log.warning("alert notification to project %s failed: %s", self.project, exc)

    def _post(self, url: str, body: bytes) -> None:
        headers = {"Content-Type": "application/json"}
        if self.secret:
            from twinengine.notify.webhook import SIGNATURE_HEADER, sign

            headers[SIGNATURE_HEADER] = sign(self.secret, body)
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, body, headers, method="POST")
        with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:
            answer.read()

    def _notify(self, alert: dict[str, Any]) -> None:
        from twinengine.ai.events import announce

        state = "crossed" if alert["crossed"] else "is back within"
        announce(
            "threshold",
            f"{alert['deployment']}/{alert['threshold']}",
            f"deployment {alert['deployment']}: {alert['metric']} {state} {alert['threshold']}",
            f"{alert['metric']} = {alert['value']:.4g} (version {alert['version']})",
            alert,
            self.project or "default",
            version=f"{time.time():.6f}",
        )


def source_of(model: str, tracking_uri: str | None = None) -> str | RegistryRef:
    """What ``MODEL`` names on a command line: an existing path stays a path (an ONNX
    file or a model folder); anything else is a registry reference."""
    return model if Path(model).exists() else RegistryRef(model, tracking_uri)


def open_source(model: str | RegistryRef, threads: int = 1) -> tuple[ModelBundle, Watch | None]:
    """The bundle of a path or a registry reference, and its watcher (None: fixed)."""
    if isinstance(model, RegistryRef):
        return model.open(threads)
    return load_bundle(model, threads=threads), None


def make_app(model: Any, options: dict[str, Any]) -> Any:
    """The ModelServer of an ONNX file or a registry reference, with its watcher (an
    already built ModelServer is served as it is)."""
    from twinengine.ai.serving.server import ModelServer

    if isinstance(model, ModelServer):
        return model
    bundle, watch = open_source(model, int(options.get("threads", 1)))
    return ModelServer(bundle, watch=watch, **options)
