"""Secrets in a source's settings are found by name however they are spelled (issue 12's
outside probe, finding 17): ``apiKey``, ``credentials``, ``auth``, ``pw`` were shown to
viewers and stored in plain text while ``my_api_key`` and ``passwd`` were sealed. Names
are normalised (camelCase, ``-``, case) and matched against a broader list, at any depth,
with everything under a secret-named setting sealed too."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import Live, start_server
from twinengine.events.sourcesecrets import redact, secret_name

SECRET_NAMES = [
    "password", "passwd", "pwd", "pw", "pass", "passphrase", "secret", "client_secret",
    "clientSecret", "token", "access_token", "refreshToken", "session_token", "api_key",
    "apiKey", "APIKey", "X-Api-Key", "apikey", "my_api_key", "credential", "credentials",
    "creds", "auth", "Authorization", "private_key", "privateKey", "private-key", "sas",
    "sasToken", "signature", "cookie", "Cookie", "aws_secret_access_key", "secret_key",
    "account_key", "db.password", "SMTP_PASSWORD", "bearer",
]  # fmt: skip
PLAIN_NAMES = [
    "access_key", "key_field", "version_field", "username", "user", "url", "path", "bucket",
    "auth_mode", "token_url", "passive", "bypass", "keys", "region", "secret_name_field",
    "client_id", "key",
]  # fmt: skip


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_names_of_secrets(name: str) -> None:
    assert secret_name(name)
    assert redact({name: "s3cr3t-value"}) == {name: "***"}


@pytest.mark.parametrize("name", PLAIN_NAMES)
def test_names_of_plain_settings(name: str) -> None:
    assert not secret_name(name)
    assert redact({name: "shown"}) == {name: "shown"}


def test_everything_under_a_secret_name_is_secret_at_any_depth() -> None:
    config = {
        "outer": [{"headers": {"X-Api-Key": "k1", "Accept": "text/plain"}}],
        "credentials": {"user": "u1", "password": "p1", "extra": ["e1"]},
        "url": "https://bob:pw1@dav.example.org/x",
    }
    assert redact(config) == {
        "outer": [{"headers": {"X-Api-Key": "***", "Accept": "text/plain"}}],
        "credentials": {"user": "***", "password": "***", "extra": ["***"]},
        "url": "https://bob:***@dav.example.org/x",
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("names"))
    yield server
    server.stop()


def test_viewers_see_no_secret_and_none_is_stored_in_plain_text(live: Live) -> None:
    editor = live.user_token("ed", {"beta": "editor"})
    viewer = live.user_token("vi", {"beta": "viewer"}, scopes=("read",))
    secrets = {name: f"value-of-{i}-{name.lower()}" for i, name in enumerate(SECRET_NAMES)}
    nested = {
        "headers": {"X-Api-Key": "nested-header-key"},
        "login": {"credentials": {"user": "nested-user"}},
    }
    definition = {"name": "hooked", "kind": "webhook", **secrets, **nested, "key_field": "id"}
    with live.client(editor) as ed:
        made = ed.post("/api/v1/sources?project=beta", json=definition)
        assert made.status_code == 201, made.text
    with live.client(viewer) as vi:
        shown = vi.get("/api/v1/sources/hooked?project=beta")
        listed = vi.get("/api/v1/sources?project=beta")
    assert shown.status_code == 200 and listed.status_code == 200
    config = shown.json()["config"]
    assert {n: config[n] for n in secrets if config[n] != "***"} == {}
    assert config["headers"] == {"X-Api-Key": "***"}
    assert config["login"] == {"credentials": {"user": "***"}}
    assert config["key_field"] == "id"
    stored = b"".join(p.read_bytes() for p in live.settings.home.glob("twin.db*"))
    for value in [*secrets.values(), "nested-header-key", "nested-user"]:
        assert value not in shown.text and value not in listed.text
        assert value.encode() not in stored, value
