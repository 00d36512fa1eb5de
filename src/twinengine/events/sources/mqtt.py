"""MQTT as an event source: messages on ``topic`` (wildcards allowed) with QoS 1 and a
persistent session, so the broker queues messages while the source is down.

paho-mqtt 2.x runs its network loop in its own thread with ``manual_ack``: a received
message is queued, :meth:`MqttSource.run` emits it in the caller's thread and only then
sends the PUBACK. A message that was not acked (a crash, a failed emit) is sent again by
the broker when the same ``client_id`` reconnects. The version is the payload's ``id``
field (``id_field``) when the payload is a JSON object that has one, else the sha256 of
topic and payload: a re-delivery is then the same event — and so is an identical
message sent again later, so publishers should include an id or a timestamp.
"""

from __future__ import annotations

import hashlib
import queue
import re
import threading
import time
from typing import Any

from twinengine.core import ConfigError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.payloads import PayloadError, decode_payload
from twinengine.events.sources.options import integer, needs, number, text

_CONNECT_TIMEOUT = 10.0


class MqttSource(EventSource):
    """Messages from an MQTT broker, acknowledged after they were emitted."""

    kind = "mqtt"
    secret_fields = frozenset({"password"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.host: str = text(self, "host", "127.0.0.1")
        self.port = integer(self, "port", 1883, minimum=1)
        self.topic: str = text(self, "topic")
        self.qos = integer(self, "qos", 1)
        if self.qos not in (0, 1, 2):
            raise ConfigError(f"source {name!r} (mqtt): 'qos' must be 0, 1 or 2")
        self.client_id: str = text(self, "client_id", "twin-" + re.sub(r"\W", "_", name))
        self.clean_session: bool = self.option("clean_session", False, bool)
        self.username: str | None = text(self, "username", None)
        self.password: str | None = self.option("password", None, (str, type(None)))
        self.tls: bool = self.option("tls", False, bool)
        self.keepalive = integer(self, "keepalive", 30, minimum=5)
        self.id_field: str = text(self, "id_field", "id")
        self.connect_timeout = number(self, "connect_timeout", _CONNECT_TIMEOUT, minimum=0.1)
        needs(self, "paho.mqtt", "paho-mqtt")
        self._client: Any = None
        self.subscribed = threading.Event()  # set once the broker accepted the subscription

    def run(self, emit: Emit, stop: threading.Event) -> None:
        import paho.mqtt.client as mqtt

        received: queue.SimpleQueue[Any] = queue.SimpleQueue()
        connected = threading.Event()
        lost: list[str] = []  # why the connection ended, once it did

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            if reason.is_failure:
                lost.append(f"the broker refused the connection: {reason}")
            else:
                client.subscribe(self.topic, qos=self.qos)
            connected.set()

        def on_subscribe(client: Any, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
            if any(reason.is_failure for reason in reasons):
                lost.append(f"the broker refused the subscription to {self.topic!r}")
            else:
                self.subscribed.set()

        def on_disconnect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            lost.append(f"disconnected: {reason}")
            connected.set()

        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=self.clean_session,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        self._client = client
        if self.username:
            client.username_pw_set(self.username, self.password)
        if self.tls:
            client.tls_set()
        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_disconnect = on_disconnect
        client.on_message = lambda _client, _userdata, message: received.put(message)
        self.subscribed.clear()
        client.connect(self.host, self.port, keepalive=self.keepalive)
        client.loop_start()
        try:
            deadline = time.monotonic() + self.connect_timeout
            while not connected.wait(0.1):
                if stop.is_set():
                    return
                if time.monotonic() > deadline:
                    raise ConnectionError(f"source {self.name!r}: no answer from the MQTT broker")
            while not stop.is_set():
                if lost:
                    raise ConnectionError(f"source {self.name!r}: {lost[0]}")
                try:
                    message = received.get(timeout=0.2)
                except queue.Empty:
                    continue
                try:
                    event = self._event(message)
                except PayloadError as exc:
                    self.skip(f"a message on {message.topic!r}", exc)
                else:
                    emit(event)
                if message.qos > 0:
                    client.ack(message.mid, message.qos)  # PUBACK only once stored
        finally:
            client.disconnect()
            client.loop_stop()

    def _event(self, message: Any) -> Event:
        payload: bytes = message.payload
        data, content_type = decode_payload(payload)
        version = None
        if isinstance(data, dict) and data.get(self.id_field) not in (None, ""):
            version = str(data[self.id_field])
        if version is None:
            digest = hashlib.sha256(message.topic.encode() + b"\x00" + payload)
            version = digest.hexdigest()
        return self.event(
            message.topic,
            kind="message",
            version=version,
            size=len(payload),
            content_type=content_type,
            metadata={"qos": message.qos, "retain": bool(message.retain), "dup": message.dup},
            data=data,
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
