"""A note's link in headless Chromium: a note stored with a link that would leave the site
(written before links were checked, straight into the database) is shown without a link
and clicking it goes nowhere; a path of this site still leads there."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import create_engine, insert

from tests.web.support import Server
from twinengine.core import new_id
from twinengine.core.models import notifications
from twinengine.core.times import utcnow

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("web-browser")]

BAD = ["/\\evil.example/approve", "/\\/evil.example", "/\t/evil.example", "//evil.example"]


def _store(server: Server, title: str, link: str) -> None:
    engine = create_engine(f"sqlite:///{server.home / 'twin.db'}")
    with engine.begin() as conn:
        conn.execute(
            insert(notifications).values(
                id=new_id(),
                project="default",
                user_name=None,
                trigger=None,
                kind="approval_needed",
                title=title,
                body="",
                data={"_link": link},
                created_at=utcnow(),
            )
        )
    engine.dispose()


def test_only_links_of_this_site_are_followed(page: Page, server: Server) -> None:
    for number, link in enumerate(BAD):
        _store(server, f"bad link {number}", link)
    _store(server, "good link", "/#/runs")
    page.goto(f"{server.url}/")
    page.get_by_test_id("token-input").fill(server.token)
    page.get_by_test_id("signin-submit").click()
    page.goto(f"{server.url}/#/notifications")
    inbox = page.get_by_test_id("inbox")
    for number in range(len(BAD)):
        item = inbox.get_by_test_id("note-item").filter(has_text=f"bad link {number}")
        expect(item).to_have_count(1)
        # no link of its own: it leads where an approval note leads, inside this site
        expect(item).to_have_attribute("title", "open #/approvals")
        pages = len(page.context.pages)
        item.click()
        expect(page).to_have_url(re.compile(r"^http://127\.0\.0\.1:\d+/#/approvals$"))
        assert len(page.context.pages) == pages  # no window opened elsewhere
        page.goto(f"{server.url}/#/notifications")
    good = inbox.get_by_test_id("note-item").filter(has_text="good link")
    expect(good).to_have_attribute("title", "open #/runs")
    good.click()
    expect(page).to_have_url(re.compile(r"#/runs$"))


def test_the_api_docs_render_from_this_server_alone(page: Page, server: Server) -> None:
    """``/docs`` draws the API with Swagger UI's files from the server; a request to any
    other host is cut off, as it would be offline."""
    elsewhere: list[str] = []

    def only_here(route) -> None:  # type: ignore[no-untyped-def]
        if route.request.url.startswith(server.url):
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    page.route("**/*", only_here)
    page.goto(f"{server.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("TwinEngine")
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    assert elsewhere == []
