"""Experiment tracking: one MLflow run per training, TensorBoard event files beside it.

MLflow is embedded by default: the tracking URI is ``tracking.uri``, else the
``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///$TWIN_HOME/mlflow.db``
with artifacts under ``$TWIN_HOME/mlartifacts/<experiment>`` (a new SQLite store's
``Default`` experiment under ``mlartifacts/0`` beside it, never in the working folder);
a store this process cannot use fails at once (:func:`check_store`).
:class:`RunTracker` wraps an :class:`mlflow.MlflowClient` (no global "active run"):
params, batched metrics, tags, artifacts, checkpoint download for ``--resume``, and a
TensorBoard writer whose event files are uploaded into the run's ``tensorboard/``
artifact folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twinengine.core.errors import ConfigError, NotFoundError

log = logging.getLogger("twinengine.ai")


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def tracking_uri(uri: str | None = None, *, home: str | Path | None = None) -> str:
    """The MLflow tracking URI to use (config, environment, then the embedded default of
    ``home`` — by default this process's ``TWIN_HOME``). A SQLite store that does not
    exist yet is made here, with its artifacts beside it."""
    if uri or os.environ.get("MLFLOW_TRACKING_URI"):
        found = str(uri or os.environ["MLFLOW_TRACKING_URI"])
    else:
        if home is None:
            from twinengine.core import get_settings

            home = get_settings().home
        home = Path(home)
        home.mkdir(parents=True, exist_ok=True)
        found = f"sqlite:///{home / 'mlflow.db'}"
    check_store(found)
    database = Path(found.removeprefix("sqlite:///")) if found.startswith("sqlite:///") else None
    if database is not None and database.is_absolute() and not database.exists():
        _create_store(found, database.parent / "mlartifacts")
    return found


#: seconds a tracking server has to accept a connection before a command gives up on it
CONNECT_TIMEOUT = 5.0


def check_store(uri: str) -> None:
    """Refuse at once (:class:`ConfigError`) a tracking store this process cannot use —
    a SQLite file it cannot open or whose folder it cannot write, a tracking server no
    connection reaches within :data:`CONNECT_TIMEOUT` — where MLflow would retry for
    minutes (a step of a served run sees neither the server's home nor its loopback)."""
    parts = urlsplit(uri)
    why = None
    if parts.scheme == "sqlite" and uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///").split("?")[0]
        database = Path(path)
        if not path or path == ":memory:":
            return
        if database.exists():
            if not os.access(database, os.R_OK | os.W_OK):
                why = "the database file cannot be read and written here"
        elif not database.parent.is_dir():
            why = "its folder does not exist here"
        elif not os.access(database.parent, os.W_OK | os.X_OK):
            why = "its folder cannot be written here"
    elif parts.scheme in ("http", "https"):
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
            socket.create_connection((parts.hostname or "", port), CONNECT_TIMEOUT).close()
        except (OSError, ValueError) as exc:
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            why = f"no connection to the tracking server ({detail or type(exc).__name__})"
    if why is not None:
        raise ConfigError(
            f"the MLflow tracking store {uri} cannot be used: {why}",
            hint="check the tracking URI; a step of a served run (twin serve) sees only its "
            "own folder and cannot reach the server: give it one inside that folder, e.g. "
            "sqlite:///mlflow.db (see docs/ai-cwl.md)",
        )


def _create_store(uri: str, artifacts: Path) -> None:
    """Make a new embedded store whose ``Default`` experiment keeps its artifacts under
    ``artifacts`` (``$TWIN_HOME/mlartifacts/0``): MLflow would otherwise put them in
    whatever folder the first process that opens the store was started in."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    artifacts.mkdir(parents=True, exist_ok=True)
    try:
        SqlAlchemyStore(uri, artifacts.as_uri()).engine.dispose()
    except Exception as exc:  # another process made it at the same moment: it is there
        log.debug("creating the tracking store %s: %s", uri, exc)


def _artifact_root(uri: str, experiment: str) -> str | None:
    """Where a new experiment keeps artifacts: under ``$TWIN_HOME`` for local stores."""
    if not (uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri):
        return None  # a tracking server decides itself
    from twinengine.core import get_settings

    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment) or "default"
    root = Path(get_settings().home) / "mlartifacts" / safe
    root.mkdir(parents=True, exist_ok=True)
    return root.as_uri()


class RunTracker:
    """One MLflow run: a new one in ``experiment``, or ``resume`` (an existing run id)."""

    def __init__(
        self,
        experiment: str = "default",
        uri: str | None = None,
        resume: str | None = None,
        run_name: str | None = None,
        tensorboard: bool = True,
    ) -> None:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        self.uri = tracking_uri(uri)
        self.client = MlflowClient(tracking_uri=self.uri)
        self._metrics: list[Any] = []
        if resume:
            try:
                run = self.client.get_run(resume)
            except MlflowException as exc:
                raise NotFoundError(f"--resume {resume}: no such MLflow run at {self.uri}") from exc
            self.run_id = run.info.run_id
            self.client.update_run(self.run_id, status="RUNNING")
        else:
            found = self.client.get_experiment_by_name(str(experiment))
            if found is None:
                exp_id = self.client.create_experiment(
                    str(experiment), artifact_location=_artifact_root(self.uri, str(experiment))
                )
            else:
                exp_id = found.experiment_id
            run = self.client.create_run(exp_id, run_name=run_name or None)
            self.run_id = run.info.run_id
        self.artifact_uri = run.info.artifact_uri
        self._process: Any = None
        self._epoch_started = time.monotonic()
        self.tensorboard_dir: Path | None = None
        self.writer: Any = None
        if tensorboard:
            self._open_tensorboard()

    # -- TensorBoard --------------------------------------------------------------
    def _open_tensorboard(self) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed: MLflow still has every metric
            log.warning("tensorboard is not installed: no TensorBoard event files")
            return
        self.tensorboard_dir = Path(tempfile.mkdtemp(prefix=f"twin-tb-{self.run_id[:8]}-"))
        self.writer = SummaryWriter(log_dir=str(self.tensorboard_dir))

    # -- logging --------------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start : start + 100])

    def log_system(self, epoch: int, samples: int) -> None:
        """System metrics of the epoch just ended: its wall time, samples per second,
        this process's CPU use and resident memory (``system/*``)."""
        import psutil

        now = time.monotonic()
        if self._process is None:
            self._process = psutil.Process()
            self._process.cpu_percent()  # the first reading only starts the count
        seconds = now - self._epoch_started
        self._epoch_started = now
        self.log_metrics(
            {
                "system/epoch_seconds": seconds,
                "system/samples_per_second": samples / seconds if seconds > 0 else 0.0,
                "system/cpu_percent": self._process.cpu_percent(),
                "system/memory_rss_mb": self._process.memory_info().rss / 2**20,
            },
            epoch,
        )

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Queue metrics (written by :meth:`flush`) and write them to TensorBoard now."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        for key, value in metrics.items():
            self._metrics.append(Metric(key, float(value), now, int(step)))
            if self.writer is not None:
                self.writer.add_scalar(key, float(value), int(step))

    def flush(self) -> None:
        for start in range(0, len(self._metrics), 1000):
            self.client.log_batch(self.run_id, metrics=self._metrics[start : start + 1000])
        self._metrics = []
        if self.writer is not None:
            self.writer.flush()

    def set_tags(self, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, str(value))

    def log_config(self, config: dict[str, Any], work: Path) -> None:
        """Log the config as the run used it (overrides applied) as ``config.yaml``."""
        import yaml

        saved = work / "config.yaml"
        saved.write_text(yaml.safe_dump({k: v for k, v in config.items() if k[0] != "_"}))
        self.log_artifact(saved)

    def log_artifact(self, path: str | Path, folder: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), folder)

    def download(self, artifact: str, dest: str | Path) -> Path:
        """Download ``artifact`` of this run into ``dest``; :class:`NotFoundError` if absent."""
        quiet = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        try:
            with _environ(quiet):
                return Path(self.client.download_artifacts(self.run_id, artifact, str(dest)))
        except Exception as exc:
            raise NotFoundError(
                f"--resume {self.run_id}: the run has no {artifact} to resume from",
                hint="set trainer.checkpoint_every so that runs write checkpoints",
            ) from exc

    def params(self) -> dict[str, str]:
        return dict(self.client.get_run(self.run_id).data.params)

    def end(self, status: str = "FINISHED") -> None:
        """Flush, upload the TensorBoard files and mark the run ended."""
        self.flush()
        if self.writer is not None:
            self.writer.close()
            files = [p for p in self.tensorboard_dir.rglob("*") if p.is_file()]  # type: ignore[union-attr]
            for file in files:
                self.log_artifact(file, "tensorboard")
        self.client.set_terminated(self.run_id, status=status)


def check_tracking(spec: dict[str, Any]) -> None:
    """Reject tracking settings MLflow would fail on later, naming the key."""
    if not isinstance(spec.get("experiment"), str) or not spec["experiment"].strip():
        raise ConfigError(f"tracking.experiment: {spec.get('experiment')!r} must be a name")
