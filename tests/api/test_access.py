"""Access control through the real API: tokens, scopes, projects, OIDC, and the CLI."""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from typer.testing import CliRunner

from tests.api.conftest import ECHO, Live, start_server, wait_run
from twinengine.api import AccountStore


def test_health_needs_no_token_everything_else_does(api: Live) -> None:
    with api.client(token=None) as anon:
        assert anon.get("/health").json()["status"] == "ok"
        for path in (
            "/api/v1/me",
            "/api/v1/workflows",
            "/api/v1/runs",
            "/metrics",
            "/api/v1/prov/documents",
            "/api/v1/palette",
        ):
            answer = anon.get(path)
            assert answer.status_code == 401, path
            assert answer.headers["www-authenticate"] == "Bearer"
            assert answer.json()["error"]["code"] == "unauthorized"
    with api.client(token="twin_not-a-real-token") as wrong:
        assert wrong.get("/api/v1/me").json()["error"]["message"] == "unknown token"
    with api.client(token="garbage") as wrong:
        assert wrong.get("/api/v1/me").status_code == 401


def test_first_start_admin_token_works_once_created(api: Live) -> None:
    with api.client() as admin:
        me = admin.get("/api/v1/me").json()
    assert me["user"] == {**me["user"], "name": "admin", "admin": True}
    assert me["projects"] == [{"name": "default", "role": "owner"}]
    assert AccountStore(api.app.state.twin.db).bootstrap() is None  # never a second one


def test_tokens_are_stored_hashed_and_revocable(api: Live) -> None:
    with api.client() as admin:
        made = admin.post("/api/v1/tokens", json={"name": "ci", "scopes": ["read"]})
        assert made.status_code == 201
        secret = made.json()["token"]
        assert secret.startswith("twin_") and len(secret) > 40
        listed = admin.get("/api/v1/tokens").json()["items"]
        assert all("token" not in t for t in listed)
    db = sqlite3.connect(api.settings.home / "twin.db")
    stored = [row[0] for row in db.execute("SELECT hash FROM tokens")]
    db.close()
    assert secret not in stored and len(stored[0]) == 64
    with api.client(token=secret) as reader:
        assert reader.get("/api/v1/me").status_code == 200
        assert reader.delete(f"/api/v1/tokens/{made.json()['id']}").status_code == 204
        answer = reader.get("/api/v1/me")
    assert answer.status_code == 401
    assert answer.json()["error"]["message"] == "this token was revoked"


def test_expired_token_is_refused(api: Live) -> None:
    with api.client() as admin:
        secret = admin.post("/api/v1/tokens", json={"expires_days": 0.00002}).json()["token"]
    time.sleep(2)
    with api.client(token=secret) as late:
        assert late.get("/api/v1/me").json()["error"]["message"] == "this token has expired"


def test_scopes_limit_what_a_token_may_do(api: Live) -> None:
    reader = api.user_token("reader", {"default": "editor"}, scopes=["read"])
    with api.client(token=reader) as client:
        assert client.get("/api/v1/workflows").status_code == 200
        answer = client.post("/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        assert answer.status_code == 403
        assert "'run' scope" in answer.json()["error"]["message"]
        assert client.get("/api/v1/users").status_code == 403  # admin only
        made = client.post("/api/v1/tokens", json={"scopes": ["read", "run"]})
        assert made.status_code == 403  # a token cannot grant more than its creator's
        assert client.post("/api/v1/tokens", json={"scopes": ["admin"]}).status_code == 403


def test_projects_isolate_workflows_runs_and_provenance(api: Live) -> None:
    with api.client() as admin:
        workflow = admin.post(
            "/api/v1/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())}
        ).json()
        run = admin.post(
            "/api/v1/runs", json={"workflow": workflow["id"], "inputs": {"message": "secret"}}
        ).json()
        assert wait_run(admin, run["id"])["state"] == "succeeded"
    outsider = api.user_token("outsider", {"elsewhere": "owner"})
    viewer = api.user_token("viewer", {"default": "viewer"})
    with api.client(token=outsider) as client:
        assert client.get("/api/v1/workflows").json()["total"] == 0
        assert client.get("/api/v1/runs").json()["total"] == 0
        for path in (
            f"/api/v1/workflows/{workflow['id']}",
            f"/api/v1/runs/{run['id']}",
            f"/api/v1/runs/{run['id']}/outputs",
            f"/api/v1/runs/{run['id']}/prov",
            "/api/v1/projects/default",
        ):
            assert client.get(path).status_code == 404, path
        launch = client.post("/api/v1/runs", json={"workflow": workflow["id"], "inputs": {}})
        assert launch.status_code == 404
        assert client.post(f"/api/v1/runs/{run['id']}/cancel").status_code == 404
        upload = client.post(
            "/api/v1/workflows",
            data={"project": "default"},
            files={"file": ("echo.cwl", ECHO.read_bytes())},
        )
        assert upload.status_code == 404
        assert client.get("/api/v1/prov/documents").json()["items"] == []
    with api.client(token=viewer) as client:
        assert client.get(f"/api/v1/runs/{run['id']}").json()["state"] == "succeeded"
        launch = client.post("/api/v1/runs", json={"workflow": workflow["id"], "inputs": {}})
        assert launch.status_code == 403
        assert "role" in launch.json()["error"]["message"]


def test_owner_manages_members(api: Live) -> None:
    owner = api.user_token("lead", {"team": "owner"})
    api.app.state.twin.accounts.add_user("newcomer")
    with api.client(token=owner) as client:
        added = client.put("/api/v1/projects/team/members/newcomer", json={"role": "viewer"})
        assert added.json() == {"user": "newcomer", "role": "viewer"}
        bad = client.put("/api/v1/projects/team/members/newcomer", json={"role": "king"})
        assert bad.status_code == 422
        members = client.get("/api/v1/projects/team").json()["members"]
        assert {"user": "newcomer", "role": "viewer"} in members
        assert client.delete("/api/v1/projects/team/members/newcomer").status_code == 204
        assert client.post("/api/v1/projects", json={"name": "mine"}).status_code == 403


def test_cli_creates_users_and_tokens_the_server_accepts(api: Live, monkeypatch) -> None:
    from twinengine.cli.main import app

    monkeypatch.setenv("TWIN_HOME", str(api.settings.home))
    import twinengine.core

    twinengine.core.reset()
    runner = CliRunner()
    added = runner.invoke(app, ["users", "add", "carol", "--project", "default"])
    assert added.exit_code == 0, added.output
    made = runner.invoke(app, ["tokens", "create", "--user", "carol", "--scope", "read"])
    assert made.exit_code == 0, made.output
    secret = made.output.strip().splitlines()[-1]
    with api.client(token=secret) as client:
        me = client.get("/api/v1/me").json()
    assert me["user"]["name"] == "carol"
    assert me["projects"] == [{"name": "default", "role": "editor"}]
    listed = runner.invoke(app, ["tokens", "list", "--user", "carol"])
    token_id = listed.output.split()[0]
    assert runner.invoke(app, ["tokens", "revoke", token_id]).exit_code == 0
    with api.client(token=secret) as client:
        assert client.get("/api/v1/me").status_code == 401
    again = runner.invoke(app, ["users", "add", "carol"])
    assert again.exit_code == 1 and "already exists" in again.output


# -- OIDC ------------------------------------------------------------------------------
def _b64(number: int) -> str:
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.fixture()
def issuer():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    jwks = {
        "keys": [
            {
                "kty": "RSA",
                "kid": "k1",
                "alg": "RS256",
                "use": "sig",
                "n": _b64(numbers.n),
                "e": _b64(numbers.e),
            }
        ]
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            base = f"http://127.0.0.1:{self.server.server_port}"
            body = {
                "/.well-known/openid-configuration": {"issuer": base, "jwks_uri": base + "/jwks"},
                "/jwks": jwks,
            }.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body or {}).encode())

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", key
    httpd.shutdown()


def test_oidc_bearer_tokens_from_a_configured_issuer(issuer, tmp_path: Path) -> None:
    url, key = issuer
    live = start_server(tmp_path / "home", oidc_issuer=url, oidc_audience="twinengine")
    try:
        now = int(time.time())
        claims = {
            "iss": url,
            "aud": "twinengine",
            "sub": "egi-123",
            "iat": now,
            "exp": now + 300,
            "preferred_username": "dana",
        }
        good = jwt.encode(claims, key, algorithm="RS256", headers={"kid": "k1"})
        with live.client(token=good) as client:
            me = client.get("/api/v1/me").json()
            assert me["user"]["name"] == "dana" and me["user"]["oidc"] is True
            assert me["token"]["kind"] == "oidc" and me["token"]["scopes"] == ["read", "run"]
            assert me["projects"] == []  # seen nothing until added to a project
        wrong_aud = jwt.encode({**claims, "aud": "other"}, key, "RS256", headers={"kid": "k1"})
        expired = jwt.encode({**claims, "exp": now - 600}, key, "RS256", headers={"kid": "k1"})
        other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        forged = jwt.encode(claims, other_key, "RS256", headers={"kid": "k1"})
        for token in (wrong_aud, expired, forged):
            with live.client(token=token) as client:
                answer = client.get("/api/v1/me")
                assert answer.status_code == 401, answer.text
                assert "OIDC" in answer.json()["error"]["message"] or "token" in answer.text
    finally:
        live.stop()
