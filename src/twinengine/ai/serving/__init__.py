"""Online model serving: one ONNX model over HTTP with dynamic micro-batching.

:class:`ModelServer` is the ASGI app (``/predict``, ``/health``, ``/metadata``,
``/metrics``), :class:`MicroBatcher` merges concurrent requests into one ONNX Runtime
call, :class:`ServingMetrics` keeps the per-deployment Prometheus metrics and
:func:`serve` runs the server with uvicorn, optionally as several processes on one port.
``python -m twinengine.ai.serving MODEL.onnx --port P`` is the command-line entry.
"""

from __future__ import annotations

from twinengine.ai.serving.batching import MicroBatcher, Signature, SignatureError, TensorSpec
from twinengine.ai.serving.metrics import ServingMetrics, Threshold
from twinengine.ai.serving.server import ModelServer, serve

__all__ = [
    "MicroBatcher",
    "ModelServer",
    "ServingMetrics",
    "Signature",
    "SignatureError",
    "TensorSpec",
    "Threshold",
    "serve",
]
