"""The event queue backed by NATS JetStream or Redis Streams, for several machines.

By default an event goes from its source straight into the metadata database. With
``TWIN_EVENT_QUEUE=nats://host:4222`` (or ``redis://host:6379/0``) it is first
published to a JetStream stream (or a Redis stream) — ``emit`` returns once the broker
has it, so sources on any machine hand over at the broker's speed — and every
``twin serve`` sharing that queue consumes it as one consumer group (each event goes
to one server), writes it to the (shared, PostgreSQL) database and only then
acknowledges it. A server that dies before acknowledging leaves the event to be
redelivered; its idempotency key makes a second copy a no-op. ``?queue=NAME`` names the
stream (default ``twin``: JetStream stream ``TWIN_EVENTS``, subjects ``twin.events.*``;
Redis stream ``twin:events``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import os
import re
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

from twinengine.core import ConfigError
from twinengine.events.base import Event, SourceState, retry_until_stopped, run_once
from twinengine.events.sourcesecrets import scrub, shown_url

log = logging.getLogger(__name__)
Ingest = Callable[[Event, "str | None"], Any]


def _event_of(message: Any) -> tuple[Event, str | None]:
    """The event (and project) a queue message carries."""
    doc = message if isinstance(message, dict) else json.loads(message)
    fields = dict(doc["event"])
    fields["time"] = dt.datetime.fromisoformat(fields["time"])
    return Event(**fields), doc.get("project")


def _payload(event: Event, project: str | None) -> bytes:
    return json.dumps({"event": event.as_dict(), "project": project}, default=str).encode()


class StreamTransport:
    """Publish events to a broker stream and consume them into the database."""

    def __init__(self, url: str, ingest: Ingest, state_folder: Any) -> None:
        parts = urlsplit(url)
        name = (parse_qs(parts.query).get("queue") or ["twin"])[0]
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,32}", name):
            raise ConfigError(f"TWIN_EVENT_QUEUE: queue name {name!r} is not usable")
        self.url = urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))
        self.kind = parts.scheme
        if self.kind not in ("nats", "redis", "rediss"):
            raise ConfigError("TWIN_EVENT_QUEUE must be a nats:// or redis:// URL")
        self.name, self.ingest, self.state_folder = name, ingest, state_folder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._publisher: Any = None
        self._lock = threading.Lock()

    # -- consuming -----------------------------------------------------------------------
    def _source(self) -> Any:
        from twinengine.events.sources.nats import NatsSource
        from twinengine.events.sources.redis import RedisStreamSource

        state = SourceState(self.state_folder, f"queue-{self.name}")
        if self.kind == "nats":
            config = {
                "servers": self.url,
                "subject": f"{self.name}.events.*",
                "stream": f"{self.name.upper()}_EVENTS",
                "create_stream": True,
                "durable": f"{self.name}-engine",
                "batch": 100,
            }
            return NatsSource(f"{self.name}-queue", config, state)
        config = {
            "url": self.url,
            "stream": f"{self.name}:events",
            "group": f"{self.name}-engine",
            "consumer": f"{socket.gethostname()}-{os.getpid()}",
            "batch": 100,
        }
        return RedisStreamSource(f"{self.name}-queue", config, state)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._consume, name="twin-queue", daemon=True)
        self._thread.start()

    def _consume(self) -> None:
        def attempt() -> None:
            run_once(self._source(), self._deliver, self._stop)

        def failed(exc: Exception, delay: float) -> None:  # the broker is down
            shown = shown_url(self.url)
            error = scrub(str(exc), [p for p in (urlsplit(self.url).password,) if p])
            log.warning("event queue %s: %s; retrying in %.0f s", shown, error, delay)

        retry_until_stopped(self._stop, attempt, failed, most=30.0)

    def _deliver(self, message: Event) -> None:
        event, project = _event_of(message.data)
        self.ingest(event, project)  # raises → the broker redelivers it

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._publisher is not None:
            self._publisher.close()

    # -- publishing ----------------------------------------------------------------------
    def publish(self, event: Event, project: str | None) -> None:
        """Hand an event to the broker; returns once the broker stored it."""
        with self._lock:
            if self._publisher is None:
                self._publisher = (_NatsPublisher if self.kind == "nats" else _RedisPublisher)(
                    self.url, self.name
                )
        self._publisher.publish(event, project, _payload(event, project))


class _NatsPublisher:
    def __init__(self, url: str, name: str) -> None:
        import nats

        self.subject_prefix = f"{name}.events."
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="twin-queue-pub", daemon=True).start()
        self.client = self._call(nats.connect(url, connect_timeout=5))
        self.stream = self.client.jetstream()
        self._call(self._ensure(f"{name.upper()}_EVENTS"))

    async def _ensure(self, stream: str) -> None:
        from nats.js.errors import NotFoundError

        try:
            await self.stream.stream_info(stream)
        except NotFoundError:
            await self.stream.add_stream(name=stream, subjects=[f"{self.subject_prefix}*"])

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def publish(self, event: Event, project: str | None, payload: bytes) -> None:
        subject = self.subject_prefix + re.sub(r"[^A-Za-z0-9_-]", "_", event.source)
        # the broker drops a repeat too (the key holds the project: names are per project)
        headers = {"Nats-Msg-Id": event.idempotency_key(project)}
        self._call(self.stream.publish(subject, payload, headers=headers))

    def close(self) -> None:
        try:
            self._call(self.client.close())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


class _RedisPublisher:
    def __init__(self, url: str, name: str) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        self.stream = f"{name}:events"

    def publish(self, event: Event, project: str | None, payload: bytes) -> None:
        self.client.xadd(self.stream, {"data": payload})

    def close(self) -> None:
        self.client.close()
