"""A real ``twin serve`` app on 127.0.0.1 (uvicorn in a thread) for the API tests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from twinengine.core import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Live:
    """A running server: its URL, settings, app and the first admin token."""

    url: str
    settings: Settings
    app: Any
    token: str
    server: Any
    thread: threading.Thread

    def client(self, token: str | None = "admin", **kwargs: Any) -> httpx.Client:
        secret = self.token if token == "admin" else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30, **kwargs)

    def user_token(self, name: str, projects: dict[str, str], scopes=("read", "run")) -> str:
        """A new user with roles in projects (created if missing) and a token of theirs."""
        accounts = self.app.state.twin.accounts
        accounts.add_user(name)
        for project, role in projects.items():
            try:
                accounts.project(project)
            except Exception:
                accounts.create_project(project, None)
            accounts.set_member(project, name, role)
        return accounts.create_token(name, "test", list(scopes))[1]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def start_server(home: Path, **overrides: Any) -> Live:
    import uvicorn

    from twinengine.api import AccountStore, create_app

    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'twin.db'}",
        store=str(home / "store"),
        cores=2,
    )
    settings = replace(settings, **overrides)
    app = create_app(settings)
    token = AccountStore(app.state.twin.db).bootstrap()
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    return Live(url, settings, app, token or "", server, thread)  # "": not a first start


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    live = start_server(tmp_path_factory.mktemp("serve"))
    yield live
    live.stop()


def wait_run(client: httpx.Client, run_id: str, timeout: float = 60) -> dict[str, Any]:
    """Poll a run until it ends; its final record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/api/v1/runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not end in {timeout} s: {run}")


ECHO = Path(__file__).resolve().parents[2] / "src/twinengine/workflows/templates/echo.cwl"
