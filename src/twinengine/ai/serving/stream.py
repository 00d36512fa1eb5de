"""Stream inference: read inputs from a message subject, publish predictions to another.

``twin models stream MODEL --source URL --sink URL`` connects to NATS
(``nats://host:4222/subject``), MQTT (``mqtt://host:1883/topic``) or Kafka
(``kafka://host:9092/topic``), takes every message as one request — a JSON body
``{"inputs": [[...]], "id": ...}`` (or a bare list of rows), or a ``.npy`` body — and
publishes ``{"id", "outputs", "model", "version"}`` to the sink, one answer per message
in arrival order. Messages that arrive together (up to ``max_batch`` rows, waiting at
most ``max_wait_ms``) are predicted in one model call. A message that does not fit the
signature gets ``{"id", "error"}`` on the sink instead, and the stream goes on. A
registry alias is followed as in HTTP serving: the next batch after the alias moved
runs on the new version. :class:`StreamStats` counts messages, errors and batches.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import numpy as np

from twinengine.ai.serving.bundle import ModelBundle
from twinengine.core.errors import ConfigError, TwinError

log = logging.getLogger("twinengine.ai.serving")
SCHEMES = {"nats": 4222, "mqtt": 1883, "kafka": 9092}


@dataclass
class Endpoint:
    """A subject on a broker: ``scheme://host:port/subject``."""

    scheme: str
    host: str
    port: int
    subject: str

    @classmethod
    def parse(cls, url: str, what: str) -> Endpoint:
        parsed = urlparse(url)
        subject = parsed.path.lstrip("/")
        if parsed.scheme not in SCHEMES or not parsed.hostname or not subject:
            raise ConfigError(
                f"{what} {url!r}: write nats://HOST:PORT/SUBJECT, mqtt://HOST:PORT/TOPIC or "
                "kafka://HOST:PORT/TOPIC"
            )
        return cls(parsed.scheme, parsed.hostname, parsed.port or SCHEMES[parsed.scheme], subject)


@dataclass
class StreamStats:
    messages: int = 0
    errors: int = 0
    batches: int = 0
    swaps: int = 0


class _Nats:
    """NATS core subscribe/publish on a private event loop thread."""

    def __init__(self, source: Endpoint, sink: Endpoint, inbox: queue.Queue) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="twin-stream-nats", daemon=True).start()
        self.nc: Any = None
        self.source, self.sink, self.inbox = source, sink, inbox
        self._call(self._connect())

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    async def _connect(self) -> None:
        import nats

        async def handler(msg: Any) -> None:
            self.inbox.put(msg.data)

        async def quiet(exc: Exception) -> None:  # nats-py prints tracebacks otherwise
            log.warning("stream: NATS: %s", exc)

        address = f"nats://{self.source.host}:{self.source.port}"
        try:  # fail fast when the broker is not there at all ...
            self.nc = await nats.connect(
                address,
                connect_timeout=5,
                allow_reconnect=False,
                max_reconnect_attempts=1,  # two tries, then NoServersError (0: forever)
                reconnect_time_wait=0.5,
                error_cb=quiet,
            )
        except Exception as exc:
            raise OSError(str(exc) or type(exc).__name__) from None
        # ... and once connected, ride out broker restarts for as long as they last
        self.nc.options.update(
            allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=2
        )
        await self.nc.subscribe(self.source.subject, cb=handler)
        await self.nc.flush()

    def publish(self, payloads: list[bytes]) -> None:
        async def send() -> None:
            for body in payloads:
                await self.nc.publish(self.sink.subject, body)
            await self.nc.flush()

        self._call(send())

    def close(self) -> None:
        try:
            self._call(self.nc.drain())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)


class _Mqtt:
    """MQTT subscribe/publish with paho's network thread (QoS 1 both ways)."""

    def __init__(self, source: Endpoint, sink: Endpoint, inbox: queue.Queue) -> None:
        import paho.mqtt.client as mqtt

        self.sink = sink
        ready = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            client.subscribe(source.subject, qos=1)

        def on_subscribe(client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
            ready.set()

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = lambda c, u, msg: inbox.put(msg.payload)
        client.connect(source.host, source.port)
        client.loop_start()
        if not ready.wait(10):
            client.loop_stop()
            raise ConfigError(f"MQTT broker {source.host}:{source.port} did not accept us")
        self.client = client

    def publish(self, payloads: list[bytes]) -> None:
        infos = [self.client.publish(self.sink.subject, body, qos=1) for body in payloads]
        for info in infos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class _Kafka:
    """Kafka consumer/producer (kafka-python); not tested without a broker."""

    def __init__(self, source: Endpoint, sink: Endpoint, inbox: queue.Queue) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        self.sink, self.inbox, self.stop = sink, inbox, threading.Event()
        self.consumer = KafkaConsumer(
            source.subject,
            bootstrap_servers=f"{source.host}:{source.port}",
            group_id=f"twin-stream-{source.subject}",
        )
        self.producer = KafkaProducer(bootstrap_servers=f"{sink.host}:{sink.port}")
        threading.Thread(target=self._read, name="twin-stream-kafka", daemon=True).start()

    def _read(self) -> None:
        while not self.stop.is_set():
            for records in self.consumer.poll(timeout_ms=200).values():
                for record in records:
                    self.inbox.put(record.value)

    def publish(self, payloads: list[bytes]) -> None:
        for body in payloads:
            self.producer.send(self.sink.subject, body)
        self.producer.flush()

    def close(self) -> None:
        self.stop.set()
        self.producer.close()
        self.consumer.close()


_TRANSPORTS = {"nats": _Nats, "mqtt": _Mqtt, "kafka": _Kafka}


def _decode(body: bytes) -> tuple[Any, Any]:
    """``(id, inputs)`` of one message."""
    if body[:6] == b"\x93NUMPY":
        return None, [np.load(io.BytesIO(body), allow_pickle=False)]
    try:
        doc = json.loads(body)
    except ValueError as exc:
        raise TwinError(f"the message is neither JSON nor .npy: {exc}") from None
    if isinstance(doc, list):
        return None, [doc]
    if not isinstance(doc, dict) or "inputs" not in doc:
        raise TwinError('a JSON message needs "inputs": {"inputs": [[...]], "id": ...}')
    inputs = doc["inputs"]
    return doc.get("id"), inputs if isinstance(inputs, dict) else [inputs]


class StreamPredictor:
    """Predict messages from ``source`` onto ``sink`` (see the module docstring)."""

    def __init__(
        self,
        bundle: ModelBundle,
        source: str,
        sink: str,
        *,
        watch: Callable[[], ModelBundle | None] | None = None,
        poll_s: float = 2.0,
        max_batch: int = 256,
        max_wait_ms: float = 5.0,
    ) -> None:
        self.source = Endpoint.parse(source, "--source")
        self.sink = Endpoint.parse(sink, "--sink")
        if self.source.scheme != self.sink.scheme:
            raise ConfigError("--source and --sink must be on the same kind of broker")
        self.bundle, self.watch, self.poll_s = bundle, watch, poll_s
        self.max_batch, self.max_wait = max_batch, max_wait_ms / 1000
        self.inbox: queue.Queue[bytes] = queue.Queue()
        self.stats = StreamStats()
        self.stop_event = threading.Event()
        self.transport: Any = None

    def connect(self) -> None:
        try:
            self.transport = _TRANSPORTS[self.source.scheme](self.source, self.sink, self.inbox)
        except ImportError as exc:
            raise ConfigError(f"{self.source.scheme} streams need {exc.name}: install it") from None
        except (OSError, TimeoutError) as exc:
            where = f"{self.source.host}:{self.source.port}"
            raise ConfigError(
                f"cannot reach the {self.source.scheme} broker at {where}: {exc}"
            ) from None

    def run(self) -> StreamStats:
        """Process messages until :meth:`stop`."""
        if self.transport is None:
            self.connect()
        checked = time.monotonic()
        try:
            while not self.stop_event.is_set():
                if self.watch is not None and time.monotonic() - checked >= self.poll_s:
                    checked = time.monotonic()
                    self._check_version()
                batch = self._gather()
                if batch:
                    self.transport.publish(self._answer(batch))
        finally:
            self.transport.close()
        return self.stats

    def stop(self) -> None:
        self.stop_event.set()

    def _check_version(self) -> None:
        try:
            newer = self.watch() if self.watch is not None else None
        except Exception as exc:
            log.warning("stream: cannot check for a new model version: %s", exc)
            return
        if newer is not None:
            log.warning("stream: now predicting with version %s", newer.version)
            self.bundle = newer
            self.stats.swaps += 1

    def _gather(self) -> list[bytes]:
        try:
            first = self.inbox.get(timeout=0.2)
        except queue.Empty:
            return []
        batch, deadline = [first], time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            left = deadline - time.monotonic()
            try:
                batch.append(self.inbox.get(timeout=left) if left > 0 else self.inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    def _answer(self, batch: list[bytes]) -> list[bytes]:
        """One answer per message, in order; good messages share one model call."""
        bundle = self.bundle
        answers: list[dict[str, Any]] = []
        good: list[tuple[int, list[np.ndarray]]] = []
        for body in batch:
            ident = None
            try:
                ident, inputs = _decode(body)
                good.append((len(answers), bundle.signature.check(inputs)))
                answers.append({"id": ident})
            except TwinError as exc:
                answers.append({"id": ident, "error": str(exc)})
        if good:
            feeds = [np.concatenate([g[1][i] for g in good]) for i in range(len(good[0][1]))]
            try:
                outputs = bundle.run(feeds)  # each message was checked above
            except Exception as exc:  # a model failure answers every message of the batch
                for index, _ in good:
                    answers[index]["error"] = f"model failed: {exc}"
            else:
                start = 0
                for index, arrays in good:
                    rows = len(arrays[0])
                    part = [o[start : start + rows].tolist() for o in outputs]
                    answers[index]["outputs"] = part[0] if len(part) == 1 else part
                    start += rows
        self.stats.messages += len(batch)
        self.stats.batches += 1
        self.stats.errors += sum(1 for a in answers if "error" in a)
        meta = {"model": bundle.name, "version": bundle.version}
        return [json.dumps({**a, **meta}).encode() for a in answers]
