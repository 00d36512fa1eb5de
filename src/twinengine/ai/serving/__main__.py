"""Command-line entry: ``python -m twinengine.ai.serving MODEL.onnx --port 8080``.

Parses the host, port, replica count and micro-batching settings and calls
:func:`twinengine.ai.serving.serve`; a user error prints its message and exits non-zero.
"""

from __future__ import annotations

import argparse
import sys

from twinengine.ai.serving.server import serve
from twinengine.core.errors import TwinError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m twinengine.ai.serving")
    parser.add_argument("model", help="path of the .onnx file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=256)
    parser.add_argument("--max-wait-ms", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    parser.add_argument("--server", choices=["builtin", "uvicorn"], default="builtin")
    parser.add_argument("--threshold", default=None, help='e.g. "p99_latency_ms>10"')
    args = parser.parse_args(argv)
    try:
        serve(
            args.model,
            args.host,
            args.port,
            args.replicas,
            args.server,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            threads=args.threads,
            threshold=args.threshold,
        )
    except TwinError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
