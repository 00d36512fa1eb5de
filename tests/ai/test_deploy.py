"""Serving registered models: follow an alias, hot swap under load, rollback, alerts,
batch inference and stream inference (NATS, MQTT)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("mlflow")
pytest.importorskip("onnxruntime")

import twinengine.core
from tests.waiting import until
from twinengine.ai import load_config, train
from twinengine.core.errors import InvalidInputError, NotFoundError

from .test_train import write_example


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two trained versions of ``line`` (y = 2x + 1), version 1 in production."""
    from twinengine.ai.registry import ModelRegistry

    home = tmp_path_factory.mktemp("deploy-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(home))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        twinengine.core.reset()
        path = write_example(home)
        overrides = [
            "trainer.epochs=25",
            "tracking.tensorboard=false",
            "trainer.checkpoint_every=99",
        ]
        runs = [train(load_config(path, [*overrides, f"trainer.seed={i}"])) for i in (1, 2)]
        registry = ModelRegistry()
        for run in runs:
            registry.register(run.run_id, "line")
        registry.promote("line", 1)
        yield {"home": home, "registry": registry, "uri": registry.uri}
        twinengine.core.reset()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Running:
    """A ModelServer on the built-in front-end in a thread."""

    def __init__(self, app: Any) -> None:
        from twinengine.ai.serving.http import run_asgi
        from twinengine.ai.serving.server import _bound_socket

        self.app, self.port = app, free_port()
        sock = _bound_socket("127.0.0.1", self.port, False)
        self.loop = asyncio.new_event_loop()
        self.stop_future: asyncio.Future | None = None

        async def main() -> None:
            self.stop_future = asyncio.get_running_loop().create_future()
            serving = asyncio.create_task(run_asgi(app, sock, app.close))
            await self.stop_future
            serving.cancel()
            await asyncio.gather(serving, return_exceptions=True)
            await asyncio.sleep(0.01)  # let the app's cancelled tasks finish

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),))
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(lambda: self.stop_future and self.stop_future.set_result(1))
        self.thread.join(10)


def test_alias_is_followed_and_swapped_under_load_without_dropping(env: dict) -> None:
    from twinengine.ai.serving.deploy import RegistryRef, make_app

    registry = env["registry"]
    app = make_app(RegistryRef("line@production", env["uri"]), {"poll_s": 0.2})
    server = Running(app)
    try:
        meta = httpx.get(server.url + "/metadata").json()
        assert meta["version"] == 1 and meta["standardized_inputs"] is True
        answer = httpx.post(server.url + "/predict", json={"inputs": [[0.5], [-0.5]]})
        assert answer.headers["x-model-version"] == "1"
        y = np.array(answer.json()["outputs"]).ravel()
        assert abs(y[0] - 2.0) < 0.3 and abs(y[1] - 0.0) < 0.3, y  # raw x in, y = 2x + 1 out
        seen: list[tuple[int, str]] = []
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=server.url) as client:
                while not stop.is_set():
                    r = client.post("/predict", json={"inputs": [[0.1]]})
                    seen.append((r.status_code, r.headers.get("x-model-version", "")))

        workers = [threading.Thread(target=load) for _ in range(4)]
        for worker in workers:
            worker.start()
        until(lambda: len(seen) > 50)
        registry.promote("line", 2)
        until(lambda: seen and seen[-1][1] == "2")
        registry.rollback("line")
        until(lambda: seen[-1][1] == "1")
        stop.set()
        for worker in workers:
            worker.join(10)
        assert {code for code, _ in seen} == {200}, "a request failed during a swap"
        versions = [v for _, v in seen]
        assert "2" in versions and versions[-1] == "1"
        metrics = httpx.get(server.url + "/metrics").text
        assert 'twin_serving_swaps_total{deployment="line"} 2' in metrics
        assert 'twin_serving_model_version{deployment="line"} 1' in metrics
    finally:
        server.close()


def test_pinned_version_and_unknown_refs(env: dict) -> None:
    from twinengine.ai.serving.deploy import RegistryRef, make_app

    app = make_app(RegistryRef("line/2", env["uri"]), {})
    assert app.watch is None and app.active.bundle.version == 2
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        RegistryRef("line@staging", env["uri"]).open()
    with pytest.raises(NotFoundError, match="nope"):
        RegistryRef("nope@production", env["uri"]).open()


def test_a_version_without_onnx_is_served_by_torch(env: dict) -> None:
    from twinengine.ai.serving.batch import predict_file
    from twinengine.ai.serving.deploy import RegistryRef

    registry = env["registry"]
    config = load_config(
        env["home"] / "config.yaml",
        [
            "trainer.epochs=25",
            "tracking.tensorboard=false",
            "trainer.onnx=false",
            f"tracking.uri={env['uri']}",
        ],
    )
    run = train(config)
    version = registry.register(run.run_id, "line-torch")
    bundle, _ = RegistryRef(f"line-torch/{version}", env["uri"]).open()
    assert bundle.path.name == "model.pt" and bundle.scaled
    assert bundle.describe()["inputs"] == [
        {"name": "input", "shape": [None, 1], "dtype": "float32"}
    ]
    y = bundle.predict([[[0.5], [-0.5]]])[0].ravel()
    assert abs(y[0] - 2.0) < 0.3 and abs(y[1]) < 0.3, y
    with pytest.raises(Exception, match="expected inputs"):
        bundle.predict([[[1.0, 2.0]]])
    rows = env["home"] / "rows.csv"
    rows.write_text("x\n0.0\n")
    out = env["home"] / "torch-out.npy"
    predict_file(f"line-torch/{version}", rows, out, tracking_uri=env["uri"])
    assert abs(float(np.load(out).ravel()[0]) - 1.0) < 0.3


class _Hook(BaseHTTPRequestHandler):
    received: list[tuple[dict, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        signature = self.headers.get("X-Twin-Signature", "")
        _Hook.received.append((json.loads(body), signature, body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_thresholds_alert_by_webhook_and_notification(env: dict) -> None:
    from twinengine.ai.serving import ServingMetrics, Threshold
    from twinengine.ai.serving.deploy import AlertSink
    from twinengine.events.queue import EventQueue
    from twinengine.events.store import DefinitionStore
    from twinengine.notify import NotificationCenter, verify_signature

    DefinitionStore().add_trigger(
        {
            "name": "retrain-on-drift",
            "source": "ai",
            "workflow": "retrain",
            "filter": {"key": "line/*"},
        }
    )
    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        sink = AlertSink([f"http://127.0.0.1:{hook.server_port}/"], "s3cret", None, "default")
        metrics = ServingMetrics(
            "line", ["p99_latency_ms>5", "input_mean[0]>3", "throughput_rps<0.5"], sink.deliver
        )
        metrics.request(200, 0.001)
        metrics.batch(1, [np.array([[1.0]], dtype=np.float32)])
        assert not metrics.check()
        metrics.request(200, 0.050)  # p99 above 5 ms
        metrics.batch(1, [np.array([[9.0]], dtype=np.float32)])  # mean 5 > 3
        assert metrics.check()
        crossed = sorted(a["threshold"] for a, _, _ in _Hook.received if a["crossed"])
        assert crossed == ["input_mean[0]>3", "p99_latency_ms>5"]
        alert, signature, body = _Hook.received[0]
        assert verify_signature("s3cret", body, signature)
        assert not verify_signature("other", body, signature)
        assert alert["key"] == f"line/{alert['threshold']}" and alert["kind"] == "threshold"
        assert 'threshold="p99_latency_ms>5"} 1' in metrics.render()
        with pytest.raises(Exception, match="unknown metric"):
            Threshold.parse("latency>3")
        with pytest.raises(Exception, match="METRIC>LIMIT"):
            Threshold.parse("p99_latency_ms=3")
        notes = NotificationCenter().inbox("admin", ["default"])
        assert any("p99_latency_ms" in n["title"] for n in notes)
        found, _ = EventQueue().events(["default"], source="ai")
        keys = sorted(e["key"] for e in found)
        assert keys == ["line/input_mean[0]>3", "line/p99_latency_ms>5"]
        assert all(e["kind"] == "threshold" for e in found)
        assert all([d["trigger"] for d in e["deliveries"]] == ["retrain-on-drift"] for e in found)
    finally:
        hook.shutdown()


def test_batch_predict_csv_npy_and_errors(env: dict, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from twinengine.ai.serving.batch import predict_file
    from twinengine.cli.models import app

    x = np.linspace(-1, 1, 11)
    (tmp_path / "in.csv").write_text("x,other\n" + "".join(f"{v},{7}\n" for v in x))
    uri = env["uri"]
    summary = predict_file(
        "line@production", tmp_path / "in.csv", tmp_path / "out.csv", tracking_uri=uri
    )
    assert summary["rows"] == 11 and summary["version"] == 1
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "y"
    assert np.allclose([float(v) for v in lines[1:]], 2 * x + 1, atol=0.3)
    cli = CliRunner()
    result = cli.invoke(
        app,
        [
            "predict",
            "line/2",
            str(tmp_path / "in.csv"),
            str(tmp_path / "out.npy"),
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "out.npy").shape == (11, 1)
    with pytest.raises(InvalidInputError, match="'z' is not in the data file"):
        predict_file(
            "line", tmp_path / "in.csv", tmp_path / "o.csv", features=["z"], tracking_uri=uri
        )
    with pytest.raises(InvalidInputError, match=r"write \.npy, \.npz or \.csv"):
        predict_file("line", tmp_path / "in.csv", tmp_path / "o.txt", tracking_uri=uri)
    np.save(tmp_path / "wide.npy", np.zeros((3, 4), np.float32))
    result = cli.invoke(
        app,
        [
            "predict",
            "line",
            str(tmp_path / "wide.npy"),
            str(tmp_path / "o.npy"),
            "--tracking-uri",
            uri,
        ],
    )
    assert result.exit_code != 0 and "expected inputs" in result.output


def _reachable(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


@pytest.mark.services
@pytest.mark.parametrize(("scheme", "port"), [("nats", 4222), ("mqtt", 1883)])
def test_stream_inference(env: dict, scheme: str, port: int) -> None:
    if not _reachable(port):
        pytest.skip(f"no {scheme} broker on 127.0.0.1:{port}")
    from twinengine.ai.serving.deploy import RegistryRef
    from twinengine.ai.serving.stream import StreamPredictor

    bundle, watch = RegistryRef("line@production", env["uri"]).open()
    tag = f"twin-test-{time.monotonic_ns()}"
    url = f"{scheme}://127.0.0.1:{port}/"
    predictor = StreamPredictor(bundle, url + f"{tag}-in", url + f"{tag}-out", watch=watch)
    predictor.connect()
    answers: list[dict] = []
    feeder = predictor.transport.__class__(predictor.sink, predictor.source, _Collect(answers))
    runner = threading.Thread(target=predictor.run)
    runner.start()
    try:
        bodies = [json.dumps({"id": i, "inputs": [[i / 10]]}).encode() for i in range(10)]
        feeder.publish(
            [*bodies, b"not json", json.dumps({"id": "wide", "inputs": [[1, 2]]}).encode()]
        )
        until(lambda: len(answers) >= 12)
    finally:
        predictor.stop()
        runner.join(10)
        feeder.close()
    good = {a["id"]: a for a in answers if "outputs" in a}
    assert sorted(good) == list(range(10))
    assert abs(good[5]["outputs"][0][0] - 2.0) < 0.3 and good[5]["version"] == 1
    errors = [a for a in answers if "error" in a]
    assert len(errors) == 2 and any("expected inputs" in e["error"] for e in errors)
    assert predictor.stats.messages == 12 and predictor.stats.errors == 2


class _Collect:
    """A queue stand-in that keeps decoded answers."""

    def __init__(self, into: list[dict]) -> None:
        self.into = into

    def put(self, body: bytes) -> None:
        self.into.append(json.loads(body))


def test_cli_serve_with_two_replicas_follows_promotion(env: dict) -> None:
    import subprocess
    import sys

    registry = env["registry"]
    registry.promote("line", 1)
    port = free_port()
    twin = str(Path(sys.executable).parent / "twin")
    command = [twin, "models", "serve", "line@production"]
    args = ["--port", str(port), "--replicas", "2", "--poll", "0.3", "--tracking-uri", env["uri"]]
    child = subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        until(lambda: _reachable(port), 60)
        until(lambda: httpx.get(url + "/health").status_code == 200)
        assert httpx.get(url + "/metadata").json()["version"] == 1
        registry.promote("line", 2)
        with httpx.Client(base_url=url) as client:  # new connections reach both replicas

            def all_moved() -> bool:
                versions = set()
                for _ in range(20):
                    with httpx.Client(base_url=url) as fresh:
                        versions.add(fresh.get("/metadata").json()["version"])
                return versions == {2}

            until(all_moved, 30)
            assert client.post("/predict", json={"inputs": [[0.0]]}).status_code == 200
    finally:
        child.terminate()
        out = child.communicate(timeout=20)[0].decode()
        registry.rollback("line")
    assert "serving line@production" in out


@pytest.mark.parametrize("scheme", ["nats", "mqtt"])
def test_stream_errors_name_the_problem(env: dict, scheme: str) -> None:
    from twinengine.ai.serving.deploy import RegistryRef
    from twinengine.ai.serving.stream import StreamPredictor
    from twinengine.core.errors import ConfigError

    bundle, _ = RegistryRef("line/1", env["uri"]).open()
    port = free_port()  # nothing listens there
    url = f"{scheme}://127.0.0.1:{port}/"
    started = time.monotonic()
    with pytest.raises(ConfigError, match=f"cannot reach the {scheme} broker at 127.0.0.1:{port}"):
        StreamPredictor(bundle, url + "in", url + "out").connect()
    assert time.monotonic() - started < 15
    with pytest.raises(ConfigError, match="write nats://HOST:PORT/SUBJECT"):
        StreamPredictor(bundle, "http://x/y", url + "out")
    with pytest.raises(ConfigError, match="same kind of broker"):
        StreamPredictor(bundle, url + "in", "kafka://127.0.0.1:9092/out")


def test_cli_serve_refuses_bad_addresses(env: dict) -> None:
    from typer.testing import CliRunner

    from twinengine.cli.models import app

    cli = CliRunner()
    uri = ["--tracking-uri", env["uri"]]
    bad = cli.invoke(app, ["serve", "line", "--port", "99999", *uri])
    assert bad.exit_code != 0 and "not a TCP port" in bad.output
    none = cli.invoke(app, ["serve", "line", "--replicas", "0", *uri])
    assert none.exit_code != 0 and "--replicas must be at least 1" in none.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = cli.invoke(app, ["serve", "line", "--port", port, *uri])
    assert busy.exit_code != 0 and "Address already in use" in busy.output
