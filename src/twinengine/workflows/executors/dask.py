"""The Dask executor: each command is a task on a dask.distributed cluster.

With no address, a ``LocalCluster`` (processes, one thread each, as many workers as the
configured cores) is started on demand and shut down with the executor; with
``address`` (``--dask-address`` or ``TWIN_DASK_ADDRESS``) an existing scheduler is used.
Workers must see the same file system paths as the TwinEngine process (a shared file
system on a real cluster). Each task runs the command with
:func:`~twinengine.workflows.executors.base.run_blocking`; cancelling sets a Dask
``Event`` that the task watches, so the command's process group is killed on the worker.
"""

from __future__ import annotations

import time
from typing import Any

from twinengine.core.errors import ConfigError
from twinengine.workflows.executors.base import Executor, JobResult, JobSpec, run_blocking


def _run_on_worker(spec: JobSpec) -> JobResult:
    from distributed import Event

    event = Event(f"twin-cancel-{spec.key}")
    last = [0.0, False]

    def should_stop() -> bool:
        now = time.time()
        if now - last[0] > 0.5:
            last[0] = now
            last[1] = event.is_set()
        return bool(last[1])

    return run_blocking(spec, should_stop)


class DaskExecutor(Executor):
    """Submit each command to a dask.distributed cluster."""

    name = "dask"

    def __init__(self, *, cores: int, ram_mb: int, address: str | None = None, **options: Any):
        super().__init__(cores=cores, ram_mb=ram_mb, **options)
        self.address = address
        self._client: Any = None
        self._cluster: Any = None
        self._futures: dict[str, Any] = {}

    def start(self) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:
            raise ConfigError(
                "the dask executor needs dask.distributed",
                hint="pip install 'twinengine[dask]'",
            ) from exc
        if self.address:
            try:
                self._client = Client(self.address, timeout=10)
            except OSError as exc:
                raise ConfigError(
                    f"cannot reach the Dask scheduler at {self.address}: {exc}",
                    hint="start it with `dask scheduler` or drop --dask-address to use a local one",
                ) from exc
        else:
            self._cluster = LocalCluster(
                n_workers=max(1, self.cores),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=40,
            )
            self._client = Client(self._cluster)

    def submit(self, spec: JobSpec) -> None:
        self._futures[spec.key] = self._client.submit(
            _run_on_worker, spec, key=f"twin-{spec.key}", pure=False
        )

    def wait(self, timeout: float | None) -> list[JobResult]:
        from distributed import wait as dask_wait

        if not self._futures:
            if timeout:
                time.sleep(min(timeout, 0.05))
            return []
        try:
            done, _ = dask_wait(
                list(self._futures.values()), timeout=timeout, return_when="FIRST_COMPLETED"
            )
        except TimeoutError:
            return []
        results = []
        for future in done:
            key = future.key.removeprefix("twin-")
            del self._futures[key]
            try:
                results.append(future.result())
            except Exception as exc:  # the worker died or the task raised
                results.append(JobResult(key, 1, time.time(), time.time(), error=str(exc)))
        return results

    def cancel(self, key: str) -> None:
        from distributed import Event

        if key in self._futures:
            Event(f"twin-cancel-{key}", client=self._client).set()

    def running(self) -> int:
        return len(self._futures)

    def close(self) -> None:
        for key in list(self._futures):
            self.cancel(key)
        if self._client is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()
