"""What the API shows in place of server paths (``api/paths.py``), case by case."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from twinengine.api.paths import ServerPaths
from twinengine.core import Settings


@pytest.fixture
def paths(tmp_path: Path) -> ServerPaths:
    home = tmp_path / "home"
    return ServerPaths(Settings(home=home, database_url="sqlite://", store=str(home / "store")))


def test_each_kind_of_server_path_has_its_public_name(paths: ServerPaths) -> None:
    home = paths.home.as_posix()
    tmp = Path(tempfile.gettempdir()).resolve().as_posix()
    cases = {
        f"file://{home}/runs/R1/outputs/a%20b/out.txt": "/api/v1/runs/R1/files/a%20b/out.txt",
        f"{home}/runs/R1/tmp/stg/in.txt": "run:R1/tmp/stg/in.txt",
        f"{home}/uploads/U7/in.txt": "upload:U7",
        f"file://{home}/workflows/W3/wf.cwl#main": "workflow:W3/wf.cwl#main",
        f"{home}/store/runs/R1/logs/x.stderr": "$TWIN_STORE/runs/R1/logs/x.stderr",
        f"{home}/mlflow-ui.log": "$TWIN_HOME/mlflow-ui.log",
        home: "$TWIN_HOME",
        f"{home}/../../etc/passwd": "$TWIN_HOME/…",
        f"{tmp}/elsewhere/x": "$TMPDIR/elsewhere/x",
    }
    for given, shown in cases.items():
        assert paths.text(given) == shown, given
        assert paths.text(f"see '{given}'; then") == f"see '{shown}'; then"


def test_only_whole_paths_are_rewritten(paths: ServerPaths) -> None:
    home = paths.home.as_posix()
    for text in (f"https://example.org{home}/x", f"word{home}", "no path"):
        assert paths.text(text) == text
    assert "$TWIN_HOME" not in paths.text(f"{home}-other/x")  # a sibling is not the home


def test_values_are_rewritten_at_any_depth(paths: ServerPaths) -> None:
    home = paths.home.as_posix()
    value = {"a": [f"{home}/x", 1, None, {"b": (f"file://{home}/uploads/U/f",)}], "n": 2.5}
    assert paths.value(value) == {"a": ["$TWIN_HOME/x", 1, None, {"b": ["upload:U"]}], "n": 2.5}
