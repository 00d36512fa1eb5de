"""The events, approvals, notifications and functions pages in headless Chromium against
a real ``twin serve``.

Register the ``echo`` template workflow through the API; add a webhook source and a
trigger with ``approval: true`` through the UI's YAML forms (a wrong trigger first: the
server's refusal, naming the field, shows under the form); post an event to the webhook;
see the approval appear (badge in the top bar and the list), approve it, watch the
event's delivery become ``done`` with a link to its run and follow it to the succeeded
run; publish a note and see the bell's unread count rise live (SSE) and the note in the
inbox. A second test deploys a command function, invokes it, opens and invokes another
project's function of the same name (its own calls) and deletes it (the first stays),
and manages notification subscriptions (a failing webhook test shows the reason). Every
stage leaves a screenshot in ``tests/web/artifacts/`` (or ``$TWIN_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from tests.web.support import Server, artifacts_dir

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("web-browser")]

ECHO = Path(__file__).resolve().parents[2] / "src/twinengine/workflows/templates/echo.cwl"
RUN_TIMEOUT = 120_000  # ms: the approved run of one tiny step, with room for a slow machine
FINAL = re.compile(r"^(succeeded|failed|cancelled|interrupted)$")


def shot(page: Page, name: str, full_page: bool = False) -> None:
    """Save a screenshot of a stage; a visible error banner fails the stage first."""
    page.screenshot(path=str(artifacts_dir() / f"{name}.png"), full_page=full_page)
    banner = page.get_by_test_id("error-banner")
    if banner.count() > 0:
        pytest.fail(f"the UI shows an error at stage {name}: {banner.inner_text()}")


def sign_in(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/")
    page.get_by_test_id("token-input").fill(server.token)
    page.get_by_test_id("signin-submit").click()
    expect(page.get_by_test_id("current-user")).to_contain_text("admin")


def api(server: Server) -> httpx.Client:
    return httpx.Client(
        base_url=f"{server.url}/api/v1",
        headers={"Authorization": f"Bearer {server.token}"},
        timeout=30,
    )


def submit_yaml(page: Page, form: str, text: str) -> None:
    """Open a YAML form (source-form, trigger-form), replace its text and submit it."""
    if page.get_by_test_id(f"{form}-panel").get_attribute("open") is None:
        page.get_by_test_id(f"{form}-toggle").click()
    page.get_by_test_id(f"{form}-yaml").fill(text)
    page.get_by_test_id(f"{form}-submit").click()


def unread(page: Page) -> int:
    return int(page.get_by_test_id("notif-bell").get_attribute("data-unread") or 0)


def test_webhook_event_approved_in_the_ui_runs_and_notes_arrive_live(
    page: Page, server: Server
) -> None:
    with api(server) as client:
        made = client.post("/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        assert made.status_code == 201, made.text

    # -- sign in; the bell is connected to the live stream --------------------------------
    sign_in(page, server)
    expect(page.get_by_test_id("notif-bell")).to_have_attribute("data-mode", "live")
    expect(page.get_by_test_id("approvals-count")).to_have_count(0)

    # -- a webhook source through the UI form ---------------------------------------------
    page.get_by_test_id("nav-sources").click()
    expect(page.get_by_test_id("sources-page")).to_be_visible()
    expect(page.get_by_test_id("source-form-yaml")).to_have_count(1)
    submit_yaml(page, "source-form", "name: alerts\nkind: webhook\n")
    expect(page.get_by_test_id("source-form-done")).to_be_visible()
    source = page.get_by_test_id("source-row").and_(page.locator("[data-name='alerts']"))
    expect(source).to_be_visible()
    expect(source.get_by_test_id("source-status")).to_have_attribute(
        "data-state", re.compile(r"^(new|ok|passive)$")
    )
    shot(page, "ev-01-source-added")

    # -- a trigger through the UI form: a mistake first, then one that needs approval --------
    page.get_by_test_id("nav-triggers").click()
    expect(page.get_by_test_id("triggers-page")).to_be_visible()
    page.get_by_test_id("trigger-form-toggle").click()
    expect(page.get_by_test_id("trigger-form-yaml")).to_contain_text("approval:")  # the example
    submit_yaml(
        page,
        "trigger-form",
        "name: say\nsource: alerts\nworkflow: echo\nfilter: {size: 3}\n",
    )
    expect(page.get_by_test_id("trigger-form-error")).to_contain_text("filter.size: unknown")
    shot(page, "ev-02-trigger-refused")
    submit_yaml(
        page,
        "trigger-form",
        "# runs echo for each alert, once a person approved it\n"
        "name: say\nsource: alerts\nworkflow: echo\napproval: true\n"
        "inputs:\n  message: $data.text\n",
    )
    expect(page.get_by_test_id("trigger-form-done")).to_be_visible()
    expect(page.get_by_test_id("trigger-form-error")).to_have_count(0)
    trigger = page.get_by_test_id("trigger-row").and_(page.locator("[data-name='say']"))
    expect(trigger).to_contain_text("alerts")
    expect(trigger).to_contain_text("echo")
    expect(trigger.get_by_test_id("trigger-state")).to_have_text("active")
    shot(page, "ev-03-trigger-added")
    trigger.get_by_test_id("trigger-link").click()
    expect(page.get_by_test_id("trigger-detail")).to_be_visible()
    expect(page.get_by_test_id("trigger-definition")).to_contain_text("approval: true")
    expect(page.get_by_test_id("trigger-definition")).to_contain_text("message: $data.text")
    expect(page.get_by_test_id("trigger-condition-state")).to_be_visible()
    shot(page, "ev-04-trigger-detail")

    # -- an event arrives at the webhook: it waits for approval ----------------------------
    with api(server) as client:
        posted = client.post("/events/alerts", json={"key": "reading-1", "text": "level high"})
        assert posted.status_code == 202, posted.text
        assert posted.json()["new"] == 1
    expect(page.get_by_test_id("approvals-count")).to_have_text("1")
    page.get_by_test_id("nav-events").click()
    event = page.get_by_test_id("event-row").and_(page.locator("[data-key='reading-1']"))
    expect(event.get_by_test_id("delivery")).to_have_attribute("data-state", "approval")
    expect(page.get_by_test_id("approvals-panel")).to_be_visible()  # on the events page too
    shot(page, "ev-05-event-waiting")
    page.get_by_test_id("nav-approvals").click()
    approval = page.get_by_test_id("approval-row").and_(page.locator("[data-trigger='say']"))
    expect(approval).to_have_count(1)
    expect(approval).to_contain_text("reading-1")
    shot(page, "ev-06-approval-waiting")
    approval.get_by_test_id("approval-approve").click()
    expect(page.get_by_test_id("approvals-empty")).to_be_visible()
    expect(page.get_by_test_id("approvals-count")).to_have_count(0)

    # -- the delivery is done, with its run; the run succeeds --------------------------------
    page.get_by_test_id("nav-events").click()
    delivery = event.get_by_test_id("delivery")
    expect(delivery).to_have_attribute("data-state", "done", timeout=RUN_TIMEOUT)
    expect(delivery.get_by_test_id("delivery-state")).to_have_text("done")
    expect(delivery).to_contain_text("approved by admin")
    link = delivery.get_by_test_id("delivery-run-link")
    expect(link).to_be_visible()
    shot(page, "ev-07-event-done")
    event.get_by_test_id("event-link").click()
    expect(page.get_by_test_id("event-detail")).to_be_visible()
    expect(page.get_by_test_id("event-body")).to_contain_text("level high")
    shot(page, "ev-08-event-detail")
    page.get_by_test_id("delivery-run-link").click()
    expect(page.get_by_test_id("run-detail")).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/runs/[^/?]+"))
    state = page.get_by_test_id("run-detail-state")
    expect(state).to_have_attribute("data-state", FINAL, timeout=RUN_TIMEOUT)
    if state.get_attribute("data-state") != "succeeded":
        error = page.get_by_test_id("run-error")
        why = error.inner_text() if error.count() else "(no error text)"
        pytest.fail(f"the approved run ended {state.get_attribute('data-state')}: {why}")
    shot(page, "ev-09-run-succeeded")

    # -- notifications: the approval request is in the inbox; a new note arrives live --------
    page.get_by_test_id("notif-bell").click()
    dropdown = page.get_by_test_id("notif-dropdown")
    expect(dropdown).to_be_visible()
    expect(
        dropdown.get_by_test_id("note-item").and_(page.locator("[data-kind='approval_needed']"))
    ).to_have_count(1)
    dropdown.get_by_test_id("notif-mark-all").click()
    expect(page.get_by_test_id("notif-count")).to_have_count(0)
    shot(page, "ev-10-inbox-read")
    before = unread(page)
    expect(page.get_by_test_id("notif-bell")).to_have_attribute("data-mode", "live")
    with api(server) as client:
        note = client.post(
            "/notifications",
            json={
                "kind": "threshold",
                "title": "River level above 4 m",
                "body": "gauge A reads 4.3 m",
                "link": "/#/events",
            },
        )
        assert note.status_code == 201, note.text
    page.wait_for_function(
        "n => Number(document.querySelector(\"[data-testid='notif-bell']\").dataset.unread) > n",
        arg=before,
    )
    expect(page.get_by_test_id("notif-count")).to_be_visible()
    item = dropdown.get_by_test_id("note-item").and_(page.locator("[data-kind='threshold']"))
    expect(item).to_have_attribute("data-read", "false")
    expect(item.get_by_test_id("note-title")).to_have_text("River level above 4 m")
    shot(page, "ev-11-note-live")
    page.get_by_test_id("notif-all").click()
    inbox = page.get_by_test_id("inbox")
    expect(inbox.get_by_test_id("note-item").first).to_contain_text("River level above 4 m")
    shot(page, "ev-12-inbox", full_page=True)
    inbox.get_by_test_id("note-item").and_(page.locator("[data-kind='threshold']")).click()
    expect(page).to_have_url(re.compile(r"#/events$"))  # the note's link
    expect(page.get_by_test_id("events-page")).to_be_visible()


def test_functions_and_subscriptions(page: Page, server: Server) -> None:
    sign_in(page, server)

    # -- deploy a command function and invoke it -------------------------------------------
    page.get_by_test_id("nav-functions").click()
    expect(page.get_by_test_id("functions-page")).to_be_visible()
    page.get_by_test_id("deploy-toggle").click()
    page.get_by_test_id("deploy-name").fill("upper")
    page.get_by_test_id("deploy-kind").select_option("command")
    page.get_by_test_id("deploy-target").fill("tr a-z A-Z")
    page.get_by_test_id("deploy-max").fill("3")
    page.get_by_test_id("deploy-submit").click()
    panel = page.get_by_test_id("function-panel")
    expect(panel).to_have_attribute("data-name", "upper")
    row = page.get_by_test_id("function-row").and_(page.locator("[data-name='upper']"))
    expect(row).to_contain_text("0–3")
    page.get_by_test_id("invoke-input").fill('{"text": "hello twin"}')
    page.get_by_test_id("invoke-submit").click()
    expect(page.get_by_test_id("call-view")).to_have_attribute("data-state", "succeeded")
    expect(page.get_by_test_id("call-result")).to_contain_text('"TEXT": "HELLO TWIN"')
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    shot(page, "fn-01-invoked", full_page=True)
    page.get_by_test_id("invoke-input").fill("[1, 2]")
    page.get_by_test_id("invoke-submit").click()
    expect(page.get_by_test_id("invoke-error")).to_contain_text("JSON object")

    # -- another project's "upper": its own row, panel, calls and delete ----------------------
    with api(server) as client:
        body = {"name": "upper", "kind": "command", "target": "tr A-Z a-z", "project": "other"}
        assert client.post("/functions", json=body).status_code == 201
    page.goto(f"{server.url}/#/functions")
    uppers = page.get_by_test_id("function-row").and_(page.locator("[data-name='upper']"))
    expect(uppers).to_have_count(2)
    other = uppers.and_(page.locator("[data-project='other']"))
    other.get_by_test_id("function-link").click()
    expect(panel).to_have_attribute("data-project", "other")
    expect(page.get_by_test_id("calls-empty")).to_be_visible()  # default's call is not its
    page.get_by_test_id("invoke-input").fill('{"text": "Hello Twin"}')
    page.get_by_test_id("invoke-submit").click()
    expect(page.get_by_test_id("call-result")).to_contain_text('"text": "hello twin"')
    expect(page.get_by_test_id("call-row")).to_have_count(1)
    shot(page, "fn-02-same-name-other-project", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    other.get_by_test_id("function-delete").click()
    expect(uppers).to_have_count(1)
    expect(uppers).to_have_attribute("data-project", "default")
    uppers.get_by_test_id("function-link").click()
    expect(panel).to_have_attribute("data-project", "default")
    expect(page.get_by_test_id("call-row")).to_have_count(1)  # its call kept

    # -- subscriptions: a webhook nobody listens to fails its test; ui works ------------------
    page.goto(f"{server.url}/#/notifications")
    expect(page.get_by_test_id("notifications-page")).to_be_visible()
    page.get_by_test_id("subscribe-toggle").click()
    page.get_by_test_id("subscribe-channel").select_option("email")
    page.get_by_test_id("subscribe-target").fill("not-an-address")
    page.get_by_test_id("subscribe-submit").click()
    expect(page.get_by_test_id("subscribe-error")).to_be_visible()
    page.get_by_test_id("subscribe-channel").select_option("webhook")
    page.get_by_test_id("subscribe-target").fill("http://127.0.0.1:9/hook")  # the server's own
    page.get_by_test_id("subscribe-submit").click()
    expect(page.get_by_test_id("subscribe-error")).to_contain_text("refused")
    page.get_by_test_id("subscribe-target").fill("http://nowhere.invalid/hook")
    page.get_by_test_id("subscribe-kinds").fill("run_failed, approval_needed")
    page.get_by_test_id("subscribe-submit").click()
    hook = page.get_by_test_id("subscription-row").and_(page.locator("[data-channel='webhook']"))
    expect(hook).to_contain_text("approval_needed, run_failed")  # sorted
    hook.get_by_test_id("subscription-test").click()
    result = hook.get_by_test_id("subscription-test-result")
    expect(result).to_have_attribute("data-ok", "false")
    expect(result).to_contain_text("nowhere.invalid")
    page.get_by_test_id("subscribe-channel").select_option("ui")
    expect(page.get_by_test_id("subscribe-target")).to_be_disabled()
    page.get_by_test_id("subscribe-submit").click()
    ui = page.get_by_test_id("subscription-row").and_(page.locator("[data-channel='ui']"))
    expect(ui).to_have_count(1)
    before = unread(page)
    ui.get_by_test_id("subscription-test").click()
    expect(ui.get_by_test_id("subscription-test-result")).to_have_attribute("data-ok", "true")
    page.wait_for_function(
        "n => Number(document.querySelector(\"[data-testid='notif-bell']\").dataset.unread) > n",
        arg=before,
    )
    expect(
        page.get_by_test_id("inbox")
        .get_by_test_id("note-item")
        .and_(page.locator("[data-kind='test']"))
    ).to_have_count(1)
    shot(page, "fn-03-subscriptions", full_page=True)


def test_dead_letter_fixed_and_retried_from_the_events_page(page: Page, server: Server) -> None:
    with api(server) as client:
        made = client.post("/workflows", files={"file": ("echo.cwl", ECHO.read_bytes())})
        assert made.status_code == 201, made.text
        assert client.post("/sources", content=b"name: gauges\nkind: webhook\n").status_code == 201
        broken = (
            b"name: fragile\nsource: gauges\nworkflow: echo\n"
            b"retries: {attempts: 1, backoff: 1, max_delay: 1}\n"
            b"inputs: {message: $data.text, nope: 1}\n"
        )
        assert client.post("/triggers", content=broken).status_code == 201, broken
        posted = client.post("/events/gauges", json={"key": "g-7", "text": "river at 3.9 m"})
        assert posted.status_code == 202, posted.text

    # -- the dead letter, with its error, under the "dead" filter ----------------------------
    sign_in(page, server)
    page.goto(f"{server.url}/#/events?state=dead")
    expect(page.get_by_test_id("events-state-filter")).to_have_value("dead")
    event = page.get_by_test_id("event-row").and_(page.locator("[data-key='g-7']"))
    delivery = event.get_by_test_id("delivery")
    expect(delivery).to_have_attribute("data-state", "dead", timeout=RUN_TIMEOUT)
    expect(delivery.get_by_test_id("delivery-error")).to_contain_text("unknown input(s): nope")
    expect(event.get_by_test_id("event-retry")).to_be_visible()
    shot(page, "ev-13-dead-letter")

    # -- fix the trigger in the UI (replace), then retry the event ----------------------------
    page.get_by_test_id("nav-triggers").click()
    page.get_by_test_id("trigger-form-toggle").click()
    page.get_by_test_id("trigger-form-replace").check()
    submit_yaml(
        page,
        "trigger-form",
        "name: fragile\nsource: gauges\nworkflow: echo\ninputs: {message: $data.text}\n",
    )
    expect(page.get_by_test_id("trigger-form-done")).to_be_visible()
    page.goto(f"{server.url}/#/events?source=gauges")
    expect(page.get_by_test_id("events-source-filter")).to_have_value("gauges")
    expect(delivery).to_have_attribute("data-state", "dead")
    event.get_by_test_id("event-retry").click()
    expect(delivery).to_have_attribute("data-state", "done", timeout=RUN_TIMEOUT)
    expect(delivery.get_by_test_id("delivery-run-link")).to_be_visible()
    expect(event.get_by_test_id("event-retry")).to_have_count(0)
    shot(page, "ev-14-retried")
