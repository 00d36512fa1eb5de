"""Notifications through a live server: subscribe, publish, inbox, read marks, the live
event stream, isolation between projects, and testing a subscription."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.api.conftest import Live, free_port, start_server
from tests.notify.conftest import Receiver, private_targets  # noqa: F401 - autouse fixture

NOTIFICATIONS = "/api/v1/notifications"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("notify"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def tokens(live: Live) -> dict[str, str]:
    """alice: editor in flood; bob: editor in rfi; vera: viewer in flood, read-only."""
    return {
        "alice": live.user_token("alice", {"flood": "editor"}),
        "bob": live.user_token("bob", {"rfi": "editor"}),
        "vera": live.user_token("vera", {"flood": "viewer"}, scopes=["read"]),
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    peer = Receiver().start()
    yield peer
    peer.stop()


def flush(live: Live) -> None:
    assert live.app.state.twin.extras["notify"].flush(15)


def note(title: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "run_failed", "title": title, "project": "flood", **extra}


def test_subscribe_publish_inbox_and_mark_read(
    live: Live, tokens: dict, receiver: Receiver
) -> None:
    with live.client(tokens["alice"]) as alice, live.client(tokens["vera"]) as vera:
        made = alice.post(
            "/api/v1/subscriptions",
            json={"channel": "webhook", "target": f"{receiver.url}/a#secret=k", "project": "flood"},
        )
        assert made.status_code == 201, made.text
        sub = made.json()
        assert sub["target"].endswith("#secret=***") and sub["user"] == "alice"
        assert alice.get("/api/v1/subscriptions").json()["items"] == [sub]

        sent = alice.post(NOTIFICATIONS, json=note("flood run failed", link="/#/runs/r1"))
        assert sent.status_code == 201, sent.text
        posted = sent.json()
        assert posted["project"] == "flood" and posted["read"] is False
        flush(live)
        assert [h.json["id"] for h in receiver.hits] == [posted["id"]]

        inbox = vera.get(NOTIFICATIONS).json()  # everyone in flood sees it
        assert inbox["unread"] >= 1
        assert posted["id"] in [n["id"] for n in inbox["items"]]
        marked = vera.post(f"{NOTIFICATIONS}/read", json={"ids": [posted["id"]]})
        assert marked.json() == {"marked": 1}
        unread = alice.get(NOTIFICATIONS, params={"unread": True}).json()["items"]
        assert posted["id"] not in [n["id"] for n in unread]  # read marks are per note
        assert alice.post(f"{NOTIFICATIONS}/read", json={"all": True}).status_code == 200
        assert alice.get(NOTIFICATIONS).json()["unread"] == 0
        bad = alice.post(f"{NOTIFICATIONS}/read", json={"ids": ["x"], "all": True})
        assert bad.status_code == 422
        assert alice.delete(f"/api/v1/subscriptions/{sub['id']}").status_code == 204
        assert alice.get("/api/v1/subscriptions").json()["items"] == []


def read_note(stream: Any) -> dict[str, Any]:
    """The next ``note`` event of an SSE stream (the stream is closed after 15 s)."""
    guard = threading.Timer(15, stream.close)  # a stream that stays silent fails the test
    guard.start()
    try:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "note":
                return json.loads(line[6:])
    finally:
        guard.cancel()
    raise AssertionError("the stream ended without a note")


def test_event_stream_delivers_a_note_published_after_it_opened(live: Live, tokens: dict) -> None:
    def publish_soon() -> None:
        time.sleep(0.3)
        with live.client(tokens["alice"]) as alice:
            alice.post(NOTIFICATIONS, json=note("live one", kind="drift"))

    with live.client(tokens["alice"]) as alice:
        before = alice.post(NOTIFICATIONS, json=note("before")).json()
    with live.client(tokens["vera"]) as vera:
        with vera.stream("GET", f"{NOTIFICATIONS}/stream") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            threading.Thread(target=publish_soon, daemon=True).start()
            got = read_note(stream)
        assert got["title"] == "live one" and got["kind"] == "drift"  # not "before"
        resumed = {"Last-Event-ID": before["id"]}  # a reconnecting EventSource sends it
        with vera.stream("GET", f"{NOTIFICATIONS}/stream", headers=resumed) as stream:
            assert read_note(stream)["id"] == got["id"]


def test_projects_are_isolated(live: Live, tokens: dict) -> None:
    with live.client(tokens["alice"]) as alice, live.client(tokens["bob"]) as bob:
        secret = alice.post(NOTIFICATIONS, json=note("flood only")).json()
        mine = alice.post(
            "/api/v1/subscriptions", json={"channel": "ui", "kinds": ["guard"]}
        ).json()
        titles = [n["title"] for n in bob.get(NOTIFICATIONS).json()["items"]]
        assert "flood only" not in titles
        assert bob.post(f"{NOTIFICATIONS}/read", json={"ids": [secret["id"]]}).json() == {
            "marked": 0
        }
        assert bob.post(NOTIFICATIONS, json=note("intrude")).status_code == 404
        to_alice = bob.post(NOTIFICATIONS, json=note("psst", project="rfi", user="alice"))
        assert to_alice.status_code == 404  # alice is not in rfi
        taken = bob.post("/api/v1/subscriptions", json={"channel": "ui", "project": "flood"})
        assert taken.status_code == 404
        assert bob.delete(f"/api/v1/subscriptions/{mine['id']}").status_code == 404
        assert bob.post(f"/api/v1/subscriptions/{mine['id']}/test").status_code == 404
        after = bob.get(NOTIFICATIONS, params={"after": secret["id"]})
        assert after.status_code == 404
        alice.delete(f"/api/v1/subscriptions/{mine['id']}")


def test_roles_scopes_and_bad_subscriptions(live: Live, tokens: dict) -> None:
    with live.client(tokens["vera"]) as vera, live.client(tokens["alice"]) as alice:
        assert vera.post(NOTIFICATIONS, json=note("x")).status_code == 403  # read scope
        assert vera.post("/api/v1/subscriptions", json={"channel": "ui"}).status_code == 403
        answer = alice.post("/api/v1/subscriptions", json={"channel": "sms", "target": "+41"})
        assert answer.status_code == 400
        assert "unknown notification channel 'sms'" in answer.json()["error"]["message"]
        assert "webhook" in answer.json()["error"]["hint"]
        answer = alice.post("/api/v1/subscriptions", json={"channel": "email", "target": "bob"})
        assert answer.status_code == 400 and "e-mail address" in answer.json()["error"]["message"]
        answer = alice.post(NOTIFICATIONS, json=note("x", link="https://elsewhere.example"))
        assert answer.status_code == 400


def test_subscription_test_reports_a_dead_webhook(
    live: Live, tokens: dict, receiver: Receiver
) -> None:
    with live.client(tokens["alice"]) as alice:
        dead = alice.post(
            "/api/v1/subscriptions",
            json={"channel": "webhook", "target": f"http://127.0.0.1:{free_port()}/gone"},
        ).json()
        answer = alice.post(f"/api/v1/subscriptions/{dead['id']}/test")
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "bad_request" and "could not be reached" in error["message"]
        good = alice.post(
            "/api/v1/subscriptions", json={"channel": "webhook", "target": f"{receiver.url}/t"}
        ).json()
        answer = alice.post(f"/api/v1/subscriptions/{good['id']}/test")
        assert answer.status_code == 200 and answer.json()["ok"] is True
        assert receiver.hits[0].json["kind"] == "test"
        for sub in (dead, good):
            alice.delete(f"/api/v1/subscriptions/{sub['id']}")
