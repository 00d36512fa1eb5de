"""NatsSource against the NATS server with JetStream on 127.0.0.1:4222 (skipped when it
is not running): messages become events acked after emit, a restart with the same
durable consumer gets only what was not acked, and a crash before the ack re-delivers
the message with the same idempotency key."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.events.conftest import Recorder, free_port, reachable, running, wait_until
from twinengine.core import ConfigError
from twinengine.events.sources.nats import NatsSource

nats = pytest.importorskip("nats")

pytestmark = pytest.mark.services
SERVER = "nats://127.0.0.1:4222"


@pytest.fixture
def stream() -> Iterator[tuple[str, str]]:
    if not reachable("127.0.0.1", 4222):
        pytest.skip("NATS is not running on 127.0.0.1:4222")
    tag = uuid.uuid4().hex[:10]
    yield f"TWIN_{tag}", f"twin.test.{tag}"

    async def delete() -> None:
        nc = await nats.connect(SERVER)
        try:
            await nc.jetstream().delete_stream(f"TWIN_{tag}")
        except Exception:
            pass
        await nc.close()

    asyncio.run(delete())


def publish(subject: str, *payloads: bytes, headers: dict[str, str] | None = None) -> None:
    async def send() -> None:
        nc = await nats.connect(SERVER)
        js = nc.jetstream()
        for payload in payloads:
            await js.publish(subject, payload, headers=headers)
        await nc.close()

    asyncio.run(send())


def stream_exists(name: str) -> bool:
    async def check() -> bool:
        nc = await nats.connect(SERVER)
        try:
            await nc.jetstream().stream_info(name)
            return True
        except Exception:
            return False
        finally:
            await nc.close()

    return asyncio.run(check())


def make(stream: tuple[str, str], **extra: Any) -> NatsSource:
    name, subject = stream
    config = {"servers": SERVER, "subject": f"{subject}.>", "stream": name, "create_stream": True}
    return NatsSource("bus", {**config, **extra})


def test_messages_are_acked_after_emit(stream: tuple[str, str]) -> None:
    name, subject = stream
    seen = Recorder()
    with running(make(stream), seen):
        wait_until(lambda: stream_exists(name), what="the stream")
        publish(f"{subject}.a", b'{"file": "x.nc"}')
        publish(f"{subject}.b", b"plain text", headers={"Content-Type": "text/plain"})
        seen.wait_for(2)
    first, second = seen.events
    assert (first.key, first.kind, first.version) == (f"{subject}.a", "message", "1")
    assert (first.data, first.content_type, first.size) == (
        {"file": "x.nc"},
        "application/json",
        16,
    )
    assert (second.version, second.data, second.content_type) == ("2", "plain text", "text/plain")
    assert first.metadata["stream"] == name

    publish(f"{subject}.c", b"3")
    again = Recorder()
    with running(make(stream), again):
        again.wait_for(1)
    assert [(e.key, e.version) for e in again.events] == [(f"{subject}.c", "3")]


def test_crash_before_ack_redelivers(stream: tuple[str, str]) -> None:
    name, subject = stream
    crashing = Recorder(fail_on=2)
    with running(make(stream, durable="crashy"), crashing) as job:
        wait_until(lambda: stream_exists(name), what="the stream")
        publish(f"{subject}.x", b"1", b"2", b"3")
        job.wait_error()
    again = Recorder()
    with running(make(stream, durable="crashy"), again):
        again.wait_for(2)
    assert [e.version for e in crashing.events] == ["1"]
    assert [e.version for e in again.events] == ["2", "3"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()
    assert again.events[0].metadata["num_delivered"] == 2


def test_unreachable_server_and_bad_config() -> None:
    source = NatsSource("bus", {"servers": f"nats://127.0.0.1:{free_port()}", "subject": "x"})
    with running(source, Recorder()) as job:
        job.wait_error()
    with pytest.raises(ConfigError, match=r"source 'bus' \(nats\): 'subject' is required"):
        NatsSource("bus", {})
    with pytest.raises(ConfigError, match="'stream' is required with create_stream"):
        NatsSource("bus", {"subject": "a", "create_stream": True})
    with pytest.raises(ConfigError, match="'durable' may hold only"):
        NatsSource("bus", {"subject": "a", "durable": "a.b"})


def test_a_message_nested_too_deep_is_skipped_and_acked(stream: tuple[str, str]) -> None:
    name, subject = stream
    seen = Recorder()
    source = make(stream)
    with running(source, seen):
        wait_until(lambda: stream_exists(name), what="the stream")
        publish(f"{subject}.deep", b'{"a":' * 100 + b"1" + b"}" * 100, b'{"ok": true}')
        seen.wait_for(1)
    assert [(e.version, e.data) for e in seen.events] == [("2", {"ok": True})]
    assert source.skipped == 1
    again = Recorder()
    with running(make(stream), again):
        time.sleep(1.0)
    assert again.events == []
