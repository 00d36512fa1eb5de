"""Tokens, the MLflow proxy and notification targets, probed from outside as tenants of
different projects: no token outlives or outranks its maker, MLflow is reachable only
through the proxy (a Unix socket, no port) with scopes, roles and CSRF checks, nothing
is reflected unescaped, and no notification goes to the server's own network."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Live, start_server
from tests.api.test_security_requests import MB, auth, stream
from tests.notify.conftest import Receiver


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(
        tmp_path_factory.mktemp("access"),
        oidc_issuer="http://127.0.0.1:9",
        max_upload_mb=2,
        mlflow_access="members",  # these tests probe members' roles and scopes there
    )
    yield server
    server.stop()


def _expiry(record: dict) -> float:
    return dt.datetime.fromisoformat(record["expires_at"].replace("Z", "+00:00")).timestamp()


def test_a_token_never_outlives_or_outranks_its_maker(live: Live) -> None:
    carol = live.user_token("carol", {"alpha": "editor"}, scopes=("read",))
    with live.client() as admin:
        short = admin.post(
            "/api/v1/tokens", json={"user": "carol", "scopes": ["read"], "expires_days": 0.00004}
        )
        assert short.status_code == 201, short.text
    with live.client(short.json()["token"]) as maker:
        minted = maker.post("/api/v1/tokens", json={"scopes": ["read"]})
        assert minted.status_code == 201, minted.text
        assert minted.json()["expires_at"] is not None
        assert _expiry(minted.json()) <= _expiry(short.json())
        longer = maker.post("/api/v1/tokens", json={"scopes": ["read"], "expires_days": 30})
        assert _expiry(longer.json()) <= _expiry(short.json())
    time.sleep(max(0.0, _expiry(short.json()) - time.time() + 0.5))
    with live.client(minted.json()["token"]) as late:
        refused = late.get("/api/v1/me")
        assert refused.status_code == 401 and "expired" in refused.json()["error"]["message"]
    with live.client(carol) as reader:
        assert reader.post("/api/v1/tokens", json={"scopes": ["read", "run"]}).status_code == 403
        assert reader.post("/api/v1/tokens", json={"user": "admin"}).status_code == 403
        assert reader.get("/api/v1/tokens", params={"user": "admin"}).status_code == 403
        assert reader.get("/api/v1/users").status_code == 403


def test_an_admin_scope_token_of_a_demoted_admin_grants_nothing(live: Live) -> None:
    accounts = live.app.state.twin.accounts
    accounts.add_user("dana", admin=True)
    _, secret = accounts.create_token("dana", "ops", ["read", "run", "admin"])
    with sqlite3.connect(live.settings.home / "twin.db") as db:
        db.execute("UPDATE users SET admin = 0 WHERE name = 'dana'")
    with live.client(secret) as dana:
        assert dana.get("/api/v1/users").status_code == 403
        assert dana.post("/api/v1/tokens", json={"user": "admin"}).status_code == 403
        assert dana.post("/api/v1/projects", json={"name": "grab"}).status_code == 403
        assert dana.get("/api/v1/projects").json()["items"] == []


def _jwt(header: dict) -> str:
    def part(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header)}.{part({'sub': 'x'})}.c2ln"


def test_the_mlflow_sign_in_page_escapes_what_it_reflects(live: Live) -> None:
    script = "<script>alert(document.cookie)</script>"
    token = _jwt({"alg": script, "typ": "JWT"})
    with httpx.Client(base_url=live.url, timeout=30) as browser:
        page = browser.get(
            "/mlflow/", headers={"Accept": "text/html", "Authorization": f"Bearer {token}"}
        )
    assert page.status_code == 401
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    assert page.headers["x-content-type-options"] == "nosniff"


@pytest.mark.slow
def test_mlflow_only_through_the_proxy_with_roles_scopes_and_no_csrf(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("mlflow")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    alice = live.user_token("ml-alice", {"alpha": "editor"})
    vera = live.user_token("ml-vera", {"alpha": "viewer"})
    nobody = live.user_token("ml-nobody", {})
    search = "/mlflow/ajax-api/2.0/mlflow/experiments/search?max_results=5"
    create = "/mlflow/ajax-api/2.0/mlflow/experiments/create"
    with live.client(nobody) as outsider:
        assert outsider.get(search).status_code == 403  # in no project: not even reading
    with live.client(vera) as viewer:
        assert viewer.get(search).status_code == 200
        denied = viewer.post(create, json={"name": "by-a-viewer"})
        assert denied.status_code == 403 and "editor" in denied.json()["error"]["message"]
    with live.client(alice) as editor:
        assert editor.post(create, json={"name": "by-alice"}).status_code == 200
        opened = editor.post("/api/v1/session")
    # the child listens on a Unix socket in a private folder, on no TCP port at all
    ui = live.app.state.twin.extras["mlflow_ui"]
    assert ui.socket is not None and (ui.socket.parent.stat().st_mode & 0o777) == 0o700
    tree = [psutil.Process(ui.child.pid), *psutil.Process(ui.child.pid).children(recursive=True)]
    listening = [c for p in tree for c in p.net_connections(kind="inet") if c.status == "LISTEN"]
    assert listening == []
    # with the cookie, a change must come from this server's pages
    host = live.url.removeprefix("http://")
    with httpx.Client(base_url=live.url, timeout=60, cookies=opened.cookies) as browser:
        assert browser.get(search).status_code == 200
        for headers in ({}, {"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            forged = browser.post(create, json={"name": "csrf"}, headers=headers)
            assert forged.status_code == 403, headers
        same = browser.post(create, json={"name": "from-the-ui"}, headers={"Origin": live.url})
        assert same.status_code == 200, same.text
        via_referer = {"Referer": f"http://{host}/mlflow/#/experiments"}
        assert browser.post(create, json={"name": "ref"}, headers=via_referer).status_code == 200
    # a body past the upload limit is refused as it streams, here too
    status, sent, _ = stream(
        live, "POST", "/mlflow/ajax-api/2.0/mlflow/runs/log-batch", auth(alice), 300 * MB
    )
    assert status == 413 and sent < 20 * MB


def test_no_notification_goes_to_loopback_or_private_addresses(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TWIN_NOTIFY_PRIVATE_TARGETS", raising=False)
    receiver = Receiver().start()
    token = live.user_token("hooky", {"alpha": "editor"})
    targets = [
        ("webhook", f"{receiver.url}/hook"),
        ("webhook", f"http://localhost:{receiver.port}/hook"),
        ("webhook", f"http://[::ffff:127.0.0.1]:{receiver.port}/hook"),
        ("webhook", "http://169.254.169.254/latest/meta-data/"),
        ("webhook", "http://10.1.2.3/hook"),
        ("apprise", f"json://127.0.0.1:{receiver.port}/apprise"),
    ]
    try:
        with live.client(token) as client:
            for channel, target in targets:
                made = client.post(  # refused when subscribing (and again when delivering)
                    "/api/v1/subscriptions",
                    json={"channel": channel, "target": target, "project": "alpha"},
                )
                assert made.status_code == 400, (target, made.text)
                error = made.json()["error"]
                assert "refused" in error["message"], error
                assert "TWIN_NOTIFY_PRIVATE_TARGETS" in error["hint"]
            note = {"kind": "info", "title": "to everyone", "project": "alpha"}
            assert client.post("/api/v1/notifications", json=note).status_code == 201
        live.app.state.twin.extras["notify"].flush()
        assert receiver.attempts == {}  # not one request reached the loopback peer
    finally:
        receiver.stop()


def test_listings_show_only_what_the_caller_may_see(live: Live) -> None:
    token = live.user_token("lister", {"alpha": "viewer"}, scopes=("read",))
    with live.client(token) as client:
        names = {p["name"] for p in client.get("/api/v1/projects").json()["items"]}
        assert names == {"alpha"}
        assert client.get("/api/v1/users").status_code == 403
        mine = client.get("/api/v1/tokens").json()["items"]
        assert {t["user"] for t in mine} == {"lister"}
        assert client.get("/api/v1/projects/default").status_code == 404


def test_health_and_errors_name_no_server_path(live: Live) -> None:
    home = str(live.settings.home)
    with live.client() as admin:
        assert home not in admin.get("/health").text
        gone = admin.get("/api/v1/runs/nope/files/x")
        assert gone.status_code == 404 and home not in gone.text
    assert Path(home).is_dir() and os.sep in home
