"""Fixtures of the browser tests: a real ``twin serve`` subprocess and headless Chromium.

The server runs with its own ``TWIN_HOME`` (a temporary folder) and the embedded
database; its admin token is read from the line of its output that mentions
``admin token``. Chromium is Debian's ``/usr/bin/chromium`` driven by Playwright
(never a downloaded browser); without it every browser test is skipped.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.web.support import Server, artifacts_dir
from twinengine.api.process import ServeProcess

CHROMIUM = Path(os.environ.get("TWIN_TEST_CHROMIUM", "/usr/bin/chromium"))  # Debian's package
START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``twin serve`` on a free port with a fresh TWIN_HOME; yields its URL and admin token."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    home = tmp_path_factory.mktemp("twin-home")
    log = artifacts_dir() / "server.log"
    with ServeProcess(home, log=log, start_timeout=START_TIMEOUT) as serve:
        assert serve.token, f"twin serve printed no admin token:\n{serve.output()}"
        yield Server(url=serve.url, token=serve.token, home=home, log=log)


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
