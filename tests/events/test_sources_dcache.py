"""DcacheSseSource against an SSE server written here that speaks dCache's storage-events
API (channels, inotify subscriptions, ``text/event-stream`` with event ids and replay
after ``Last-Event-ID``, namespace listing): a dropped stream followed by a reconnect and
replay, a restart that resumes the channel, an expired channel, a crash before the
acknowledgement, recursive subscriptions and stopping while the stream is idle."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.events.conftest import Recorder, running, wait_until
from twinengine.core import ConfigError
from twinengine.events.base import SourceState
from twinengine.events.sources.dcache import DcacheSseSource, sse_messages

TOKEN = "secret-token"


class FakeDcache:
    """The parts of a dCache frontend that the source uses, with a per-channel event log."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.channels: dict[str, list[dict[str, Any]]] = {}  # id -> event log
        self.subscriptions: dict[str, dict[str, Any]] = {}  # url -> {channel, path, flags}
        self.directories: dict[str, list[str]] = {"/data": []}
        self.last_event_ids: list[str | None] = []  # Last-Event-ID of each stream request
        self.generation = 0  # bumped to drop every open stream
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    # what a test does ----------------------------------------------------------------
    def upload(
        self, directory: str, name: str, mask: tuple[str, ...] = ("IN_CLOSE_WRITE",)
    ) -> None:
        """Tell every subscription watching ``directory`` about a change of ``name``."""
        with self.cond:
            for url, sub in self.subscriptions.items():
                if sub["path"] == directory and sub["channel"] in self.channels:
                    log = self.channels[sub["channel"]]
                    event = {"name": name, "mask": list(mask)}
                    log.append({"id": len(log), "subscription": url, "event": event})
            self.cond.notify_all()

    def drop_streams(self, then: tuple[str, str] | None = None) -> None:
        """Close every open stream; ``then`` (directory, name) happens while disconnected."""
        with self.cond:
            self.generation += 1
            if then:
                self.upload(*then)
            self.cond.notify_all()

    def expire(self) -> None:
        with self.cond:
            self.channels.clear()
            self.generation += 1
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # the HTTP side ---------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def reply(self, status: int, body: Any = None, location: str | None = None) -> None:
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if location:
                    self.send_header("Location", location)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def authorised(self) -> bool:
                if self.headers.get("Authorization") == f"Bearer {TOKEN}":
                    return True
                self.reply(401, {"errors": [{"message": "Unauthorized", "status": "401"}]})
                return False

            def body(self) -> Any:
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_POST(self) -> None:
                if not self.authorised():
                    return
                parts = urlsplit(self.path).path.strip("/").split("/")
                if parts == ["api", "v1", "events", "channels"]:
                    self.body()
                    channel = uuid.uuid4().hex[:10]
                    with fake.cond:
                        fake.channels[channel] = []
                    self.reply(201, location=f"{fake.base}/api/v1/events/channels/{channel}")
                elif parts[:4] == ["api", "v1", "events", "channels"] and parts[5:] == [
                    "subscriptions",
                    "inotify",
                ]:
                    selector = self.body()
                    if parts[4] not in fake.channels:
                        return self.reply(404)
                    if selector["path"] not in fake.directories:
                        return self.reply(400, {"errors": [{"message": "no such directory"}]})
                    url = f"{fake.base}/{'/'.join(parts)}/{uuid.uuid4().hex[:8]}"
                    with fake.cond:
                        fake.subscriptions[url] = {"channel": parts[4], **selector}
                    self.reply(201, location=url)
                else:
                    self.reply(404)

            def do_DELETE(self) -> None:
                parts = urlsplit(self.path).path.strip("/").split("/")
                with fake.cond:
                    gone = fake.channels.pop(parts[-1], None)
                self.reply(204 if gone is not None else 404)

            def do_GET(self) -> None:
                if not self.authorised():
                    return
                split = urlsplit(self.path)
                parts = split.path.strip("/").split("/")
                if parts[:3] == ["api", "v1", "namespace"]:
                    path = unquote("/" + "/".join(parts[3:]))
                    children = [
                        {"fileName": d, "fileType": "DIR"} for d in fake.directories.get(path, [])
                    ]
                    return self.reply(200, {"fileType": "DIR", "children": children})
                if parts[:4] != ["api", "v1", "events", "channels"] or len(parts) != 5:
                    return self.reply(404)
                if parts[4] not in fake.channels:
                    return self.reply(404, {"errors": [{"message": "Not Found"}]})
                if self.headers.get("Accept") != "text/event-stream":
                    return self.reply(200, {"timeout": 300})
                self.stream(parts[4])

            def stream(self, channel: str) -> None:
                last = self.headers.get("Last-Event-ID")
                with fake.cond:
                    fake.last_event_ids.append(last)
                    generation = fake.generation
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                sent = int(last) + 1 if last is not None else 0  # replay what came after
                while True:
                    with fake.cond:
                        fake.cond.wait_for(
                            lambda sent=sent: (
                                fake.generation != generation
                                or len(fake.channels.get(channel, [])) > sent
                            ),
                            timeout=0.5,
                        )
                        if fake.generation != generation:
                            return
                        pending = fake.channels.get(channel, [])[sent:]
                    for item in pending:
                        data = json.dumps({k: item[k] for k in ("event", "subscription")})
                        chunk = f"event: inotify\nid: {item['id']}\ndata: {data}\n\n"
                        try:
                            self.wfile.write(chunk.encode())
                            self.wfile.flush()
                        except OSError:
                            return
                        sent += 1

        return Handler


@pytest.fixture
def dcache() -> Iterator[FakeDcache]:
    fake = FakeDcache()
    yield fake
    fake.close()


def make(fake: FakeDcache, state: SourceState, **extra: Any) -> DcacheSseSource:
    config = {"url": fake.base, "path": "/data", "token": TOKEN, **extra}
    return DcacheSseSource("door", config, state)


def test_drop_reconnect_replay_and_restart(dcache: FakeDcache, tmp_path: Path) -> None:
    state = SourceState(tmp_path, "door")
    seen = Recorder()
    with running(make(dcache, state, download_url="https://door:2880"), seen):
        wait_until(lambda: dcache.last_event_ids, what="the stream")
        dcache.upload("/data", "a.h5")
        dcache.upload("/data", "b.h5", ("IN_MOVED_TO",))
        dcache.upload("/data", "ignored.h5", ("IN_ATTRIB",))
        seen.wait_for(2)
        dcache.drop_streams(then=("/data", "c.h5"))  # c.h5 arrives while disconnected
        seen.wait_for(3)
    assert seen.keys == ["a.h5", "b.h5", "c.h5"]
    assert dcache.last_event_ids == [None, "2"]  # reconnected after the ignored event 2
    channel = state.load()["channel"]
    channel_id = channel.rsplit("/", 1)[-1]
    assert [e.version for e in seen.events] == [f"{channel_id}:{n}" for n in (0, 1, 3)]
    assert seen.events[0].location == "https://door:2880/data/a.h5"
    assert seen.events[1].metadata["mask"] == ["IN_MOVED_TO"]
    [subscription] = dcache.subscriptions.values()
    assert subscription["flags"] == ["IN_CLOSE_WRITE", "IN_MOVED_TO"]

    # restart: the same channel is resumed; what happened meanwhile is replayed once
    dcache.upload("/data", "d.h5")
    again = Recorder()
    with running(make(dcache, state), again):
        again.wait_for(1)
    assert again.keys == ["d.h5"] and len(dcache.channels) == 1
    assert dcache.last_event_ids[-1] == "3"
    assert state.load()["last_event_id"] == "4"


def test_crash_before_ack_redelivers(dcache: FakeDcache, tmp_path: Path) -> None:
    state = SourceState(tmp_path, "door")
    crashing = Recorder(fail_on=2)
    with running(make(dcache, state), crashing) as job:
        wait_until(lambda: dcache.last_event_ids, what="the stream")
        dcache.upload("/data", "one")
        dcache.upload("/data", "two")
        job.wait_error()
    again = Recorder()
    with running(make(dcache, state), again):
        again.wait_for(1)
    assert crashing.keys == ["one"] and again.keys == ["two"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_expired_channel_is_replaced(dcache: FakeDcache, tmp_path: Path) -> None:
    state = SourceState(tmp_path, "door")
    seen = Recorder()
    with running(make(dcache, state), seen):
        wait_until(lambda: dcache.last_event_ids, what="the stream")
        first = state.load()["channel"]
        dcache.expire()
        wait_until(lambda: state.load().get("channel") != first, what="a new channel")
        wait_until(lambda: len(dcache.last_event_ids) == 2, what="the new stream")
        dcache.upload("/data", "after.h5")
        seen.wait_for(1)
    assert seen.keys == ["after.h5"]


def test_changed_path_gets_a_new_channel(dcache: FakeDcache, tmp_path: Path) -> None:
    dcache.directories["/other"] = []
    state = SourceState(tmp_path, "door")
    with running(make(dcache, state), Recorder()):
        wait_until(lambda: dcache.last_event_ids, what="the stream")
    first = state.load()["channel"]
    seen = Recorder()
    with running(make(dcache, state, path="/other"), seen):
        wait_until(lambda: len(dcache.last_event_ids) == 2, what="the new stream")
        dcache.upload("/other", "o.h5")
        seen.wait_for(1)
    assert state.load()["channel"] != first and list(dcache.channels) == [
        state.load()["channel"].rsplit("/", 1)[-1]
    ]
    assert seen.keys == ["o.h5"]


def test_recursive_subscribes_sub_directories(dcache: FakeDcache, tmp_path: Path) -> None:
    dcache.directories.update({"/data": ["run1"], "/data/run1": [], "/data/run2": []})
    seen = Recorder()
    with running(make(dcache, SourceState(tmp_path, "door"), recursive=True), seen):
        wait_until(lambda: dcache.last_event_ids, what="the stream")
        assert sorted(s["path"] for s in dcache.subscriptions.values()) == ["/data", "/data/run1"]
        dcache.upload("/data/run1", "x.h5")
        dcache.upload("/data", "run2", ("IN_CREATE", "IN_ISDIR"))
        wait_until(lambda: len(dcache.subscriptions) == 3, what="a subscription of run2")
        dcache.upload("/data/run2", "y.h5")
        seen.wait_for(2)
    assert seen.keys == ["run1/x.h5", "run2/y.h5"]


def test_rejected_credentials_and_bad_config(dcache: FakeDcache, tmp_path: Path) -> None:
    source = DcacheSseSource("door", {"url": dcache.base, "path": "/data", "token": "wrong"})
    with running(source, Recorder()) as job:
        assert "refused the credentials" in str(job.wait_error())
    with pytest.raises(ConfigError, match=r"source 'door' \(dcache\): 'url' is required"):
        DcacheSseSource("door", {"path": "/data"})
    with pytest.raises(ConfigError, match="'path' must be absolute"):
        DcacheSseSource("door", {"url": "https://door:3880", "path": "data"})
    with pytest.raises(ConfigError, match="'password' is required with 'username'"):
        DcacheSseSource("door", {"url": "https://door:3880", "path": "/d", "username": "u"})
    with pytest.raises(ConfigError, match="'flags' has unknown inotify flags"):
        DcacheSseSource("door", {"url": "https://d", "path": "/d", "flags": ["IN_EVERYTHING"]})


def test_sse_parser() -> None:
    lines = [": keep-alive", "event: inotify", "id: 7", "data: {", "data: }", "", "", "data: x", ""]
    assert [(m.event, m.data, m.id) for m in sse_messages(lines)] == [
        ("inotify", "{\n}", "7"),
        ("message", "x", None),
    ]
