"""The web UI end to end in headless Chromium against a real ``twin serve``.

Sign in with the admin token, upload the hello-twin example (an archive of its CWL file
and step scripts), compose a two-step workflow (template ``echo`` → template ``wc``) by
drag-and-drop, save and run it, watch the run's DAG turn green, read its outputs and
open its provenance graph and the lineage of its output file. Every stage leaves a
screenshot in ``tests/web/artifacts/`` (or ``$TWIN_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import pytest

from tests.web.support import Server, artifacts_dir

pytest.importorskip("playwright.sync_api")
from playwright.sync_api import Locator, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("web-browser")]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello-twin"
RUN_TIMEOUT = 180_000  # ms: a run of two tiny steps, with room for a slow machine
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


def hello_twin_archive(folder: Path) -> Path:
    """The hello-twin example as a .tar.gz: workflow.cwl at the top, steps/ beside it."""
    archive = folder / "hello-twin.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(EXAMPLE / "workflow.cwl", arcname="workflow.cwl")
        for script in sorted((EXAMPLE / "steps").glob("*.py")):
            tar.add(script, arcname=f"steps/{script.name}")
    return archive


def centre(locator: Locator) -> tuple[float, float]:
    expect(locator).to_be_visible()
    box = locator.bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def connect(page: Page, source: str, target: str) -> None:
    """Drag an edge from one port handle to another with the mouse."""
    edges = page.locator(".react-flow__edge").count()
    sx, sy = centre(page.get_by_test_id(source))
    tx, ty = centre(page.get_by_test_id(target))
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move((sx + tx) / 2, (sy + ty) / 2, steps=5)
    page.mouse.move(tx, ty, steps=5)
    page.mouse.up()
    expect(page.locator(".react-flow__edge")).to_have_count(edges + 1)


def drop_on_canvas(page: Page, palette_item: str, x: int, y: int, node: str) -> None:
    """HTML5 drag-and-drop of a palette item onto the canvas at (x, y)."""
    canvas = page.get_by_test_id("composer-canvas")
    page.get_by_test_id(palette_item).drag_to(canvas, target_position={"x": x, "y": y})
    expect(page.get_by_test_id(f"composer-node-{node}")).to_be_visible()


def test_sign_in_rejects_a_bad_token_and_shows_the_error(page: Page, server: Server) -> None:
    page.goto(f"{server.url}/")
    page.get_by_test_id("token-input").fill("twin_not-a-real-token")
    page.get_by_test_id("signin-submit").click()
    banner = page.get_by_test_id("error-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("401")
    page.screenshot(path=str(artifacts_dir() / "00-sign-in-rejected.png"))
    expect(page.get_by_test_id("signin-form")).to_be_visible()


def test_upload_compose_run_and_provenance(page: Page, server: Server, tmp_path: Path) -> None:
    # -- sign in ----------------------------------------------------------------------
    sign_in(page, server)
    expect(page.get_by_test_id("nav-workflows")).to_be_visible()
    expect(page.get_by_test_id("nav-mlflow")).to_have_attribute("href", "/mlflow/")
    shot(page, "01-signed-in")

    # -- upload the hello-twin example ------------------------------------------------
    page.get_by_test_id("nav-workflows").click()
    page.get_by_test_id("upload-toggle").click()
    page.get_by_test_id("upload-file").set_input_files(str(hello_twin_archive(tmp_path)))
    page.get_by_test_id("upload-name").fill("hello-twin")
    page.get_by_test_id("upload-main").fill("workflow.cwl")
    page.get_by_test_id("upload-submit").click()
    expect(page.get_by_test_id("workflow-detail")).to_be_visible()
    expect(page.get_by_test_id("workflow-name")).to_have_text("hello-twin")
    for step in ("generate", "clean", "aggregate", "plot"):
        expect(page.get_by_test_id(f"wf-node-{step}")).to_be_visible()
    expect(page.get_by_test_id("run-input-samples")).to_have_value("4320")
    expect(page.get_by_test_id("workflow-outputs")).to_contain_text("plot_png")
    shot(page, "02-workflow-uploaded", full_page=True)
    page.get_by_test_id("tab-source").click()
    expect(page.get_by_test_id("workflow-source")).to_contain_text("class: Workflow")
    shot(page, "03-workflow-source")
    page.get_by_test_id("nav-workflows").click()
    expect(page.get_by_test_id("workflow-row").filter(has_text="hello-twin")).to_be_visible()

    # -- compose echo -> wc by drag-and-drop ------------------------------------------
    page.get_by_test_id("nav-composer").click()
    expect(page.get_by_test_id("palette-template-echo")).to_be_visible()
    drop_on_canvas(page, "palette-template-echo", 120, 160, "echo")
    drop_on_canvas(page, "palette-template-wc", 470, 260, "wc")
    connect(page, "handle-echo-out-output", "handle-wc-in-file")
    page.get_by_test_id("add-output-name").fill("counted")
    page.get_by_test_id("add-output-submit").click()
    expect(page.get_by_test_id("composer-node-counted")).to_be_visible()
    connect(page, "handle-wc-out-output", "handle-counted-in")
    page.get_by_test_id("composer-node-echo").locator(".cnode-name").click()
    expect(page.get_by_test_id("inspector-step")).to_be_visible()
    page.get_by_test_id("param-message").fill("hello from the TwinEngine browser test")
    expect(page.get_by_test_id("param-value-echo-message")).to_be_visible()
    expect(page.get_by_test_id("param-connected-message")).to_have_count(0)
    page.get_by_test_id("composer-node-wc").locator(".cnode-name").click()
    expect(page.get_by_test_id("param-connected-file")).to_contain_text("echo/output")
    page.get_by_test_id("composer-name").fill("echo-count")
    shot(page, "04-composer")
    page.get_by_test_id("composer-validate").click()
    result = page.get_by_test_id("compose-result")
    expect(result).to_be_visible()
    if result.get_attribute("data-valid") != "true":
        pytest.fail(f"the composed workflow is invalid: {result.inner_text()}")
    expect(page.get_by_test_id("compose-cwl")).to_contain_text("steps")
    shot(page, "05-composer-validated", full_page=True)

    # -- save & run, watch the run -----------------------------------------------------
    page.get_by_test_id("composer-save-run").click()
    detail = page.get_by_test_id("run-detail")
    expect(detail).to_be_visible()
    expect(page).to_have_url(re.compile(r"#/runs/[^/?]+"))
    state = page.get_by_test_id("run-detail-state")
    expect(state).to_have_attribute("data-state", FINAL, timeout=RUN_TIMEOUT)
    if state.get_attribute("data-state") != "succeeded":
        error = page.get_by_test_id("run-error")
        why = error.inner_text() if error.count() else "(no error text)"
        pytest.fail(f"the run ended {state.get_attribute('data-state')}: {why}")
    for step in ("echo", "wc"):
        node = page.get_by_test_id(f"dag-node-{step}")
        expect(node).to_have_attribute("data-state", "succeeded", timeout=30_000)
        expect(node).to_have_class(re.compile(r"\bstate-succeeded\b"))
    expect(page.get_by_test_id("step-row")).to_have_count(2)
    expect(page.get_by_test_id("timeline-row")).to_have_count(2)
    shot(page, "06-run-succeeded", full_page=True)

    # -- outputs and logs ---------------------------------------------------------------
    page.get_by_test_id("run-tab-outputs").click()
    expect(page.get_by_test_id("output-counted")).to_be_visible()
    expect(page.get_by_test_id("output-counted-file-text")).to_contain_text(
        re.compile(r"\d+\s+\d+\s+\d+")
    )
    shot(page, "07-run-outputs")
    page.get_by_test_id("run-tab-logs").click()
    expect(page.get_by_test_id("logs-text")).not_to_have_text("Loading…")
    shot(page, "08-run-logs")

    # -- provenance ---------------------------------------------------------------------
    page.get_by_test_id("run-tab-provenance").click()
    expect(page.get_by_test_id("prov-graph")).to_be_visible()
    prov_nodes = page.locator("[data-testid^='prov-node-']")
    expect(prov_nodes.first).to_be_visible()
    kinds = {prov_nodes.nth(i).get_attribute("data-kind") for i in range(prov_nodes.count())}
    assert {"entity", "activity"} <= kinds, kinds
    expect(page.locator("[data-testid='prov-graph'] .react-flow__edge").first).to_be_attached()
    shot(page, "09-provenance", full_page=True)
    page.get_by_test_id("lineage-file").select_option(index=1)
    expect(page.get_by_test_id("lineage-graph")).to_be_visible()
    expect(page.locator("[data-testid^='lineage-node-']").first).to_be_visible()
    shot(page, "10-lineage", full_page=True)

    # -- the runs list --------------------------------------------------------------------
    page.get_by_test_id("nav-runs").click()
    row = page.get_by_test_id("run-row").filter(has_text="echo-count")
    expect(row).to_have_attribute("data-state", "succeeded")
    shot(page, "11-runs")


def test_models_page_promotes_and_rolls_back(page: Page, server: Server, tmp_path: Path) -> None:
    """Two trained versions registered through the API; promoted and rolled back in the UI."""
    pytest.importorskip("torch")
    pytest.importorskip("mlflow")
    import httpx

    from tests.ai.test_train import write_example
    from twinengine.ai import load_config, train

    uri = f"sqlite:///{server.home / 'mlflow.db'}"
    quick = ["trainer.epochs=2", "tracking.tensorboard=false", "tracking.provenance=false"]
    config = write_example(tmp_path)
    headers = {"Authorization": f"Bearer {server.token}"}
    for _ in range(2):
        run = train(load_config(config, [*quick, f"tracking.uri={uri}"]))
        made = httpx.post(
            f"{server.url}/api/v1/models/ui-line/versions",
            json={"run_id": run.run_id},
            headers=headers,
            timeout=60,
        )
        assert made.status_code == 200, made.text
    sign_in(page, server)
    page.get_by_test_id("nav-models").click()
    row = page.locator("[data-testid=model-row][data-name=ui-line]")
    expect(row).to_contain_text("2 (latest v2)")
    row.get_by_test_id("model-link").click()
    v1 = page.locator("[data-testid=version-row][data-version='1']")
    v2 = page.locator("[data-testid=version-row][data-version='2']")
    v1.get_by_test_id("promote-production").click()
    expect(v1.get_by_test_id("alias")).to_have_text("production")
    v2.get_by_test_id("promote-production").click()
    expect(v2.get_by_test_id("alias")).to_have_text("production")
    expect(v1.get_by_test_id("alias")).to_have_text("previous")
    shot(page, "models-promoted")
    page.get_by_test_id("rollback").click()
    expect(v1.get_by_test_id("alias")).to_have_text("production")
    expect(page.get_by_test_id("promotion").first).to_contain_text("admin: rollback production")
    shot(page, "models-rolled-back")
