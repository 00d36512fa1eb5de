"""Notifications probed from outside by tenants: no subscription reaches the server's own
network whatever the spelling of its host (bracketed IPv6 of every form, IPv4-mapped,
-compatible and NAT64 addresses, ``[::]``, zone ids, decimal/octal/hex IPv4, names),
refused when subscribing and again when delivering; a failed delivery tells nothing
about the peer; subscribing and testing need the editor role in the subscription's
project; and a note's link is a path of this site only."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.api.conftest import Live, start_server
from tests.notify.conftest import Receiver

SUBSCRIPTIONS = "/api/v1/subscriptions"


class _Server6(ThreadingHTTPServer):
    address_family = socket.AF_INET6


class Listener:
    """An HTTP peer on 127.0.0.1 and [::1] at one port, counting every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                owner.requests.append(self.path)
                self.send_response(200)
                self.end_headers()

            do_GET = do_PUT = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        for _ in range(20):
            first = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            self.port = first.server_address[1]
            try:
                second = _Server6(("::1", self.port), Handler)
            except OSError:
                first.server_close()
                continue
            break
        self.servers = [first, second]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("notify-security"))
    yield server
    server.stop()


@pytest.fixture
def listener() -> Iterator[Listener]:
    peer = Listener()
    yield peer
    peer.stop()


@pytest.fixture(autouse=True)
def public_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_NOTIFY_PRIVATE_TARGETS", raising=False)


@pytest.fixture(scope="module")
def tenants(live: Live) -> dict[str, str]:
    return {
        "editor": live.user_token("bedit", {"beta": "editor"}),
        "viewer": live.user_token("bview", {"beta": "viewer"}),
        "mixed": live.user_token("bmixed", {"beta": "editor", "gamma": "viewer"}),
    }


def _targets(port: int) -> list[tuple[str, str]]:
    apprise = [
        f"json://[::ffff:7f00:1]:{port}/ssrf-v4",
        f"json://[::1]:{port}/a",
        f"json://[0:0:0:0:0:0:0:1]:{port}/b",
        f"form://[::1]:{port}/c",
        f"xml://[::1]:{port}/d",
        f"ntfy://[::1]:{port}/topic",
        f"json://[fe80::1]:{port}/e",
        f"json://[::]:{port}/f",
        f"json://[::7f00:1]:{port}/g",
        f"json://[64:ff9b::7f00:1]:{port}/h",
        f"json://[::ffff:0:7f00:1]:{port}/i",
        f"json://[2002:7f00:1::]:{port}/j",
        f"json://2130706433:{port}/k",
        f"json://017700000001:{port}/l",
        f"json://127.1:{port}/m",
        f"json://localhost:{port}/n",
        f"json://localhost.:{port}/o",
        f"jsons://10.0.0.1:{port}/p",
        f"mailto://u:p@example.com?smtp=127.0.0.1&port={port}",
    ]
    webhooks = [
        f"http://[::1]:{port}/a",
        f"http://[::ffff:7f00:1]:{port}/b",
        f"http://[::ffff:127.0.0.1]:{port}/c",
        f"http://[fe80::1%25lo]:{port}/d",
        f"http://2130706433:{port}/e",
        f"http://0x7f.0.0.1:{port}/f",
        f"http://[::]:{port}/g",
        f"http://100.64.0.1:{port}/h",
    ]
    return [("apprise", t) for t in apprise] + [("webhook", t) for t in webhooks]


def test_no_spelling_of_the_servers_own_network_is_subscribed(
    live: Live, tenants: dict, listener: Listener
) -> None:
    with live.client(tenants["editor"]) as client:
        for channel, target in _targets(listener.port):
            made = client.post(
                SUBSCRIPTIONS, json={"channel": channel, "target": target, "project": "beta"}
            )
            assert made.status_code == 400, (target, made.text)
            error = made.json()["error"]
            assert "refused" in error["message"] or "does not understand" in error["message"]
    assert listener.requests == []


def test_a_target_that_became_private_is_refused_when_delivered(
    live: Live, tenants: dict, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Subscribed while the operator allowed private targets (as a name that resolved to a
    public address then would be): each delivery checks again, and Apprise's own
    connections are checked as they are made."""
    monkeypatch.setenv("TWIN_NOTIFY_PRIVATE_TARGETS", "1")
    made = []
    with live.client(tenants["editor"]) as client:
        for channel, target in _targets(listener.port)[:6] + _targets(listener.port)[-8:-6]:
            answer = client.post(
                SUBSCRIPTIONS, json={"channel": channel, "target": target, "project": "beta"}
            )
            assert answer.status_code == 201, answer.text
            made.append(answer.json()["id"])
        monkeypatch.delenv("TWIN_NOTIFY_PRIVATE_TARGETS")
        for subscription in made:
            tried = client.post(f"{SUBSCRIPTIONS}/{subscription}/test")
            assert tried.status_code == 400, tried.text
            assert "refused" in tried.json()["error"]["message"]
        published = client.post(
            "/api/v1/notifications", json={"kind": "info", "title": "hi", "project": "beta"}
        )
        assert published.status_code == 201
        live.app.state.twin.extras["notify"].flush(30)
        for subscription in made:
            client.delete(f"{SUBSCRIPTIONS}/{subscription}")
    assert listener.requests == []


def test_a_failed_delivery_says_nothing_about_the_peer(
    live: Live, tenants: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A closed port, a peer answering 500 and one answering 404 fail with one message."""
    monkeypatch.setenv("TWIN_NOTIFY_PRIVATE_TARGETS", "1")
    peer = Receiver().start()
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]
    peer.fail["/broken"] = 100
    try:
        with live.client(tenants["editor"]) as client:
            for scheme, channel in (("json", "apprise"), ("http", "webhook")):
                messages = set()
                for where in (f"127.0.0.1:{dead}/x", f"127.0.0.1:{peer.port}/broken"):
                    target = f"{scheme}://{where}"
                    made = client.post(
                        SUBSCRIPTIONS,
                        json={"channel": channel, "target": target, "project": "beta"},
                    ).json()
                    tried = client.post(f"{SUBSCRIPTIONS}/{made['id']}/test")
                    assert tried.status_code == 400, tried.text
                    error = tried.json()["error"]
                    text = error["message"] + (error["hint"] or "")
                    for leak in ("500", "refused", "Errno", "Internal", "onnection"):
                        assert leak not in text, (target, text)
                    messages.add(error["message"].replace(where, "PEER"))
                    client.delete(f"{SUBSCRIPTIONS}/{made['id']}")
                assert len(messages) == 1, messages
    finally:
        peer.stop()


def test_subscribing_and_testing_need_the_editor_role(live: Live, tenants: dict) -> None:
    accounts = live.app.state.twin.accounts
    with live.client(tenants["viewer"]) as viewer:
        for project in ("beta", None):
            answer = viewer.post(SUBSCRIPTIONS, json={"channel": "ui", "project": project})
            assert answer.status_code == 403, answer.text
        foreign = viewer.post(SUBSCRIPTIONS, json={"channel": "ui", "project": "alpha"})
        nobody = viewer.post(SUBSCRIPTIONS, json={"channel": "ui", "project": "nosuch"})
        assert foreign.status_code == nobody.status_code == 404
        assert foreign.text.replace("alpha", "P") == nobody.text.replace("nosuch", "P")
    with live.client(tenants["mixed"]) as mixed:
        everywhere = mixed.post(SUBSCRIPTIONS, json={"channel": "ui"})
        assert everywhere.status_code == 403 and "gamma" in everywhere.text
        viewer_there = mixed.post(SUBSCRIPTIONS, json={"channel": "ui", "project": "gamma"})
        assert viewer_there.status_code == 403
        mine = mixed.post(SUBSCRIPTIONS, json={"channel": "ui", "project": "beta"})
        assert mine.status_code == 201, mine.text
        accounts.set_member("beta", "bmixed", "viewer")  # demoted: no more test notes
        try:
            tried = mixed.post(f"{SUBSCRIPTIONS}/{mine.json()['id']}/test")
            assert tried.status_code == 403, tried.text
        finally:
            accounts.set_member("beta", "bmixed", "editor")
        assert mixed.post(f"{SUBSCRIPTIONS}/{mine.json()['id']}/test").status_code == 200
    with live.client(tenants["editor"]) as editor:
        assert editor.post(SUBSCRIPTIONS, json={"channel": "ui"}).status_code == 201
    with live.client() as admin:
        assert admin.post(SUBSCRIPTIONS, json={"channel": "ui"}).status_code == 201


BAD_LINKS = [
    "/\\evil.example/approve",
    "/\\/evil.example",
    "/\t/evil.example",
    "//evil.example",
    "/\n/evil.example",
    "/ /evil.example",
    "/#/runs/x\\..\\y",
    "/#/runs/\x00",
    "/\u2028/evil.example",
    "https://evil.example",
    "javascript:alert(1)",
    "evil.example",
    " /#/runs/x",
]


def test_a_notes_link_is_a_path_of_this_site(live: Live, tenants: dict) -> None:
    with live.client(tenants["editor"]) as client:
        for link in BAD_LINKS:
            note = {"kind": "approval_needed", "title": "t", "project": "beta", "link": link}
            answer = client.post("/api/v1/notifications", json=note)
            assert answer.status_code == 400, (link, answer.text)
            assert "link" in answer.json()["error"]["message"]
        for link in ("/", "/#/runs/abc", "/#/approvals?x=1", "/mlflow/#/experiments/1"):
            note = {"kind": "approval_needed", "title": "t", "project": "beta", "link": link}
            answer = client.post("/api/v1/notifications", json=note)
            assert answer.status_code == 201, (link, answer.text)
            assert answer.json()["link"] == link
