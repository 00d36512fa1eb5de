"""WebhookSource: JSON objects and lists, text bodies, S3/MinIO notifications, HMAC
signatures, bad bodies and bad config, and a run() that only waits for stop."""

from __future__ import annotations

import json

import pytest

from tests.events.conftest import Recorder, running
from tests.events.samples import MINIO_NOTIFICATION
from twinengine.core import ConfigError
from twinengine.core.errors import AuthError, InvalidInputError
from twinengine.events.sources.webhook import WebhookSource, sign


def test_json_object_and_list() -> None:
    hook = WebhookSource("hook", {"version_field": "rev"})
    body = json.dumps({"key": "runs/42", "rev": 3, "x": 1}).encode()
    [event] = hook.parse(body, "application/json", {})
    assert (event.source, event.key, event.kind, event.version) == (
        "hook",
        "runs/42",
        "webhook",
        "3",
    )
    assert event.data == {"key": "runs/42", "rev": 3, "x": 1} and event.size == len(body)

    items = [{"key": "a"}, {"key": "b", "v": 1}, {"other": True}]
    events = hook.parse(json.dumps(items).encode(), "application/json; charset=utf-8", {})
    assert [e.key for e in events] == ["a", "b", "hook"]  # no key: the source's name
    assert [e.metadata["index"] for e in events] == [0, 1, 2]
    # a re-sent request is the same events, whitespace or key order notwithstanding
    resent = hook.parse(json.dumps(items[::-1], indent=2).encode(), "application/json", {})
    assert {e.idempotency_key() for e in resent} == {e.idempotency_key() for e in events}


def test_custom_key_field_text_and_s3_format() -> None:
    hook = WebhookSource("hook", {"key_field": "path"})
    [event] = hook.parse(b'{"path": "/data/x.nc"}', "application/json", {})
    assert event.key == "/data/x.nc" and len(event.version or "") == 64
    [text] = hook.parse(b"hello", "text/plain", {})
    assert (text.key, text.data, text.content_type) == ("hook", "hello", "text/plain")

    s3 = WebhookSource("minio", {"format": "s3"})
    events = s3.parse(json.dumps(MINIO_NOTIFICATION).encode(), "application/json", {})
    assert [(e.key, e.kind) for e in events] == [
        ("run 1/out file.nc", "created"),
        ("old.nc", "deleted"),
    ]
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        s3.parse(b"<xml/>", "application/xml", {})
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        hook.parse(b"{oops", "application/json", {})


def test_signature() -> None:
    hook = WebhookSource("hook", {"secret": "s3cret"})
    body = b'{"key": "k"}'
    good = {"x-twin-signature": sign(body, "s3cret")}
    assert hook.parse(body, "application/json", good)[0].key == "k"
    with pytest.raises(AuthError, match="needs a X-Twin-Signature header"):
        hook.parse(body, "application/json", {})
    with pytest.raises(AuthError, match="does not match"):
        hook.parse(body, "application/json", {"X-Twin-Signature": sign(body, "other")})
    with pytest.raises(AuthError, match="does not match"):
        hook.parse(body + b" ", "application/json", good)


def test_run_waits_for_stop_and_bad_config() -> None:
    with running(WebhookSource("hook", {}), Recorder()) as job:
        assert job.thread.is_alive()
    with pytest.raises(ConfigError, match=r"source 'hook' \(webhook\): 'format' must be one of"):
        WebhookSource("hook", {"format": "xml"})
    with pytest.raises(ConfigError, match="'secret' must not be empty"):
        WebhookSource("hook", {"secret": " "})
