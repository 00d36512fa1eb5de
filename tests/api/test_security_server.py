"""The server as a whole, probed from outside: odd file names never give a 500 or leave
half-made folders, an unexpected error leaves the connection usable, ``/metrics`` is an
admin's, ``/docs`` loads nothing from elsewhere, and an owner adding members learns no
more than whether a name can be added."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.routing import APIRoute
from sqlalchemy import update

from tests.api.conftest import ECHO, Live, start_server
from twinengine.core.models import users


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("server"))
    yield server
    server.stop()


NAMES = [
    "a" * 300 + ".txt",
    "é" * 200 + ".tar.gz",
    "../../../" + "b" * 280,
    "..\\..\\c.txt",
    "line\nbreak\x00.txt",
    "x" * 5000,
]


def test_long_and_odd_file_names_are_cut_not_a_500(live: Live) -> None:
    token = live.user_token("uploader", {"beta": "editor"})
    home = Path(live.settings.home)
    stored = 0
    with live.client(token) as client:
        for name in NAMES:
            made = client.post(
                "/api/v1/uploads", files={"file": (name, b"data")}, data={"project": "beta"}
            )
            if made.status_code == 400:  # a header too long for the multipart parser
                assert len(name) > 1000 and "multipart" in made.json()["error"]["message"]
                continue
            assert made.status_code == 201, (name[:40], made.text)
            stored += 1
            kept = made.json()["name"]
            assert len(kept.encode()) <= 128 and "/" not in kept and "\\" not in kept
        long_cwl = client.post(
            "/api/v1/workflows",
            files={"file": ("w" * 300 + ".cwl", ECHO.read_bytes())},
            data={"project": "beta"},
        )
        assert long_cwl.status_code == 201, long_cwl.text
    folders = [f for f in (home / "uploads").iterdir() if f.is_dir()]
    assert len(folders) == stored >= 5 and all(any(f.iterdir()) for f in folders)


def _raw(url: str, paths: list[str]) -> list[bytes]:
    """GET each path in turn on one keep-alive connection; the status lines."""
    where = urlsplit(url)
    statuses = []
    with socket.create_connection((where.hostname, where.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        for path in paths:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {where.netloc}\r\n\r\n".encode())
            status = reader.readline()
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            reader.read(length)
            statuses.append(status.strip())
    return statuses


def test_an_unexpected_error_is_a_500_and_the_connection_stays_usable(live: Live) -> None:
    def boom() -> None:
        raise RuntimeError("a bug with /secret/path in it")

    live.app.router.routes.insert(0, APIRoute("/boom-for-the-test", boom))  # before the UI's
    assert _raw(live.url, ["/boom-for-the-test", "/health"]) == [
        b"HTTP/1.1 500 Internal Server Error",
        b"HTTP/1.1 200 OK",
    ]
    with live.client() as client:
        answer = client.get("/boom-for-the-test")
        assert answer.json()["error"]["code"] == "internal_error"
        assert "/secret/path" not in answer.text


def test_metrics_are_an_admins_and_docs_load_nothing_from_elsewhere(live: Live) -> None:
    token = live.user_token("metric-tenant", {"beta": "owner"})
    with live.client(token) as tenant:
        assert tenant.get("/metrics").status_code == 403
    with live.client(None) as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        page = anonymous.get("/docs")
        assert page.status_code == 200 and "/swagger/swagger-ui-bundle.js" in page.text
        assert "cdn" not in page.text and "https://" not in page.text.replace(
            "https://swagger.io", ""
        )
        for asset in ("/swagger/swagger-ui-bundle.js", "/swagger/swagger-ui.css"):
            assert anonymous.get(asset).status_code == 200, asset
        spec = anonymous.get("/openapi.json")
        assert spec.status_code == 200 and spec.json()["info"]["title"] == "TwinEngine"
    with live.client() as admin:
        metrics = admin.get("/metrics")
        assert metrics.status_code == 200 and "twin_runs" in metrics.text


def test_an_owner_learns_only_whether_a_name_can_be_added(live: Live) -> None:
    owner = live.user_token("powner", {"pbeta": "owner"})
    live.user_token("sleeper", {})
    with live.app.state.twin.db.engine.begin() as conn:
        conn.execute(update(users).where(users.c.name == "sleeper").values(disabled=True))
    with live.client(owner) as client:
        disabled = client.put("/api/v1/projects/pbeta/members/sleeper", json={"role": "viewer"})
        missing = client.put("/api/v1/projects/pbeta/members/nosuchuser", json={"role": "viewer"})
        assert disabled.status_code == missing.status_code == 404
        assert disabled.text.replace("sleeper", "U") == missing.text.replace("nosuchuser", "U")
        added = client.put("/api/v1/projects/pbeta/members/uploader", json={"role": "viewer"})
        assert added.json() == {"user": "uploader", "role": "viewer"}
