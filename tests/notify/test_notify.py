"""Notifications against real peers on loopback: SMTP (aiosmtpd), webhooks and Apprise's
json:// plugin (a ThreadingHTTPServer), retries, failures, subscription rules."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

from tests.notify.conftest import Mailbox, Receiver, free_port
from twinengine.core import NotFoundError, StateError, TwinError
from twinengine.notify import (
    DeliveryError,
    Note,
    NotificationCenter,
    available_notifiers,
    verify_signature,
)

FAST = (0.05, 0.1)  # retry delays for tests that do not measure the back-off


def failed_run(**extra: object) -> Note:
    fields = {
        "kind": "run_failed",
        "title": "Run flood-forecast failed",
        "body": "step lstm exited with code 1",
        "project": "flood",
        "trigger": "nightly",
        "data": {"run": "01abc", "exit_code": 1},
        "link": "/#/runs/01abc",
    }
    return Note(**{**fields, **extra})  # type: ignore[arg-type]


def test_email_is_sent_over_smtp(
    smtp: Mailbox, people: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_PUBLIC_URL", "https://twin.example.org/")
    center = NotificationCenter(retry_delays=FAST)
    center.subscribe("alice", "email", "alice@lab.example.org", project="flood")
    note_id = center.publish(failed_run())
    assert center.flush(10)
    assert len(smtp.messages) == 1
    rcpt, message = smtp.messages[0]
    assert rcpt == ["alice@lab.example.org"]
    assert message["To"] == "alice@lab.example.org"
    assert message["From"] == "twin@lab.example.org"
    assert message["Subject"] == "[TwinEngine/flood] Run flood-forecast failed"
    assert message["X-Twin-Delivery"] == note_id
    text = message.get_content()
    assert "step lstm exited with code 1" in text
    assert "Open: https://twin.example.org/#/runs/01abc" in text
    assert "exit_code: 1" in text and "trigger: nightly" in text
    assert not center.pool.failures


def test_webhook_posts_json_signed_with_the_fragment_secret(
    receiver: Receiver, people: dict
) -> None:
    center = NotificationCenter(retry_delays=FAST)
    signed = center.subscribe("alice", "webhook", f"{receiver.url}/signed#secret=s3cr3t")
    center.subscribe("alice", "webhook", f"{receiver.url}/plain", kinds=["run_failed"])
    assert signed["target"] == f"{receiver.url}/signed#secret=***"  # never shown back
    note_id = center.publish(failed_run())
    assert center.flush(10)
    hits = {h.path: h for h in receiver.hits}
    assert sorted(hits) == ["/plain", "/signed"]  # the fragment is not sent
    body = hits["/signed"].json
    assert body["id"] == note_id and body["kind"] == "run_failed"
    assert body["title"] == "Run flood-forecast failed" and body["project"] == "flood"
    assert body["data"] == {"run": "01abc", "exit_code": 1}
    assert body["link"] == "/#/runs/01abc" and body["created_at"].endswith("Z")
    header = hits["/signed"].headers["X-Twin-Signature"]
    assert header.startswith("sha256=")
    assert verify_signature("s3cr3t", hits["/signed"].raw, header)
    assert not verify_signature("wrong", hits["/signed"].raw, header)
    assert hits["/signed"].headers["X-Twin-Event"] == "run_failed"
    assert "X-Twin-Signature" not in hits["/plain"].headers


def test_apprise_json_url_reaches_a_local_server(receiver: Receiver, people: dict) -> None:
    center = NotificationCenter(retry_delays=FAST)
    sub = center.subscribe("alice", "apprise", f"json://127.0.0.1:{receiver.port}/chat")
    assert sub["target"].startswith("json://127.0.0.1")
    center.publish(failed_run())
    assert center.flush(15)
    (hit,) = receiver.hits
    assert hit.path == "/chat"
    assert hit.json["title"] == "[flood] Run flood-forecast failed"
    assert "step lstm exited with code 1" in hit.json["message"]
    assert hit.json["type"] == "failure"


def test_a_webhook_failing_twice_is_delivered_once_after_backoff(
    receiver: Receiver, people: dict
) -> None:
    center = NotificationCenter()  # the real back-off: 0.5 s, then 2 s
    center.subscribe("alice", "webhook", f"{receiver.url}/flaky")
    receiver.fail["/flaky"] = 2
    start = time.monotonic()
    center.publish(failed_run())
    assert time.monotonic() - start < 1  # publishing does not wait for deliveries
    assert center.flush(15)
    assert time.monotonic() - start >= 2.4
    assert receiver.attempts["/flaky"] == 3
    assert len(receiver.hits) == 1
    assert not center.pool.failures


def test_dead_targets_never_raise_into_publish(
    people: dict, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    dead = free_port()
    monkeypatch.setenv("TWIN_SMTP_PORT", str(dead))
    center = NotificationCenter(retry_delays=FAST)
    center.subscribe("alice", "webhook", f"http://127.0.0.1:{dead}/hook")
    center.subscribe("alice", "email", "alice@lab.example.org")
    center.subscribe("alice", "apprise", f"json://127.0.0.1:{dead}/chat")
    with caplog.at_level(logging.WARNING, logger="twinengine.notify"):
        note_id = center.publish(failed_run())
        assert center.flush(30)
    failures = {f.channel: f for f in center.pool.failures}
    assert sorted(failures) == ["apprise", "email", "webhook"]
    assert all(f.attempts == 3 and f.note_id == note_id for f in failures.values())
    assert "could not be reached" in failures["webhook"].error
    assert f"127.0.0.1:{dead}" in failures["email"].error
    assert "Apprise could not notify" in failures["apprise"].error
    assert sum("failed after 3 attempt(s)" in r.message for r in caplog.records) == 3
    assert center.inbox("alice")[0]["id"] == note_id  # the note is stored all the same


def test_subscriptions_match_project_trigger_kinds_and_membership(
    receiver: Receiver, people: dict
) -> None:
    center = NotificationCenter(retry_delays=FAST)
    url = receiver.url
    center.subscribe("alice", "webhook", f"{url}/alice-any")
    center.subscribe("alice", "webhook", f"{url}/alice-flood-nightly", "flood", "nightly")
    center.subscribe("alice", "webhook", f"{url}/alice-flood-hourly", "flood", "hourly")
    center.subscribe("alice", "webhook", f"{url}/alice-drift", "flood", kinds=["drift"])
    center.subscribe("alice", "webhook", f"{url}/alice-rfi", "rfi")
    center.subscribe("bob", "webhook", f"{url}/bob-any")  # bob is not in flood
    center.subscribe("bob", "webhook", f"{url}/bob-flood", "flood")
    center.subscribe("root", "webhook", f"{url}/root-any")  # an admin: every project
    center.subscribe("alice", "ui")  # the inbox only: nothing is sent

    center.publish(failed_run())
    assert center.flush(10)
    assert receiver.paths() == ["/alice-any", "/alice-flood-nightly", "/root-any"]

    receiver.hits.clear()
    center.publish(failed_run(kind="drift", trigger=None))
    assert center.flush(10)
    assert receiver.paths() == ["/alice-any", "/alice-drift", "/root-any"]

    receiver.hits.clear()
    center.publish(failed_run(project=None, trigger=None), user="bob")  # to bob alone
    assert center.flush(10)
    assert receiver.paths() == ["/bob-any"]


def test_bad_subscriptions_are_refused_with_the_reason(people: dict) -> None:
    center = NotificationCenter()
    cases = {
        ("sms", "+41"): "unknown notification channel 'sms'",
        ("email", "not-an-address"): "is not an e-mail address",
        ("email", None): "the email channel needs a target",
        ("webhook", "ftp://example.org/x"): "must be an http(s) URL",
        ("webhook", "https://example.org/x#token=1"): "only a #secret=… fragment",
        ("apprise", " "): "the apprise channel needs a target",
        ("apprise", "nonsense://x"): "Apprise does not understand the URL nonsense://",
        ("ui", "https://example.org"): "the ui channel takes no target",
    }
    for (channel, target), message in cases.items():
        with pytest.raises(TwinError) as caught:
            center.subscribe("alice", channel, target)
        assert message in str(caught.value), (channel, target, str(caught.value))
    with pytest.raises(TwinError) as caught:
        center.subscribe("alice", "sms", "+41")
    assert "known channels: apprise, email, ui, webhook" in str(caught.value)
    with pytest.raises(TwinError, match="invalid notification kind"):
        center.subscribe("alice", "ui", kinds=["Run Failed"])
    with pytest.raises(TwinError, match="invalid trigger name"):
        center.subscribe("alice", "ui", trigger="no spaces please")
    with pytest.raises(NotFoundError, match="no project 'nope'"):
        center.subscribe("alice", "ui", project="nope")
    center.subscribe("alice", "email", "alice@lab.example.org", kinds=["drift", "guard"])
    with pytest.raises(StateError, match="already have this subscription"):
        center.subscribe("alice", "email", "alice@lab.example.org", kinds=["guard", "drift"])
    assert center.subscriptions("bob") == []
    (mine,) = center.subscriptions("alice")
    with pytest.raises(NotFoundError):
        center.unsubscribe(mine["id"], "bob")  # not bob's
    center.unsubscribe(mine["id"], "alice")
    assert center.subscriptions("alice") == []


def test_inbox_visibility_read_marks_and_cursor(people: dict) -> None:
    center = NotificationCenter()
    first = center.publish(failed_run(title="one"))
    second = center.publish(failed_run(title="two", project="rfi"))
    third = center.publish(failed_run(title="three", project=None), user="alice")
    assert [n["title"] for n in center.inbox("alice")] == ["three", "one"]
    assert [n["title"] for n in center.inbox("bob")] == ["two"]
    assert {n["id"] for n in center.inbox("root")} == {first, second, third}  # admin
    assert [n["id"] for n in center.inbox("alice", ["flood"], after=first)] == [third]
    assert center.unread_count("alice") == 2
    assert center.mark_read([first, second], "alice") == 1  # rfi's note is not hers
    assert [n["id"] for n in center.inbox("alice", unread_only=True)] == [third]
    assert center.inbox("alice")[1]["read"] is True
    assert center.mark_read(None, "alice") == 1
    assert center.unread_count("alice") == 0 and center.unread_count("bob") == 1
    with pytest.raises(TwinError, match="invalid notification link"):
        center.publish(failed_run(link="https://evil.example.org"))
    with pytest.raises(TwinError, match="invalid notification kind"):
        center.publish(failed_run(kind="Bad Kind"))


def test_test_sends_one_note_now_and_says_why_it_failed(receiver: Receiver, people: dict) -> None:
    center = NotificationCenter()
    good = center.subscribe("alice", "webhook", f"{receiver.url}/ok", kinds=["drift"])
    result = center.test(good["id"], "alice")
    assert result["ok"] and receiver.hits[0].json["kind"] == "test"
    dead = center.subscribe("alice", "webhook", f"http://127.0.0.1:{free_port()}/gone")
    start = time.monotonic()
    with pytest.raises(DeliveryError, match="could not be reached"):
        center.test(dead["id"], "alice")
    assert time.monotonic() - start < 5  # one attempt, no back-off
    ui = center.subscribe("alice", "ui")
    assert center.test(ui["id"], "alice")["note"] == center.inbox("alice")[0]["id"]
    with pytest.raises(NotFoundError):
        center.test(good["id"], "bob")
    assert len(receiver.hits) == 1  # the ui test did not fan out


def test_channels_registry_and_lazy_package() -> None:
    assert {"ui", "webhook", "email", "apprise"} <= set(available_notifiers())
    code = (
        "import sys, twinengine.notify as n; n.Note; "
        "print('sqlalchemy' in sys.modules, 'httpx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
