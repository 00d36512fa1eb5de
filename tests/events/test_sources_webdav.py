"""WebdavSource against wsgidav serving a temporary folder on loopback (cheroot), with
basic authentication: new, changed and deleted files, sub-folders, a restart with the
same state, a crash before the acknowledgement and rejected credentials."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.events.conftest import Recorder, running
from twinengine.core import ConfigError
from twinengine.events.base import SourceState
from twinengine.events.sources.webdav import WebdavSource, parse_multistatus

wsgidav_app = pytest.importorskip("wsgidav.wsgidav_app")
cheroot_wsgi = pytest.importorskip("cheroot.wsgi")

USER = {"username": "twin", "password": "pw"}


@pytest.fixture
def dav(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    root = tmp_path / "dav"
    (root / "share").mkdir(parents=True)
    app = wsgidav_app.WsgiDAVApp(
        {
            "provider_mapping": {"/": str(root)},
            "simple_dc": {"user_mapping": {"*": {"twin": {"password": "pw"}}}},
            "http_authenticator": {"accept_basic": True, "accept_digest": False},
            "logging": {"enable": False, "enable_loggers": []},
            "verbose": 0,
        }
    )
    server = cheroot_wsgi.Server(("127.0.0.1", 0), app)
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.bind_addr[1]}", root / "share"
    server.stop()
    thread.join(5)


def make(url: str, state: SourceState, **extra: Any) -> WebdavSource:
    config = {"url": url, "path": "/share", "interval": 0.05, **USER, **extra}
    return WebdavSource("dav", config, state)


def test_files_changes_and_restart(dav: tuple[str, Path], tmp_path: Path) -> None:
    url, share = dav
    (share / "sub").mkdir()
    (share / "a.txt").write_text("alpha")
    (share / "sub" / "b c.json").write_text("{}")
    state = SourceState(tmp_path / "state", "dav")

    seen = Recorder()
    with running(make(url, state), seen):
        seen.wait_for(2)
        (share / "new.csv").write_text("1,2\n")
        seen.wait_for(3)
    a, b, new = seen.events
    assert (a.key, a.kind, a.size) == ("a.txt", "created", 5)
    assert (a.content_type or "").startswith("text/plain")
    assert a.version and a.version == state.load()["files"]["a.txt"]
    assert (b.key, b.location) == ("sub/b c.json", f"{url}/share/sub/b%20c.json")
    assert new.key == "new.csv"

    # restart: nothing twice; a change and a deletion while down are announced
    (share / "a.txt").write_text("alpha, longer")
    (share / "new.csv").unlink()
    again = Recorder()
    with running(make(url, state, deletes=True), again):
        again.wait_for(2)
    assert [(e.key, e.kind) for e in again.events] == [
        ("a.txt", "modified"),
        ("new.csv", "deleted"),
    ]
    assert sorted(state.load()["files"]) == ["a.txt", "sub/b c.json"]


def test_not_recursive_and_crash_before_ack(dav: tuple[str, Path], tmp_path: Path) -> None:
    url, share = dav
    (share / "sub").mkdir()
    (share / "sub" / "deep.txt").write_text("x")
    for name in ("1.txt", "2.txt", "3.txt"):
        (share / name).write_text(name)
    state = SourceState(tmp_path / "state", "dav")
    crashing = Recorder(fail_on=2)
    with running(make(url, state, recursive=False), crashing) as job:
        job.wait_error()
    again = Recorder()
    with running(make(url, state, recursive=False), again):
        again.wait_for(2)
    assert crashing.keys == ["1.txt"] and again.keys == ["2.txt", "3.txt"]
    assert crashing.failed is not None
    assert again.events[0].idempotency_key() == crashing.failed.idempotency_key()


def test_rejected_credentials_missing_path_and_bad_config(
    dav: tuple[str, Path], tmp_path: Path
) -> None:
    url, _ = dav
    state = SourceState(tmp_path, "dav")
    with running(make(url, state, password="wrong"), Recorder()) as job:
        assert "refused the credentials" in str(job.wait_error())
    with running(make(url, state, path="/nope"), Recorder()) as job:
        assert "not found" in str(job.wait_error())
    with pytest.raises(ConfigError, match=r"source 'dav' \(webdav\): 'url' is required"):
        WebdavSource("dav", {})
    with pytest.raises(ConfigError, match="'url' must be an http"):
        WebdavSource("dav", {"url": "ftp://x"})
    with pytest.raises(ConfigError, match="'token' and 'username' exclude each other"):
        WebdavSource("dav", {"url": "http://x", "token": "t", **USER})


def test_parse_multistatus_without_etag() -> None:
    body = b"""<?xml version="1.0"?><d:multistatus xmlns:d="DAV:"><d:response>
      <d:href>/dav/x%20y.nc</d:href>
      <d:propstat><d:prop><d:resourcetype/><d:getcontentlength>12</d:getcontentlength>
        <d:getlastmodified>Wed, 01 May 2024 10:00:00 GMT</d:getlastmodified></d:prop>
        <d:status>HTTP/1.1 200 OK</d:status></d:propstat>
      <d:propstat><d:prop><d:getetag/></d:prop><d:status>HTTP/1.1 404 Not Found</d:status>
      </d:propstat></d:response></d:multistatus>"""
    [entry] = parse_multistatus(body)
    assert (entry.path, entry.is_dir, entry.size) == ("/dav/x y.nc", False, 12)
    assert entry.version == "Wed, 01 May 2024 10:00:00 GMT|12"
