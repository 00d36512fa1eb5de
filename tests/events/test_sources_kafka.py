"""KafkaSource. Without a broker here, only the record → event mapping and the config
checks run; the tests against a broker (records committed after emit, a restart in the
same group, a crash before the commit) run when TWIN_TEST_KAFKA names one (host:port)."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from tests.events.conftest import Recorder, running
from twinengine.core import ConfigError
from twinengine.events.payloads import PayloadTooDeep
from twinengine.events.sources.kafka import KafkaSource

kafka = pytest.importorskip("kafka")

BROKER = os.environ.get("TWIN_TEST_KAFKA", "")
needs_broker = pytest.mark.skipif(
    not BROKER, reason="no Kafka broker here: set TWIN_TEST_KAFKA=host:port to test against one"
)


def test_record_event() -> None:
    from kafka.consumer.fetcher import ConsumerRecord

    record = ConsumerRecord(
        topic="raw",
        partition=2,
        leader_epoch=0,
        offset=41,
        timestamp=1714557600000,
        timestamp_type=0,
        key=b"sensor-7",
        value=b'{"t": 1}',
        headers=[("content-type", b"application/json")],
        checksum=None,
        serialized_key_size=8,
        serialized_value_size=8,
        serialized_header_size=-1,
    )
    event = KafkaSource("bus", {"bootstrap_servers": "k:9092", "topic": "raw"}).record_event(record)
    assert (event.key, event.kind, event.version, event.size) == ("raw", "message", "2:41", 8)
    assert event.data == {"t": 1} and event.metadata["key"] == "sensor-7"


def test_bad_config() -> None:
    with pytest.raises(
        ConfigError, match=r"source 'bus' \(kafka\): 'bootstrap_servers' is required"
    ):
        KafkaSource("bus", {"topic": "t"})
    with pytest.raises(ConfigError, match="'topic' is required"):
        KafkaSource("bus", {"bootstrap_servers": "k:9092"})
    with pytest.raises(ConfigError, match="'auto_offset_reset' must be one of"):
        KafkaSource("bus", {"bootstrap_servers": "k:9092", "topic": "t", "auto_offset_reset": "x"})


def produce(topic: str, *values: bytes) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=BROKER)
    for value in values:
        producer.send(topic, value)
    producer.flush()
    producer.close()


def make(topic: str, group: str, **extra: Any) -> KafkaSource:
    config = {"bootstrap_servers": BROKER, "topic": topic, "group_id": group, **extra}
    return KafkaSource("bus", config)


@pytest.mark.services
@needs_broker
def test_records_committed_after_emit_and_restart() -> None:
    topic, group = f"twin-test-{uuid.uuid4().hex[:8]}", "g1"
    produce(topic, b'{"n": 1}', b"two")
    seen = Recorder()
    with running(make(topic, group), seen):
        seen.wait_for(2, timeout=30)
    assert [e.data for e in seen.events] == [{"n": 1}, "two"]
    assert [e.version for e in seen.events] == ["0:0", "0:1"]
    produce(topic, b"three")
    again = Recorder()
    with running(make(topic, group), again):
        again.wait_for(1, timeout=30)
    assert [e.version for e in again.events] == ["0:2"]


@pytest.mark.services
@needs_broker
def test_crash_before_commit_redelivers() -> None:
    topic, group = f"twin-test-{uuid.uuid4().hex[:8]}", "g2"
    produce(topic, b"1", b"2", b"3")
    crashing = Recorder(fail_on=2)
    with running(make(topic, group), crashing) as job:
        job.wait_error(timeout=30)
    again = Recorder()
    with running(make(topic, group), again):
        again.wait_for(2, timeout=30)
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_a_record_nested_too_deep_is_refused_for_skipping() -> None:
    from kafka.consumer.fetcher import ConsumerRecord

    deep = b"[" * 50_000 + b"]" * 50_000
    record = ConsumerRecord("raw", 0, 0, 7, 0, 0, None, deep, [], None, 0, len(deep), -1)
    source = KafkaSource("bus", {"bootstrap_servers": "k:9092", "topic": "raw"})
    with pytest.raises(PayloadTooDeep, match="nested more than 64 levels"):
        source.record_event(record)
