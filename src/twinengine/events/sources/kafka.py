"""A Kafka topic as an event source, read by a consumer group (kafka-python).

Auto-commit is off: the source polls a batch, emits its records one by one and commits,
per partition, the offset after the last record that was emitted — also when a later
emit failed — so a crash re-delivers from the first record not stored. New groups start
at the earliest offset (``auto_offset_reset``). The version is ``<partition>:<offset>``,
the same on every re-delivery.
"""

from __future__ import annotations

import threading
from typing import Any

from twinengine.core import ConfigError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.payloads import PayloadError, decode_payload
from twinengine.events.sources.options import choice, integer, needs, text

_POLL_MS = 500  # how long one poll waits; bounds how fast run() stops


def _offset(offset_and_metadata: Any, offset: int) -> Any:
    """An OffsetAndMetadata (kafka-python >= 2.1 added a leader_epoch field)."""
    if len(offset_and_metadata._fields) == 3:
        return offset_and_metadata(offset, "", -1)
    return offset_and_metadata(offset, "")


class KafkaSource(EventSource):
    """Records of a Kafka topic, offsets committed after they were emitted."""

    kind = "kafka"
    secret_fields = frozenset({"sasl_plain_password"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        servers = self.option("bootstrap_servers", ..., (str, list))
        self.bootstrap_servers: list[str] = [servers] if isinstance(servers, str) else servers
        if not self.bootstrap_servers or not all(
            isinstance(s, str) and s for s in self.bootstrap_servers
        ):
            raise ConfigError(
                f"source {name!r} (kafka): 'bootstrap_servers' must be host:port strings"
            )
        self.topic: str = text(self, "topic")
        self.group_id: str = text(self, "group_id", f"twin-{name}")
        self.auto_offset_reset = choice(
            self, "auto_offset_reset", "earliest", ("earliest", "latest")
        )
        self.batch = integer(self, "batch", 100, minimum=1)
        self.security: dict[str, Any] = {
            key: self.config[key]
            for key in (
                "security_protocol",
                "sasl_mechanism",
                "sasl_plain_username",
                "sasl_plain_password",
            )
            if key in self.config
        }
        needs(self, "kafka", "kafka-python")
        self._consumer: Any = None

    def _connect(self) -> Any:
        from kafka import KafkaConsumer

        return KafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset=self.auto_offset_reset,
            client_id=f"twinengine-{self.name}",
            **self.security,
        )

    def run(self, emit: Emit, stop: threading.Event) -> None:
        from kafka.structs import OffsetAndMetadata

        if self._consumer is None:
            self._consumer = self._connect()
        consumer = self._consumer
        while not stop.is_set():
            batches = consumer.poll(timeout_ms=_POLL_MS, max_records=self.batch)
            done: dict[Any, Any] = {}  # partition -> offset to commit
            try:
                for partition, records in batches.items():
                    for record in records:
                        if stop.is_set():
                            break
                        try:
                            event = self.record_event(record)
                        except PayloadError as exc:
                            self.skip(f"record {record.partition}:{record.offset}", exc)
                        else:
                            emit(event)
                        done[partition] = _offset(OffsetAndMetadata, record.offset + 1)
            finally:  # records polled but not emitted are fetched again after a restart
                if done:
                    consumer.commit(done)

    def record_event(self, record: Any) -> Event:
        """The event for one consumer record."""
        value: bytes = record.value or b""
        headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or [])}
        data, content_type = decode_payload(value, headers.get("content-type"))
        key = record.key.decode("utf-8", "replace") if record.key is not None else None
        return self.event(
            record.topic,
            kind="message",
            version=f"{record.partition}:{record.offset}",
            size=len(value),
            content_type=content_type,
            metadata={
                "partition": record.partition,
                "offset": record.offset,
                "key": key,
                "timestamp": record.timestamp,
                "headers": headers,
            },
            data=data,
        )

    def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            consumer.close(autocommit=False)
