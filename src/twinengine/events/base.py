"""What every event source shares: the :class:`Event`, the :class:`EventSource` interface
and the registry of source kinds (entry-point group ``twinengine.event_sources``).

A source watches one peer (a folder, a bucket, a dCache door, a message stream, a
clock) and calls ``emit(event)`` for each new thing it sees. ``emit`` returns only once
the event is stored durably (the event queue in the metadata database), so a source
acknowledges to its peer — commits a cursor, acks a message — only *after* ``emit``
returned. An event's :meth:`Event.idempotency_key` (project, source, object, version) makes a
re-delivered event a no-op, so at-least-once delivery from the peer becomes
exactly-one-run downstream.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from twinengine.core import ConfigError
from twinengine.core.errors import InvalidInputError
from twinengine.core.times import utcnow

log = logging.getLogger(__name__)

Emit = Callable[["Event"], None]


@dataclass
class Event:
    """One thing that happened at a source: a new object, a message, a clock tick."""

    source: str  # the configured source's name
    key: str  # object key, file path relative to the watched root, subject, schedule
    kind: str = "created"  # created, modified, deleted, message, tick, webhook
    version: str | None = None  # etag, version id, mtime+size, stream sequence …
    size: int | None = None
    content_type: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    data: Any = None  # a message's decoded payload (JSON-able), small
    location: str | None = None  # where the object can be read (path or URL)
    time: dt.datetime = field(default_factory=utcnow)

    def idempotency_key(self, project: str | None = None) -> str:
        """Same project, source, object and version: the same event (a re-delivery).
        Source names are unique within a project only, so two projects' sources of the
        same name never share keys (an event of no project keeps the key it always had)."""
        raw = "\x1f".join((self.source, self.key, self.version or ""))
        if project is not None:
            raw = f"{project}\x1e{raw}"
        return hashlib.sha256(raw.encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "key": self.key,
            "kind": self.kind,
            "version": self.version,
            "size": self.size,
            "content_type": self.content_type,
            "metadata": self.metadata,
            "data": self.data,
            "location": self.location,
            "time": self.time.isoformat(),
        }


class SourceState:
    """A source's persisted cursor (last key seen, stream position …) as a JSON object.

    Kept in ``$TWIN_HOME/events/state/<project>/<source>.json`` (:meth:`of`), written
    atomically (temp file + rename). A source saves its cursor only after ``emit``
    returned for the events before it, so a crash in between re-delivers
    (deduplicated), never skips."""

    def __init__(self, folder: Path, name: str) -> None:
        self.path = Path(folder) / f"{name}.json"

    @classmethod
    def of(cls, folder: Path, project: str, name: str) -> SourceState:
        """The cursor of source ``name`` of ``project``. A cursor kept where it was when
        source names were unique on the server (``<folder>/<name>.json``) moves here, so
        an upgraded server does not announce everything again."""
        state = cls(Path(folder) / project, name)
        legacy = Path(folder) / f"{name}.json"
        if not state.path.exists() and legacy.is_file():
            state.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(legacy, state.path)
            except OSError:
                log.debug("moving the cursor %s failed", legacy, exc_info=True)
        return state

    def load(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def save(self, state: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.path.with_suffix(".tmp")
        temp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temp, self.path)


class EventSource(ABC):
    """A watched peer. Subclasses set ``kind`` and implement :meth:`run`.

    ``config`` is the source's section of its YAML definition (minus ``name`` and
    ``kind``); a subclass checks it in ``__init__`` and raises :class:`ConfigError`
    naming the field. :meth:`run` blocks, emitting events, until ``stop`` is set; it
    raises on a lost connection — the runner retries it with backoff and shows the
    error as the source's status, so one failing source never stops the others.
    """

    kind: ClassVar[str] = ""
    #: settings holding secrets besides those named like one (password, token, *_secret …;
    #: see :mod:`twinengine.events.sourcesecrets`): sealed at rest, shown as ``***``
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        self.name = name
        self.config = dict(config)
        self.state = state or SourceState(Path(tempfile.gettempdir()) / "twin-sources", name)
        self.skipped = 0  # messages refused (see skip) since the source was made

    @abstractmethod
    def run(self, emit: Emit, stop: threading.Event) -> None:
        """Watch the peer and ``emit`` each new event until ``stop`` is set."""

    def close(self) -> None:  # noqa: B027 - optional clean-up
        """Release connections (called after :meth:`run` returned or raised)."""

    def limit_paths(self, roots: tuple[Path, ...] | None, hidden: tuple[Path, ...]) -> None:  # noqa: B027
        """The server's limits on the local files this source may look at: inside
        ``roots`` (None: anywhere) and never inside ``hidden`` (the server's own files),
        links resolved. A source that reads no local files ignores them."""

    def parse(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Event]:
        """The events of one request to ``POST /api/v1/events/{source}``; a source whose
        events (also) arrive that way overrides this (see :meth:`takes_posts`)."""
        raise no_posts(self.name, self.kind)

    @classmethod
    def takes_posts(cls) -> bool:
        """Whether the API hands posted requests to this kind (it overrides :meth:`parse`)."""
        return cls.parse is not EventSource.parse

    # helpers for subclasses ------------------------------------------------------------
    def skip(self, what: str, why: Exception) -> None:
        """Count and log a message that cannot become an event (a payload nested too
        deep …): the source acknowledges it and goes on, rather than failing on it again
        and again."""
        self.skipped += 1
        log.warning("source %s skipped %s (%d so far): %s", self.name, what, self.skipped, why)

    def option(self, key: str, default: Any = ..., kind: type | tuple[type, ...] = object) -> Any:
        """A config value, checked; a missing required one is a ConfigError naming it."""
        if key not in self.config:
            if default is ...:
                raise ConfigError(f"source {self.name!r} ({self.kind}): {key!r} is required")
            return default
        value = self.config[key]
        if kind is not object and not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(f"source {self.name!r} ({self.kind}): {key!r} must be {names}")
        return value

    def event(self, key: str, **fields: Any) -> Event:
        return Event(source=self.name, key=key, **fields)


BUILTIN_SOURCES = {
    "folder": "twinengine.events.sources.folder:FolderSource",
    "s3": "twinengine.events.sources.s3:S3Source",
    "dcache": "twinengine.events.sources.dcache:DcacheSseSource",
    "webdav": "twinengine.events.sources.webdav:WebdavSource",
    "webhook": "twinengine.events.sources.webhook:WebhookSource",
    "cron": "twinengine.events.sources.cron:CronSource",
    "nats": "twinengine.events.sources.nats:NatsSource",
    "mqtt": "twinengine.events.sources.mqtt:MqttSource",
    "redis": "twinengine.events.sources.redis:RedisStreamSource",
    "kafka": "twinengine.events.sources.kafka:KafkaSource",
}


def no_posts(name: str, kind: str) -> InvalidInputError:
    """The error for a request posted to a source that takes none."""
    return InvalidInputError(
        f"source {name!r} is a {kind} source; it takes no posted events",
        hint="post to a webhook source, or bucket notifications to an s3 source",
    )


def run_once(source: EventSource, emit: Emit, stop: threading.Event) -> None:
    """Run ``source`` until ``stop`` or a failure (which propagates); close it either way
    (a failing close is only logged)."""
    try:
        source.run(emit, stop)
    finally:
        try:
            source.close()
        except Exception:
            log.debug("closing source %s failed", source.name, exc_info=True)


def retry_until_stopped(
    stop: threading.Event,
    attempt: Callable[[], None],
    on_error: Callable[[Exception, float], None],
    *,
    first: float = 1.0,
    most: float = 60.0,
) -> None:
    """Call ``attempt`` until ``stop`` is set; after a failure tell ``on_error`` (the
    exception and the wait), then wait ``first``, twice that … at most ``most`` seconds.
    An attempt that returns normally resets the wait."""
    delay = first
    while not stop.is_set():
        try:
            attempt()
            delay = first
        except Exception as exc:  # the peer is down: say so, wait, retry
            on_error(exc, delay)
            stop.wait(delay)
            delay = min(most, delay * 2)


def source_class(kind: str) -> type[EventSource]:
    """The class for a source kind: built-in, or from the entry-point group."""
    import importlib

    target = BUILTIN_SOURCES.get(kind)
    if target is None:
        found = [e for e in entry_points(group="twinengine.event_sources") if e.name == kind]
        if not found:
            known = sorted(
                {
                    *BUILTIN_SOURCES,
                    *(e.name for e in entry_points(group="twinengine.event_sources")),
                }
            )
            raise ConfigError(f"unknown source kind {kind!r}", hint="one of: " + ", ".join(known))
        return found[0].load()
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def make_source(
    name: str, kind: str, config: dict[str, Any], state: SourceState | None = None
) -> EventSource:
    return source_class(kind)(name, config, state)
