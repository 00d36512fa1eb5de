"""MqttSource against Mosquitto on 127.0.0.1:1883 (skipped when it is not running):
QoS 1 messages become events and are PUBACKed after emit, messages published while the
source is down wait in its persistent session, and a crash before the PUBACK has the
broker send the message again with the same idempotency key."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.events.conftest import Recorder, free_port, reachable, running
from twinengine.core import ConfigError
from twinengine.events.sources.mqtt import MqttSource

mqtt = pytest.importorskip("paho.mqtt.client")

pytestmark = pytest.mark.services


def publish(topic: str, *payloads: bytes) -> None:
    client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    for payload in payloads:
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def topic() -> Iterator[tuple[str, str]]:
    if not reachable("127.0.0.1", 1883):
        pytest.skip("Mosquitto is not running on 127.0.0.1:1883")
    tag = uuid.uuid4().hex[:10]
    client_id = f"twin-test-{tag}"
    yield f"twin/test/{tag}", client_id
    # forget the persistent session
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
    )
    client.connect("127.0.0.1", 1883)
    client.disconnect()


def make(topic: tuple[str, str], **extra: Any) -> MqttSource:
    prefix, client_id = topic
    return MqttSource("sensors", {"topic": f"{prefix}/#", "client_id": client_id, **extra})


def test_messages_persistent_session_and_restart(topic: tuple[str, str]) -> None:
    prefix = topic[0]
    seen = Recorder()
    source = make(topic)
    with running(source, seen):
        assert source.subscribed.wait(5)
        publish(f"{prefix}/t1", b'{"id": "r-1", "celsius": 21.5}', b"raw reading")
        seen.wait_for(2)
    first, second = seen.events
    assert (first.key, first.kind, first.version) == (f"{prefix}/t1", "message", "r-1")
    assert (first.data, first.size) == ({"id": "r-1", "celsius": 21.5}, 30)
    assert (second.data, second.content_type) == ("raw reading", "text/plain")
    assert len(second.version or "") == 64  # sha256 of topic and payload

    publish(f"{prefix}/t2", b"while down")  # queued in the persistent session
    again = Recorder()
    with running(make(topic), again):
        again.wait_for(1)
    assert [(e.key, e.data) for e in again.events] == [(f"{prefix}/t2", "while down")]


def test_crash_before_puback_redelivers(topic: tuple[str, str]) -> None:
    prefix = topic[0]
    crashing = Recorder(fail_on=2)
    source = make(topic)
    with running(source, crashing) as job:
        assert source.subscribed.wait(5)
        publish(f"{prefix}/x", b"one", b"two", b"three")
        job.wait_error()
    again = Recorder()
    with running(make(topic), again):
        again.wait_for(2)
    assert [e.data for e in crashing.events] == ["one"]
    assert [e.data for e in again.events] == ["two", "three"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()
    assert again.events[0].metadata["dup"] is True


def test_unreachable_broker_and_bad_config() -> None:
    source = MqttSource("sensors", {"topic": "a/#", "port": free_port()})
    with running(source, Recorder()) as job:
        assert isinstance(job.wait_error(), ConnectionRefusedError)
    with pytest.raises(ConfigError, match=r"source 'sensors' \(mqtt\): 'topic' is required"):
        MqttSource("sensors", {})
    with pytest.raises(ConfigError, match="'qos' must be 0, 1 or 2"):
        MqttSource("sensors", {"topic": "a", "qos": 3})
    with pytest.raises(ConfigError, match="'port' must be an integer"):
        MqttSource("sensors", {"topic": "a", "port": "1883"})


def test_a_message_nested_too_deep_is_skipped_and_acked(topic: tuple[str, str]) -> None:
    prefix = topic[0]
    seen = Recorder()
    source = make(topic)
    with running(source, seen):
        assert source.subscribed.wait(5)
        publish(f"{prefix}/deep", b"[" * 50_000 + b"]" * 50_000, b'{"id": "ok-1"}')
        seen.wait_for(1)
    assert [e.data for e in seen.events] == [{"id": "ok-1"}]
    assert source.skipped == 1
    again = Recorder()  # it was acknowledged: not sent again to the same session
    with running(make(topic), again):
        time.sleep(1.0)
    assert again.events == []
