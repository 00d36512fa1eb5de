"""The ONNX model server: metadata, JSON and npy predictions, micro-batching, 422s."""

from __future__ import annotations

import asyncio
import io
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
uvicorn = pytest.importorskip("uvicorn")

from onnx import TensorProto, helper  # noqa: E402

from twinengine.ai.serving import ModelServer, ServingMetrics, Threshold  # noqa: E402

W = np.arange(8, dtype=np.float32).reshape(4, 2) / 10
B = np.array([0.5, -1.0], dtype=np.float32)


def _linear_model(path: Path) -> Path:
    """A Linear(4, 2) as an ONNX Gemm with a dynamic batch dimension."""
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "W", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        initializer=[
            helper.make_tensor("W", TensorProto.FLOAT, [4, 2], W.ravel().tolist()),
            helper.make_tensor("B", TensorProto.FLOAT, [2], B.tolist()),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, ModelServer, Path]]:
    path = _linear_model(tmp_path_factory.mktemp("model") / "linear.onnx")
    app = ModelServer(path, max_wait_ms=20.0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", app, path
    server.should_exit = True
    thread.join(5)


def _direct(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path)).run(None, {"x": x})[0]


def test_health_and_metadata(served: tuple[str, ModelServer, Path]) -> None:
    url, _, _ = served
    assert httpx.get(url + "/health").json() == {"status": "ok"}
    meta = httpx.get(url + "/metadata").json()
    assert meta["inputs"] == [{"name": "x", "shape": [None, 4], "dtype": "float32"}]
    assert meta["outputs"] == [{"name": "y", "shape": [None, 2], "dtype": "float32"}]
    assert httpx.get(url + "/nope").status_code == 404


def test_json_prediction_matches_onnxruntime(served: tuple[str, ModelServer, Path]) -> None:
    url, _, path = served
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    r = httpx.post(url + "/predict", json={"inputs": x.tolist()})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()["outputs"]), _direct(path, x), rtol=1e-6)
    named = httpx.post(url + "/predict", json={"inputs": {"x": x.tolist()}})
    np.testing.assert_allclose(np.array(named.json()["outputs"]), _direct(path, x), rtol=1e-6)


def test_npy_prediction(served: tuple[str, ModelServer, Path]) -> None:
    url, _, path = served
    x = np.random.default_rng(1).normal(size=(5, 4)).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, x)
    headers = {"content-type": "application/x-npy", "accept": "application/x-npy"}
    r = httpx.post(url + "/predict", content=buf.getvalue(), headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_array_equal(np.load(io.BytesIO(r.content)), _direct(path, x))
    buf = io.BytesIO()
    np.savez(buf, x=x)
    r = httpx.post(
        url + "/predict", content=buf.getvalue(), headers={"content-type": "application/x-npz"}
    )
    np.testing.assert_allclose(np.array(r.json()["outputs"]), _direct(path, x), rtol=1e-6)


def test_wrong_shape_or_dtype_is_422(served: tuple[str, ModelServer, Path]) -> None:
    url, _, _ = served
    r = httpx.post(url + "/predict", json={"inputs": [[1.0, 2.0, 3.0]]})
    assert r.status_code == 422
    assert "x: float32[?, 4]" in r.json()["error"]
    r = httpx.post(url + "/predict", json={"inputs": [["a", "b", "c", "d"]]})
    assert r.status_code == 422
    r = httpx.post(url + "/predict", json={"inputs": {"z": [[1, 2, 3, 4]]}})
    assert r.status_code == 422 and "expected" in r.json()["error"]


def test_concurrent_requests_are_micro_batched(served: tuple[str, ModelServer, Path]) -> None:
    url, app, path = served
    xs = np.random.default_rng(2).normal(size=(16, 1, 4)).astype(np.float32)

    async def drive() -> list[list]:
        async with httpx.AsyncClient(base_url=url) as client:
            rs = await asyncio.gather(
                *(client.post("/predict", json={"inputs": x.tolist()}) for x in xs)
            )
        return [r.json()["outputs"] for r in rs]

    outs = asyncio.run(drive())
    for x, out in zip(xs, outs, strict=True):
        np.testing.assert_allclose(np.array(out), _direct(path, x), rtol=1e-6)
    batches = app.metrics.batches
    assert sum(batches.counts[1:]) > 0  # some model call saw more than one row
    text = httpx.get(url + "/metrics").text
    assert "twin_serving_batch_rows_bucket" in text
    assert 'twin_serving_input_mean{deployment="linear",feature="3"}' in text
    assert "twin_serving_latency_seconds_count" in text


def test_threshold_warns(caplog: pytest.LogCaptureFixture) -> None:
    metrics = ServingMetrics("d", Threshold.parse("p99_latency_ms>1"))
    for _ in range(10):
        metrics.request(200, 0.005)
    with caplog.at_level("WARNING", logger="twinengine.ai.serving"):
        assert metrics.check()
    assert "crossed the threshold" in caplog.text
    assert "twin_serving_threshold_crossed" in metrics.render()


def test_cli_builtin_server_with_two_replicas(tmp_path: Path) -> None:
    """``python -m twinengine.ai.serving`` on the lean HTTP front-end, SO_REUSEPORT replicas."""
    import subprocess
    import sys

    path = _linear_model(tmp_path / "linear.onnx")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "twinengine.ai.serving", str(path), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--replicas", "2"])
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        x = np.ones((2, 4), dtype=np.float32)
        with httpx.Client(base_url=url) as client:
            for _ in range(5):  # keep-alive: several requests on one connection
                r = client.post("/predict", json={"inputs": x.tolist()})
                assert r.status_code == 200, r.text
                np.testing.assert_allclose(np.array(r.json()["outputs"]), _direct(path, x))
            assert client.post("/predict", json={"inputs": [[1]]}).status_code == 422
            assert client.get("/metadata").json()["inputs"][0]["shape"] == [None, 4]
    finally:
        proc.terminate()
        proc.wait(10)
