"""NATS JetStream as an event source: a durable pull consumer on ``subject``.

nats-py is asynchronous, so the client lives on its own asyncio loop in a helper thread
and :meth:`NatsSource.run` drives it from the caller's thread: fetch a batch, ``emit``
each message, then ack it. A message whose emit failed (and the rest of its batch) is
nak'ed so JetStream re-delivers it at once; after a crash JetStream re-delivers it when
``ack_wait`` expires. The version is the message's stream sequence, the same on every
re-delivery.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from twinengine.core import ConfigError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.payloads import PayloadError, decode_payload
from twinengine.events.sources.options import integer, needs, number, text

T = TypeVar("T")
_FETCH_WAIT = 0.5  # seconds a fetch waits for messages; bounds how fast run() stops


class NatsSource(EventSource):
    """Messages on a JetStream subject, consumed by a durable pull consumer."""

    kind = "nats"
    secret_fields = frozenset({"password", "token"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        servers = self.option("servers", "nats://127.0.0.1:4222", (str, list))
        self.servers: list[str] = [servers] if isinstance(servers, str) else list(servers)
        if not self.servers or not all(isinstance(s, str) and s for s in self.servers):
            raise ConfigError(f"source {name!r} (nats): 'servers' must be URLs like nats://h:4222")
        self.subject: str = text(self, "subject")
        self.stream: str | None = text(self, "stream", None)
        self.create_stream: bool = self.option("create_stream", False, bool)
        if self.create_stream and self.stream is None:
            raise ConfigError(f"source {name!r} (nats): 'stream' is required with create_stream")
        default_durable = "twin-" + re.sub(r"[^A-Za-z0-9_-]", "_", name)
        self.durable: str = text(self, "durable", default_durable)
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.durable):
            raise ConfigError(
                f"source {name!r} (nats): 'durable' may hold only letters, digits, _ and -"
            )
        self.batch = integer(self, "batch", 10, minimum=1)
        self.ack_wait = number(self, "ack_wait", 30.0, minimum=0.1)
        self.auth = {key: text(self, key, None) for key in ("user", "password", "token")}
        self.credentials: str | None = text(self, "credentials", None)
        needs(self, "nats", "nats-py")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._nc: Any = None

    def _call(self, coro: Coroutine[Any, Any, T], timeout: float | None = 30) -> T:
        """Run a coroutine on the client's loop and wait for its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def _connect(self) -> Any:
        import nats

        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"nats-{self.name}", daemon=True
        )
        self._thread.start()
        options: dict[str, Any] = {k: v for k, v in self.auth.items() if v is not None}
        if self.credentials:
            options["user_credentials"] = self.credentials
        self._nc = self._call(
            nats.connect(
                self.servers,
                connect_timeout=5,
                reconnect_time_wait=1,
                max_reconnect_attempts=3,
                name=f"twinengine:{self.name}",
                **options,
            )
        )
        return self._nc

    async def _subscribe(self, nc: Any) -> Any:
        from nats.js.api import ConsumerConfig
        from nats.js.errors import NotFoundError

        js = nc.jetstream()
        if self.create_stream:
            try:
                await js.stream_info(self.stream)
            except NotFoundError:
                await js.add_stream(name=self.stream, subjects=[self.subject])
        return await js.pull_subscribe(
            self.subject,
            durable=self.durable,
            stream=self.stream,
            config=ConsumerConfig(ack_wait=self.ack_wait),
        )

    def run(self, emit: Emit, stop: threading.Event) -> None:
        from nats.errors import TimeoutError as FetchTimeout

        nc = self._nc
        if nc is None or nc.is_closed or nc.is_draining:
            self.close()
            nc = self._connect()
        subscription = self._call(self._subscribe(nc))
        while not stop.is_set():
            if nc.is_closed:
                raise ConnectionError(f"source {self.name!r}: the NATS connection was lost")
            try:
                messages = self._call(subscription.fetch(self.batch, timeout=_FETCH_WAIT))
            except FetchTimeout:
                continue
            pending = list(messages)
            try:
                while pending and not stop.is_set():
                    try:
                        event = self._event(pending[0])
                    except PayloadError as exc:
                        self.skip(f"message {pending[0].metadata.sequence.stream}", exc)
                    else:
                        emit(event)
                    self._call(pending.pop(0).ack())
            except BaseException:
                self._nak(pending)
                raise
            self._nak(pending)  # left over when stopping
            self._call(nc.flush(timeout=5))  # the acks are on their way

    def _nak(self, messages: list[Any]) -> None:
        """Have JetStream re-deliver messages that were not stored, without ack_wait."""
        for message in messages:
            try:
                self._call(message.nak(), timeout=5)
            except Exception:
                return

    def _event(self, message: Any) -> Event:
        meta = message.metadata
        headers = dict(message.headers or {})
        data, content_type = decode_payload(message.data, headers.get("Content-Type"))
        timestamp = meta.timestamp if isinstance(meta.timestamp, dt.datetime) else None
        return self.event(
            message.subject,
            kind="message",
            version=str(meta.sequence.stream),
            size=len(message.data),
            content_type=content_type,
            metadata={
                "stream": meta.stream,
                "consumer": meta.consumer,
                "consumer_sequence": meta.sequence.consumer,
                "num_delivered": meta.num_delivered,
                "headers": headers,
            },
            data=data,
            **({"time": timestamp} if timestamp else {}),
        )

    def close(self) -> None:
        nc, self._nc = self._nc, None
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if nc is not None and not nc.is_closed:
            try:
                asyncio.run_coroutine_threadsafe(nc.close(), loop).result(5)
            except Exception:
                pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        loop.close()
