"""``twin sources``, ``twin triggers`` and ``twin events`` against the embedded database."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from twinengine.cli.main import app
from twinengine.events import Event
from twinengine.events.queue import EventQueue
from twinengine.events.store import DefinitionStore
from twinengine.workflows.registry import WorkflowRegistry

ECHO = Path(__file__).resolve().parents[2] / "src/twinengine/workflows/templates/echo.cwl"
runner = CliRunner()


def twin(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def test_sources_triggers_events_approvals_and_retry(tmp_path: Path) -> None:
    WorkflowRegistry().register(ECHO.read_bytes(), "echo.cwl", project="default")
    (tmp_path / "hook.yaml").write_text("name: hook\nkind: webhook\n")
    (tmp_path / "ask.yaml").write_text(
        "name: ask\nsource: hook\nworkflow: echo\napproval: true\ninputs: {message: $key}\n"
    )
    assert "source hook (webhook) added" in twin("sources", "add", str(tmp_path / "hook.yaml"))
    assert "trigger ask: hook → echo" in twin("triggers", "add", str(tmp_path / "ask.yaml"))
    assert "ask" in twin("triggers", "list") and "hook" in twin("sources", "list")
    assert '"approval": true' in twin("triggers", "show", "ask")
    assert "paused" in twin("triggers", "pause", "ask")
    twin("triggers", "resume", "ask")

    trigger = DefinitionStore().trigger("ask")
    spec = {"name": "ask", "spec": trigger["definition"], "paused": False, "project": "default"}
    queue = EventQueue()
    event_id, (row,) = queue.ingest(Event("hook", "obs-7", version="1"), "default", [spec])
    delivery = row["id"]
    assert queue.ingest(Event("hook", "obs-7", version="1"), "default", [spec]) == (None, [])
    assert delivery in twin("events", "approvals")
    assert "approved" in twin("events", "approve", delivery, "--user", "ops")
    assert queue.delivery(delivery)["approved_by"] == "ops"
    assert "ask:pending" in twin("events", "list")

    queue.mark([delivery], state="dead", error="the workflow failed")
    assert "ask:dead" in twin("events", "list", "--state", "dead")
    assert "1 delivery(ies)" in twin("events", "retry", event_id)
    assert '"state": "pending"' in twin("events", "show", event_id)


def test_bad_definitions_are_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nsource: nowhere\nworkflow: echo\n")
    result = runner.invoke(app, ["triggers", "add", str(tmp_path / "bad.yaml")])
    assert result.exit_code == 1 and "no event source 'nowhere'" in result.output
    assert "Traceback" not in result.output
    (tmp_path / "src.yaml").write_text("name: s3src\nkind: s3\n")
    result = runner.invoke(app, ["sources", "add", str(tmp_path / "src.yaml")])
    assert result.exit_code == 1 and "'bucket' is required" in result.output
    result = runner.invoke(app, ["events", "retry", "nope"])
    assert result.exit_code == 1 and "no event 'nope'" in result.output
