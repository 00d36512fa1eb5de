"""Real peers on loopback for the notification tests: an HTTP receiver (webhooks and
Apprise's json:// plugin post to it), an SMTP server (aiosmtpd), and accounts."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def private_targets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The peers of these tests listen on loopback, which deliveries refuse by default."""
    monkeypatch.setenv("TWIN_NOTIFY_PRIVATE_TARGETS", "1")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """A ThreadingHTTPServer on 127.0.0.1 recording each POST; ``fail[path] = n`` makes
    the next n requests to ``path`` answer 500."""

    hits: list[Hit] = field(default_factory=list)
    fail: dict[str, int] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    server: Any = None

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.attempts[self.path] = owner.attempts.get(self.path, 0) + 1
                if owner.fail.get(self.path, 0) > 0:
                    owner.fail[self.path] -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                owner.hits.append(Hit(self.path, dict(self.headers.items()), raw))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def paths(self) -> list[str]:
        return sorted(h.path for h in self.hits)

    def wait(self, count: int, timeout: float = 10) -> list[Hit]:
        deadline = time.monotonic() + timeout
        while len(self.hits) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.hits

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    """aiosmtpd handler keeping every message it receives."""

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver().start()
    yield peer
    peer.stop()


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Mailbox]:
    """An SMTP server on 127.0.0.1 and TWIN_SMTP_* pointing at it."""
    from aiosmtpd.controller import Controller

    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("TWIN_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TWIN_SMTP_PORT", str(port))
    monkeypatch.setenv("TWIN_SMTP_FROM", "twin@lab.example.org")
    yield mailbox
    controller.stop()


@pytest.fixture
def people() -> dict[str, str]:
    """alice: editor in flood; bob: viewer in rfi; root: an admin in no project."""
    from twinengine.api import AccountStore

    accounts = AccountStore()
    for name, admin in (("alice", False), ("bob", False), ("root", True)):
        accounts.add_user(name, admin=admin)
    accounts.create_project("flood", None)
    accounts.create_project("rfi", None)
    accounts.set_member("flood", "alice", "editor")
    accounts.set_member("rfi", "bob", "viewer")
    return {"alice": "flood", "bob": "rfi"}
