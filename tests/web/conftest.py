"""Fixtures of the browser tests: a real ``twin serve`` subprocess and headless Chromium.

The server runs with its own ``TWIN_HOME`` (a temporary folder) and the embedded
database; its admin token is read from the line of its output that mentions
``admin token``. Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright
(never a downloaded browser); without it every browser test is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.support import Server, artifacts_dir

CHROMIUM = Path(os.environ.get("TWIN_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
TOKEN_RE = re.compile(r"twin_[A-Za-z0-9_-]+")
START_TIMEOUT = 90.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _twin_command() -> list[str]:
    beside = Path(sys.executable).with_name("twin")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("twin")
    if found:
        return [found]
    pytest.skip("the `twin` command is not installed (pip install -e .)")
    raise AssertionError  # unreachable


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``twin serve`` on a free port with a fresh TWIN_HOME; yields its URL and admin token."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    home = tmp_path_factory.mktemp("twin-home")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
    env["TWIN_HOME"] = str(home)
    env["PYTHONUNBUFFERED"] = "1"
    log = artifacts_dir() / "server.log"
    process = subprocess.Popen(
        [*_twin_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    token: list[str] = []
    found = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        with log.open("w", encoding="utf-8") as out:
            for line in process.stdout:
                out.write(line)
                out.flush()
                match = TOKEN_RE.search(line) if "admin token" in line else None
                if match and not token:
                    token.append(match.group(0))
                    found.set()
        found.set()  # the server ended: stop waiting

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        found.wait(START_TIMEOUT)
        if not token:
            raise AssertionError(
                f"twin serve printed no admin token (exit code {process.poll()}); "
                f"its output:\n{log.read_text(encoding='utf-8')[-4000:]}"
            )
        while not _healthy(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"twin serve did not answer GET /health; its output:\n"
                    f"{log.read_text(encoding='utf-8')[-4000:]}"
                )
            time.sleep(0.2)  # polling the server's readiness, not waiting in a test
        yield Server(url=url, token=token[0], home=home, log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        reader.join(timeout=5)


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[object]:
    """Headless Debian Chromium (Playwright only drives it)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    sync_api.expect.set_options(timeout=30_000)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, server: Server, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context and page at the server; a screenshot is saved on failure."""
    context = browser.new_context(viewport={"width": 1440, "height": 960}, accept_downloads=True)
    context.set_default_timeout(30_000)
    context.set_default_navigation_timeout(30_000)
    pg = context.new_page()
    messages: list[str] = []
    pg.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    try:
        yield pg
    finally:
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            try:
                pg.screenshot(path=str(artifacts_dir() / f"failure-{name}.png"), full_page=True)
            except Exception:
                pass
            (artifacts_dir() / f"failure-{name}-console.txt").write_text(
                "\n".join(messages), encoding="utf-8"
            )
        context.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
    return report
