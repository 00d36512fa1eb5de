"""Dynamic micro-batching of ONNX Runtime calls on the asyncio event loop.

A :class:`MicroBatcher` owns one ``onnxruntime.InferenceSession``. Request handlers call
:meth:`MicroBatcher.submit` with their validated input arrays (rows along axis 0) and
await a future; the batcher gathers concurrent submissions for up to ``max_wait_ms`` or
until ``max_batch`` rows are pending, concatenates them, runs the session once and
slices the outputs back to each caller. No task or thread is created per request: a
single timer callback per batch flushes the queue, and the session runs inline on the
loop while it is cheap (measured), otherwise on one dedicated worker thread so the loop
keeps accepting requests. :class:`Signature` describes the model's inputs and outputs
(dynamic dimensions are ``None``) and checks request arrays against it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from twinengine.core.errors import InvalidInputError

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(int16)": np.int16,
    "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8,
    "tensor(bool)": np.bool_,
}


class SignatureError(InvalidInputError):
    """A request's arrays do not match the model's input signature (HTTP 422)."""

    http_status = 422


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (``None`` for a dynamic dimension) and NumPy dtype of one tensor."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        dims = ", ".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name}: {self.dtype.name}[{dims}]"

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype.name}


def _spec(node: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    return TensorSpec(node.name, shape, np.dtype(_ORT_DTYPES.get(node.type, np.float32)))


@dataclass(frozen=True)
class Signature:
    """The input and output tensors of an ONNX model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_session(cls, session: Any) -> Signature:
        return cls(
            tuple(_spec(n) for n in session.get_inputs()),
            tuple(_spec(n) for n in session.get_outputs()),
        )

    def describe(self) -> str:
        ins = "; ".join(s.describe() for s in self.inputs)
        outs = "; ".join(s.describe() for s in self.outputs)
        return f"inputs ({ins}) -> outputs ({outs})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "inputs": [s.as_dict() for s in self.inputs],
            "outputs": [s.as_dict() for s in self.outputs],
        }

    def check(self, arrays: dict[str, Any] | list[Any]) -> list[np.ndarray]:
        """Convert and validate request arrays; return them in input order."""
        if isinstance(arrays, dict):
            missing = [s.name for s in self.inputs if s.name not in arrays]
            extra = [k for k in arrays if k not in {s.name for s in self.inputs}]
            if missing or extra:
                raise SignatureError(
                    f"input names {sorted(arrays)} do not match the model; expected "
                    + self.describe()
                )
            values = [arrays[s.name] for s in self.inputs]
        else:
            if len(arrays) != len(self.inputs):
                raise SignatureError(f"got {len(arrays)} input(s), expected {self.describe()}")
            values = list(arrays)
        out = []
        rows = None
        for spec, value in zip(self.inputs, values, strict=True):
            arr = _convert(spec, value, self)
            if rows is None:
                rows = arr.shape[0]
            elif arr.shape[0] != rows:
                raise SignatureError(
                    f"inputs have different row counts; expected {self.describe()}"
                )
            out.append(arr)
        return out


def _convert(spec: TensorSpec, value: Any, sig: Signature) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if value.dtype != spec.dtype:
            kind_ok = np.can_cast(value.dtype, spec.dtype, casting="same_kind")
            if not kind_ok:
                raise SignatureError(
                    f"input {spec.name!r} has dtype {value.dtype.name}; expected " + sig.describe()
                )
            value = value.astype(spec.dtype)
        arr = value
    else:
        try:
            arr = np.asarray(value, dtype=spec.dtype)
        except (ValueError, TypeError) as exc:
            raise SignatureError(
                f"input {spec.name!r} is not a numeric array of {spec.dtype.name} ({exc}); "
                "expected " + sig.describe()
            ) from None
    if arr.ndim != len(spec.shape) or any(
        d is not None and d != n for d, n in zip(spec.shape[1:], arr.shape[1:], strict=True)
    ):
        raise SignatureError(
            f"input {spec.name!r} has shape {list(arr.shape)}; expected " + sig.describe()
        )
    return arr


class MicroBatcher:
    """Gathers concurrent requests into one ``session.run`` call (see module docstring)."""

    def __init__(
        self,
        session: Any,
        signature: Signature,
        *,
        max_batch: int = 256,
        max_wait_ms: float = 2.0,
        inline_below_ms: float = 1.0,
        on_batch: Callable[[int, list[np.ndarray]], None] | None = None,
    ) -> None:
        self.session = session
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.inline_below = inline_below_ms / 1000.0
        self.on_batch = on_batch
        self.reading = 0  # requests begun by the server and not yet submitted (see begin)
        self._names = [s.name for s in signature.outputs]
        self._in_names = [s.name for s in signature.inputs]
        self._pending: list[tuple[list[np.ndarray], int, asyncio.Future]] = []
        self._rows = 0
        self._timer: asyncio.Handle | None = None
        self._running = False
        self._run_cost = 0.0  # moving average of seconds per session.run
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="twin-serve")
        self._loop: asyncio.AbstractEventLoop | None = None

    def close(self) -> None:
        self._executor.shutdown(wait=False)

    def idle(self) -> bool:
        """Nothing queued, running or being read: safe to close."""
        return not self._pending and not self._running and self.reading <= 0

    def submit(self, arrays: list[np.ndarray]) -> asyncio.Future:
        """Queue validated input arrays; the future resolves to the list of outputs."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if self.reading > 0:
            self.reading -= 1
        rows = int(arrays[0].shape[0])
        self._pending.append((arrays, rows, fut))
        self._rows += rows
        if self._rows >= self.max_batch:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not self._running:
                loop.call_soon(self._flush)
        elif self._running:
            pass  # _done reschedules
        elif self.reading <= 0:
            # every request the server has begun is queued: nobody else is coming soon, so
            # flush on the next loop iteration (which still gathers this iteration's peers)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = loop.call_soon(self._flush)
        elif self._timer is None:
            self._timer = loop.call_later(self.max_wait, self._flush)
        return fut

    def begin(self) -> None:
        """Announce a request whose body is being read; :meth:`submit` or :meth:`abandon` follow.

        While announced requests are outstanding the batcher waits for them (up to
        ``max_wait_ms``); when none are, it flushes on the next loop iteration.
        """
        self.reading += 1

    def abandon(self) -> None:
        """Withdraw an announced request that will not be submitted (it was invalid)."""
        self.reading -= 1

    def _take(self) -> list[tuple[list[np.ndarray], int, asyncio.Future]]:
        batch: list[tuple[list[np.ndarray], int, asyncio.Future]] = []
        rows = 0
        while self._pending and (not batch or rows + self._pending[0][1] <= self.max_batch):
            item = self._pending.pop(0)
            batch.append(item)
            rows += item[1]
        self._rows -= rows
        return batch

    def _flush(self) -> None:
        self._timer = None
        if self._running or not self._pending:
            return
        batch = self._take()
        feeds = self._feeds(batch)
        if self._run_cost < self.inline_below:
            try:
                result = self._run(feeds)
            except Exception as exc:  # a model failure fails the whole batch
                self._fail(batch, exc)
            else:
                self._deliver(batch, feeds, result)
            self._reschedule()
            return
        self._running = True
        assert self._loop is not None
        task = self._loop.run_in_executor(self._executor, self._run, feeds)
        task.add_done_callback(lambda f: self._done(batch, feeds, f))

    def _feeds(self, batch: list[tuple[list[np.ndarray], int, asyncio.Future]]) -> dict:
        if len(batch) == 1:
            return dict(zip(self._in_names, batch[0][0], strict=True))
        return {
            name: np.concatenate([item[0][i] for item in batch])
            for i, name in enumerate(self._in_names)
        }

    def _run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        t0 = time.perf_counter()
        out = self.session.run(self._names, feeds)
        self._run_cost = 0.8 * self._run_cost + 0.2 * (time.perf_counter() - t0)
        return out

    def _done(self, batch: list, feeds: dict, fut: asyncio.Future) -> None:
        self._running = False
        exc = fut.exception()
        if exc is not None:
            self._fail(batch, exc)
        else:
            self._deliver(batch, feeds, fut.result())
        self._reschedule()

    def _reschedule(self) -> None:
        if not self._pending or self._timer is not None or self._loop is None:
            return
        # whatever queued while the session ran has waited long enough
        self._timer = self._loop.call_soon(self._flush)

    def _fail(self, batch: list, exc: BaseException) -> None:
        for _, _, fut in batch:
            if not fut.done():
                fut.set_exception(exc)

    def _deliver(self, batch: list, feeds: dict, outputs: list[np.ndarray]) -> None:
        if self.on_batch is not None:
            self.on_batch(sum(item[1] for item in batch), list(feeds.values()))
        start = 0
        for _, rows, fut in batch:
            if not fut.done():
                fut.set_result([o[start : start + rows] for o in outputs])
            start += rows
