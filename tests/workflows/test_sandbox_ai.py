"""The packaged AI tools in the sandbox, as a served run runs them (``twin run --sandbox
bwrap``, real bubblewrap, real training).

A step sees neither the server's home nor its loopback: a tracking URI naming the
server's ``mlflow.db`` or an ``http://127.0.0.1`` tracking server fails the step within
seconds with a message naming the store and the fix (MLflow alone retried for minutes);
a tracking URI inside the step's own folder (``sqlite:///mlflow.db``) trains and
returns the model files, as docs/ai-cwl.md says.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from tests.workflows.helpers import twin
from twinengine.ai.cwltools import tool_path
from twinengine.core import get_settings
from twinengine.workflows.sandbox import probe

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("onnxruntime")

from tests.ai.test_train import write_example  # after the skips: needs the ai extra

pytestmark = pytest.mark.skipif(
    probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
)


def train(tmp_path: Path, uri: str) -> tuple[float, object]:
    """``train.cwl`` with ``uri`` in the sandbox: seconds it took and the finished command."""
    folder = tmp_path / "given"
    folder.mkdir(exist_ok=True)
    write_example(folder)
    job = tmp_path / f"job-{abs(hash(uri))}.json"
    job.write_text(json.dumps({
        "config": {"class": "File", "path": str(folder / "config.yaml")},
        "data": {"class": "File", "path": str(folder / "data.csv")},
        "tracking_uri": uri,
        "overrides": ["trainer.epochs=2", "tracking.tensorboard=false"],
    }))  # fmt: skip
    started = time.monotonic()
    done = twin("run", "--sandbox", "bwrap", "--quiet", "--outdir", str(tmp_path / "out"),
                str(tool_path("train")), str(job), timeout=300)  # fmt: skip
    return time.monotonic() - started, done


def test_the_servers_tracking_store_fails_the_step_at_once(tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    for uri in (f"sqlite:///{get_settings().home / 'mlflow.db'}", f"http://127.0.0.1:{port}/"):
        took, done = train(tmp_path, uri)
        assert done.returncode != 0, done.stdout
        assert f"the MLflow tracking store {uri} cannot be used" in done.stderr, done.stderr
        assert "sqlite:///mlflow.db" in done.stderr  # the fix
        assert took < 60, took


def test_a_tracking_store_in_the_steps_folder_trains_and_returns_the_model(
    tmp_path: Path,
) -> None:
    _, done = train(tmp_path, "sqlite:///mlflow.db")
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads(done.stdout)
    assert outputs["model"]["basename"] == "model.onnx" and outputs["model"]["size"] > 100
    assert len(outputs["run_id"]) == 32
