"""A Redis stream as an event source, read through a consumer group.

The group is created (``XGROUP CREATE … MKSTREAM``) when missing, from ``start`` (``0``:
the whole stream, default; ``$``: only new entries). On start the source first re-reads
its own pending entries (``XREADGROUP`` from id ``0``: delivered to this consumer but
never acknowledged, e.g. because the process died), then new ones (``>``). Each entry is
emitted, then ``XACK``'ed. The version is the entry id, the same on every re-delivery.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from twinengine.core import ConfigError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.payloads import PayloadError, PayloadTooDeep, load_json
from twinengine.events.sources.options import integer, needs, text

_BLOCK_MS = 500  # how long one XREADGROUP waits; bounds how fast run() stops


class RedisStreamSource(EventSource):
    """Entries of a Redis stream, acknowledged with XACK after they were emitted."""

    kind = "redis"

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.url: str = text(self, "url", "redis://127.0.0.1:6379/0")
        if not self.url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError(f"source {name!r} (redis): 'url' must be a redis:// URL")
        self.stream: str = text(self, "stream")
        self.group: str = text(self, "group", "twin-" + re.sub(r"\s", "_", name))
        self.consumer: str = text(self, "consumer", "twin")
        self.start: str = text(self, "start", "0")
        self.batch = integer(self, "batch", 10, minimum=1)
        needs(self, "redis")
        self._redis: Any = None

    def _connect(self) -> Any:
        import redis

        client = redis.Redis.from_url(
            self.url, decode_responses=True, socket_connect_timeout=5, socket_timeout=30
        )
        try:
            client.xgroup_create(self.stream, self.group, id=self.start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        return client

    def run(self, emit: Emit, stop: threading.Event) -> None:
        if self._redis is None:
            self._redis = self._connect()
        client = self._redis
        backlog = True  # first our own pending entries (id 0), then new ones (">")
        while not stop.is_set():
            reply = client.xreadgroup(
                self.group,
                self.consumer,
                {self.stream: "0" if backlog else ">"},
                count=self.batch,
                block=None if backlog else _BLOCK_MS,
            )
            entries = reply[0][1] if reply else []
            if backlog and not entries:
                backlog = False
                continue
            for entry_id, fields in entries:
                if stop.is_set():
                    return  # unacked entries stay pending and are read first next time
                if fields is None:  # trimmed from the stream while pending
                    client.xack(self.stream, self.group, entry_id)
                    continue
                try:
                    event = self._event(entry_id, fields)
                except PayloadError as exc:
                    self.skip(f"entry {entry_id}", exc)
                else:
                    emit(event)
                client.xack(self.stream, self.group, entry_id)

    def _event(self, entry_id: str, fields: dict[str, str]) -> Event:
        data: Any = dict(fields)
        for name in ("data", "payload"):
            if len(fields) == 1 and name in fields:  # one JSON payload field: decode it
                try:
                    data = load_json(fields[name], "the entry")
                except PayloadTooDeep:
                    raise  # skipped by run
                except PayloadError:
                    data = fields[name]
        return self.event(
            self.stream,
            kind="message",
            version=entry_id,
            size=sum(len(k.encode()) + len(v.encode()) for k, v in fields.items()),
            content_type="application/json",
            metadata={"group": self.group, "consumer": self.consumer, "id": entry_id},
            data=data,
        )

    def close(self) -> None:
        client, self._redis = self._redis, None
        if client is not None:
            client.close()
