"""dCache storage events as an event source: a Server-Sent-Events client for the
frontend's ``/api/v1/events`` API.

The source creates a channel (``POST /api/v1/events/channels``, the ``Location`` header
names it), subscribes it to inotify events of ``path`` (``POST
{channel}/subscriptions/inotify`` with ``{"path", "flags"}``; with ``recursive`` every
sub-directory, found through the namespace API and as it appears, gets its own
subscription) and reads the channel as ``text/event-stream``. The channel, its
subscriptions and the id of the last event emitted are kept in the source's state, so a
dropped connection or a restart resumes the same channel with ``Last-Event-ID`` and
dCache replays what was missed. A channel that dCache removed (it expires after being
disconnected longer than its timeout; ``404``) is replaced by a new one: events in the
gap are lost, as dCache offers no way to list them.
"""

from __future__ import annotations

import logging
import posixpath
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urljoin

import httpx

from twinengine.core import ConfigError
from twinengine.events.base import Emit, EventSource, SourceState
from twinengine.events.payloads import PayloadError, PayloadTooDeep, load_json
from twinengine.events.sources.options import (
    http_credentials,
    integer,
    number,
    text,
    without_user,
)

log = logging.getLogger(__name__)

DEFAULT_FLAGS = ["IN_CLOSE_WRITE", "IN_MOVED_TO"]
_FILE_FLAGS = {
    "IN_ACCESS", "IN_ATTRIB", "IN_CLOSE_WRITE", "IN_CLOSE_NOWRITE", "IN_CREATE", "IN_DELETE",
    "IN_MODIFY", "IN_MOVED_FROM", "IN_MOVED_TO", "IN_OPEN",
}  # fmt: skip
_KINDS = {"IN_DELETE": "deleted", "IN_MOVED_FROM": "deleted", "IN_ATTRIB": "modified"}
_EMPTY_STREAMS = 3  # streams closed in a row without any event before run() gives up


@dataclass
class SseMessage:
    event: str
    data: str
    id: str | None


def sse_messages(lines: Iterable[str]) -> Iterator[SseMessage]:
    """Messages from the lines of a ``text/event-stream`` (the WHATWG SSE format)."""
    event, data, last_id = "message", [], None
    for line in lines:
        if not line:
            if data:
                yield SseMessage(event, "\n".join(data), last_id)
            event, data, last_id = "message", [], None
            continue
        if line.startswith(":"):
            continue  # a comment (keep-alive)
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            last_id = value


class DcacheSseSource(EventSource):
    """Files written into (or moved into) a dCache directory, from dCache's SSE events."""

    kind = "dcache"
    secret_fields = frozenset({"password", "token"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        given: str = text(self, "url").rstrip("/")
        self.url = without_user(given)  # a user part becomes credentials, not a location
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"source {name!r} (dcache): 'url' must be an http(s) URL",
                hint="the frontend's URL, e.g. https://dcache.example.org:3880",
            )
        path = text(self, "path")
        if not path.startswith("/"):
            raise ConfigError(f"source {name!r} (dcache): 'path' must be absolute (start with /)")
        self.path: str = path.rstrip("/") or "/"
        self.headers, self.auth = http_credentials(self, given)
        self.recursive: bool = self.option("recursive", False, bool)
        flags = self.option("flags", DEFAULT_FLAGS, list)
        wrong = [f for f in flags if f not in _FILE_FLAGS]
        if wrong or not flags:
            raise ConfigError(
                f"source {name!r} (dcache): 'flags' has unknown inotify flags {wrong}",
                hint="use some of " + ", ".join(sorted(_FILE_FLAGS)),
            )
        self.flags: list[str] = list(flags)
        self.download_url: str | None = text(self, "download_url", None)
        self.verify: bool | str = self.option("verify", True, (bool, str))
        self.client_id: str = text(self, "client_id", f"twin-{name}")
        self.channel_timeout: int | None = (
            integer(self, "channel_timeout", 0, minimum=1) if "channel_timeout" in config else None
        )
        self.idle_reconnect = number(self, "idle_reconnect", 300.0, minimum=0.1)
        self._client: httpx.Client | None = None
        self._response: httpx.Response | None = None

    # HTTP ---------------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                headers=self.headers,
                auth=self.auth,
                verify=self.verify,
                timeout=httpx.Timeout(10.0, read=self.idle_reconnect),
                follow_redirects=True,
            )
        return self._client

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            raise ConfigError(
                f"source {self.name!r} (dcache): dCache refused the credentials for {what} "
                f"(HTTP {response.status_code})",
                hint="check 'token' or 'username'/'password'",
            )
        if 400 <= response.status_code < 500:
            body = response.read().decode("utf-8", "replace")[:200]  # also when streamed
            raise ConfigError(
                f"source {self.name!r} (dcache): {what} failed with HTTP "
                f"{response.status_code}: {body}"
            )
        response.raise_for_status()

    def _new_channel(self, state: dict[str, Any]) -> dict[str, Any]:
        if state.get("channel"):
            log.warning(
                "source %r: dCache channel %s is gone; events since it expired are lost "
                "(dCache cannot replay them); subscribing a new channel",
                self.name,
                state["channel"],
            )
        client = self._http()
        response = client.post(
            f"{self.url}/api/v1/events/channels", json={"client-id": self.client_id}
        )
        self._check(response, "creating a channel")
        channel = urljoin(str(response.url), response.headers["Location"])
        if self.channel_timeout is not None:
            patched = client.patch(channel, json={"timeout": self.channel_timeout})
            self._check(patched, "setting the channel timeout")
        state = {
            "channel": channel,
            "last_event_id": None,
            "subscriptions": {},
            "selector": self._selector(),
        }
        self._subscribe_tree(state, self.path)
        self.state.save(state)
        return state

    def _selector(self) -> dict[str, Any]:
        """What the channel's subscriptions were made for (a change needs a new channel)."""
        return {"path": self.path, "flags": sorted(self.flags), "recursive": self.recursive}

    def _subscribe_tree(self, state: dict[str, Any], path: str) -> None:
        self._subscribe(state, path)
        if self.recursive:
            for child in self._directories(path):
                self._subscribe_tree(state, posixpath.join(path, child))

    def _subscribe(self, state: dict[str, Any], path: str) -> None:
        flags = self.flags + (["IN_CREATE", "IN_MOVED_TO"] if self.recursive else [])
        response = self._http().post(
            f"{state['channel']}/subscriptions/inotify",
            json={"path": path, "flags": sorted(set(flags))},
        )
        self._check(response, f"subscribing to {path}")
        location = urljoin(str(response.url), response.headers["Location"])
        state["subscriptions"][location] = path

    def _directories(self, path: str) -> list[str]:
        response = self._http().get(
            f"{self.url}/api/v1/namespace{quote(path)}",
            params={"children": "true"},
            headers={"Accept": "application/json"},
        )
        self._check(response, f"listing {path}")
        children = response.json().get("children", [])
        return [c["fileName"] for c in children if c.get("fileType") == "DIR"]

    # events -------------------------------------------------------------------------
    def run(self, emit: Emit, stop: threading.Event) -> None:
        state = self.state.load()
        if state.get("channel") and state.get("selector") != self._selector():
            log.info("source %r: path or flags changed; subscribing a new channel", self.name)
            try:
                self._http().delete(state["channel"])
            except httpx.HTTPError:
                pass  # dCache expires it anyway
            state = {}
        done = threading.Event()
        threading.Thread(target=self._interrupt_on_stop, args=(stop, done), daemon=True).start()
        empty = 0
        try:
            while not stop.is_set():
                if not state.get("channel"):
                    state = self._new_channel(state)
                received = self._stream(emit, stop, state)
                if stop.is_set():
                    return
                if received is None:  # the channel is gone
                    state = self._new_channel(state)
                    continue
                empty = 0 if received else empty + 1
                if empty >= _EMPTY_STREAMS:
                    raise ConnectionError(
                        f"source {self.name!r}: dCache closed the event stream "
                        f"{empty} times in a row without sending events"
                    )
                stop.wait(0.2 * empty)  # reconnect at once after a drop, then back off
        finally:
            done.set()

    def _stream(self, emit: Emit, stop: threading.Event, state: dict[str, Any]) -> int | None:
        """Read the channel until the stream ends; messages read, or None on 404."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if state.get("last_event_id") is not None:
            headers["Last-Event-ID"] = str(state["last_event_id"])
        received = 0
        try:
            with self._http().stream("GET", state["channel"], headers=headers) as response:
                if response.status_code == 404:
                    return None
                self._check(response, "reading the channel")
                self._response = response
                for message in sse_messages(response.iter_lines()):
                    received += 1
                    self._handle(emit, state, message)
                    if stop.is_set():
                        break
        except httpx.ReadTimeout:
            received += 1  # idle for idle_reconnect seconds: reconnect, not a failure
        except (httpx.ReadError, httpx.RemoteProtocolError):
            if stop.is_set():
                return received
            log.info("source %r: event stream dropped; reconnecting", self.name)
        finally:
            self._response = None
        return received

    def _handle(self, emit: Emit, state: dict[str, Any], message: SseMessage) -> None:
        """Emit a file event, then record its id as acknowledged."""
        try:
            payload = load_json(message.data, "the dCache event")
        except PayloadError as exc:
            if isinstance(exc, PayloadTooDeep):
                self.skip(f"event {message.id}", exc)
            payload = None
        if not isinstance(payload, dict):
            payload = {}
        subscription = payload.get("subscription")
        if not isinstance(subscription, str):
            subscription = None
        if message.event == "SYSTEM":
            if payload.get("type") == "SUBSCRIPTION_CLOSED":
                state["subscriptions"].pop(subscription, None)
                self.state.save(state)
            return
        change = payload.get("event") if message.event == "inotify" else None
        raw_mask = change.get("mask") if isinstance(change, dict) else None
        if isinstance(change, dict) and isinstance(raw_mask, list | type(None)):
            mask = {m for m in raw_mask or [] if isinstance(m, str)}
            name = change.get("name") if isinstance(change.get("name"), str) else None
            directory = state["subscriptions"].get(subscription, self.path)
            if "IN_Q_OVERFLOW" in mask:
                log.warning("source %r: dCache dropped events (IN_Q_OVERFLOW)", self.name)
            if name and "IN_ISDIR" in mask:
                if self.recursive and mask & {"IN_CREATE", "IN_MOVED_TO"}:
                    self._subscribe_tree(state, posixpath.join(directory, name))
            elif name and mask & set(self.flags):
                emit(self._event(state, directory, name, mask, change, message.id))
        if message.id is not None:
            state["last_event_id"] = message.id
        self.state.save(state)

    def _event(
        self,
        state: dict[str, Any],
        directory: str,
        name: str,
        mask: set[str],
        change: dict[str, Any],
        event_id: str | None,
    ) -> Any:
        full = posixpath.join(directory, name)
        kind = next((_KINDS[f] for f in sorted(mask) if f in _KINDS), "created")
        channel_id = state["channel"].rstrip("/").rsplit("/", 1)[-1]
        if self.download_url:
            location = self.download_url.rstrip("/") + quote(full)
        else:
            location = f"{self.url}/api/v1/namespace{quote(full)}"
        metadata = {"path": full, "mask": sorted(mask), "channel": state["channel"]}
        if change.get("cookie"):
            metadata["cookie"] = change["cookie"]
        return self.event(
            posixpath.relpath(full, self.path),
            kind=kind,
            version=f"{channel_id}:{event_id}",
            metadata=metadata,
            location=location,
        )

    # stopping -----------------------------------------------------------------------
    def _interrupt_on_stop(self, stop: threading.Event, done: threading.Event) -> None:
        """Unblock a read waiting for the next event once ``stop`` is set."""
        while not done.is_set():
            if stop.wait(0.1):
                while not done.wait(0.05):
                    self._shutdown_stream()
                return

    def _shutdown_stream(self) -> None:
        response = self._response
        stream = response.extensions.get("network_stream") if response is not None else None
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
