"""RedisStreamSource against Redis on 127.0.0.1:6379 (skipped when it is not running):
entries become events XACK'ed after emit, the group is created with MKSTREAM, a restart
reads only unacknowledged entries, and a crash before the XACK has the consumer re-read
its pending entry (same idempotency key) before new ones."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.events.conftest import Recorder, free_port, reachable, running, wait_until
from twinengine.core import ConfigError
from twinengine.events.sources.redis import RedisStreamSource

redis = pytest.importorskip("redis")

pytestmark = pytest.mark.services
URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    if not reachable("127.0.0.1", 6379):
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    client = redis.Redis.from_url(URL, decode_responses=True)
    name = f"twin-test-{uuid.uuid4().hex[:10]}"
    yield client, name
    client.delete(name)
    client.close()


def make(name: str, **extra: Any) -> RedisStreamSource:
    return RedisStreamSource("queue", {"url": URL, "stream": name, "group": "g", **extra})


def test_entries_acked_and_restart(stream: tuple[Any, str]) -> None:
    client, name = stream
    first_id = client.xadd(name, {"data": '{"file": "a.nc"}'})  # before the group exists
    seen = Recorder()
    with running(make(name), seen):
        seen.wait_for(1)
        second_id = client.xadd(name, {"key": "b", "size": "3"})
        seen.wait_for(2)
    first, second = seen.events
    assert (first.key, first.kind, first.version, first.data) == (
        name,
        "message",
        first_id,
        {"file": "a.nc"},
    )
    assert (second.version, second.data) == (second_id, {"key": "b", "size": "3"})
    assert client.xpending(name, "g")["pending"] == 0

    third_id = client.xadd(name, {"data": "plain"})
    again = Recorder()
    with running(make(name), again):
        again.wait_for(1)
    assert [(e.version, e.data) for e in again.events] == [(third_id, "plain")]


def test_crash_before_xack_rereads_pending(stream: tuple[Any, str]) -> None:
    client, name = stream
    ids = [client.xadd(name, {"n": str(n)}) for n in range(3)]
    crashing = Recorder(fail_on=2)
    with running(make(name, consumer="c1"), crashing) as job:
        job.wait_error()
    wait_until(lambda: client.xpending(name, "g")["pending"] >= 1, what="a pending entry")
    again = Recorder()
    with running(make(name, consumer="c1"), again):
        again.wait_for(2)
    assert [e.version for e in crashing.events] == ids[:1]
    assert [e.version for e in again.events] == ids[1:]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()
    assert client.xpending(name, "g")["pending"] == 0


def test_unreachable_server_and_bad_config() -> None:
    source = RedisStreamSource("queue", {"url": f"redis://127.0.0.1:{free_port()}", "stream": "s"})
    with running(source, Recorder()) as job:
        assert isinstance(job.wait_error(), redis.ConnectionError)
    with pytest.raises(ConfigError, match=r"source 'queue' \(redis\): 'stream' is required"):
        RedisStreamSource("queue", {})
    with pytest.raises(ConfigError, match="'url' must be a redis:// URL"):
        RedisStreamSource("queue", {"stream": "s", "url": "http://x"})


def test_an_entry_nested_too_deep_is_skipped_and_acked(stream: tuple[str, str]) -> None:
    client, name = stream
    client.xadd(name, {"data": "[" * 5000 + "]" * 5000})  # a hostile producer
    kept = client.xadd(name, {"data": '{"file": "b.nc"}'})
    seen = Recorder()
    source = make(name)
    with running(source, seen):
        seen.wait_for(1)
    assert [(e.version, e.data) for e in seen.events] == [(kept, {"file": "b.nc"})]
    assert source.skipped == 1
    assert client.xpending(name, "g")["pending"] == 0
