"""Another project's run, workflow, PROV document or project, probed by a tenant of
``beta``: every route answers byte for byte as it does for an id nobody has, so a tenant
never learns that the resource (or its project) exists."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import ECHO, Live, start_server, wait_run

NOBODY = "0123456789abcdef0123456789abcdef"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = start_server(tmp_path_factory.mktemp("foreign"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def alpha(live: Live) -> dict[str, Any]:
    """A workflow, a finished run and a PROV document of project alpha."""
    token = live.user_token("aowner", {"alpha": "owner"})
    with live.client(token) as client:
        workflow = client.post(
            "/api/v1/workflows",
            files={"file": ("echo.cwl", ECHO.read_bytes())},
            data={"project": "alpha"},
        )
        assert workflow.status_code == 201, workflow.text
        made = client.post(
            "/api/v1/runs",
            json={"workflow": workflow.json()["id"], "inputs": {"message": "hi"}},
        )
        assert made.status_code == 201, made.text
        run = wait_run(client, made.json()["id"])
        doc = client.put(
            "/api/v1/prov/documents/adoc-1",
            params={"project": "alpha"},
            json={"prefix": {"ex": "http://example.org/"}, "entity": {"ex:a": {}}},
        )
        assert doc.status_code == 201, doc.text
    return {"workflow": workflow.json()["id"], "run": run["id"], "doc": "adoc-1"}


@pytest.fixture(scope="module")
def beta(live: Live) -> str:
    return live.user_token("beditor", {"beta": "editor"})


def _same(client: httpx.Client, method: str, path: str, theirs: str, **kwargs: Any) -> None:
    """``theirs`` in ``path`` answers exactly as an id nobody has."""
    found = client.request(method, path.format(theirs), **kwargs)
    missing = client.request(method, path.format(NOBODY), **kwargs)
    assert found.status_code == missing.status_code == 404, (path, found.text, missing.text)
    assert found.headers.get("content-type") == missing.headers.get("content-type")
    assert found.content.replace(theirs.encode(), b"ID") == missing.content.replace(
        NOBODY.encode(), b"ID"
    ), path
    assert b"alpha" not in found.content


RUN_ROUTES = [
    ("GET", "/api/v1/runs/{}"),
    ("GET", "/api/v1/runs/{}/outputs"),
    ("GET", "/api/v1/runs/{}/files/output.txt"),
    ("GET", "/api/v1/runs/{}/logs"),
    ("GET", "/api/v1/runs/{}/prov"),
    ("GET", "/api/v1/runs/{}/events"),
    ("POST", "/api/v1/runs/{}/cancel"),
    ("POST", "/api/v1/runs/{}/resume"),
    ("DELETE", "/api/v1/runs/{}"),
]


@pytest.mark.parametrize(("method", "path"), RUN_ROUTES)
def test_another_projects_run_answers_like_a_missing_one(
    live: Live, alpha: dict, beta: str, method: str, path: str
) -> None:
    with live.client(beta) as client:
        _same(client, method, path, alpha["run"])
        _same(client, method, path, alpha["run"][:12])  # a prefix of their id too
    with live.client() as admin:
        assert admin.get(f"/api/v1/runs/{alpha['run']}").status_code == 200  # still there


def test_another_projects_workflow_answers_like_a_missing_one(
    live: Live, alpha: dict, beta: str
) -> None:
    with live.client(beta) as client:
        for method, path in (
            ("GET", "/api/v1/workflows/{}"),
            ("GET", "/api/v1/workflows/{}/content"),
            ("DELETE", "/api/v1/workflows/{}"),
        ):
            _same(client, method, path, alpha["workflow"])
        theirs = client.post("/api/v1/runs", json={"workflow": alpha["workflow"], "inputs": {}})
        missing = client.post("/api/v1/runs", json={"workflow": NOBODY, "inputs": {}})
        assert theirs.status_code == missing.status_code == 404
        assert theirs.text.replace(alpha["workflow"], "ID") == missing.text.replace(NOBODY, "ID")


def test_another_projects_prov_document_answers_like_a_missing_one(
    live: Live, alpha: dict, beta: str
) -> None:
    with live.client(beta) as client:
        for method, path in (
            ("GET", "/api/v1/prov/documents/{}"),
            ("GET", "/api/v1/prov/documents/{}/elements"),
            ("GET", "/api/v1/prov/documents/{}/relations"),
            ("DELETE", "/api/v1/prov/documents/{}"),
            ("DELETE", "/api/v1/prov/documents?ids={}"),
        ):
            _same(client, method, path, alpha["doc"])
    with live.client() as admin:
        assert admin.get("/api/v1/prov/documents/adoc-1").status_code == 200


def test_a_project_the_caller_is_not_in_answers_like_none(live: Live, beta: str) -> None:
    with live.client(beta) as client:
        calls = [
            ("GET", "/api/v1/runs?project={}", {}),
            ("GET", "/api/v1/workflows?project={}", {}),
            ("GET", "/api/v1/prov/documents?project={}", {}),
            ("GET", "/api/v1/projects/{}", {}),
            ("PUT", "/api/v1/prov/documents/beta-x?project={}", {"json": {}}),
            ("POST", "/api/v1/uploads", {"files": {"file": ("a.txt", b"a")}}),
            ("POST", "/api/v1/workflows", {"files": {"file": ("e.cwl", ECHO.read_bytes())}}),
        ]
        for method, path, kwargs in calls:
            data = {"project": "{}"} if method == "POST" else None
            answers = []
            for name in ("alpha", "nosuchproject"):
                form = {k: v.format(name) for k, v in data.items()} if data else None
                answers.append(client.request(method, path.format(name), data=form, **kwargs))
            theirs, nobody = answers
            assert theirs.status_code == nobody.status_code == 404, (path, theirs.text)
            assert theirs.text.replace("alpha", "P") == nobody.text.replace("nosuchproject", "P")
