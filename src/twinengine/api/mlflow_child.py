"""The ``mlflow server`` child of ``twin serve``: where it listens and where it may write.

:class:`MlflowUI` starts ``mlflow server`` on first use, on the same tracking store that
``twin train`` writes to (``sqlite:///$TWIN_HOME/mlflow.db``, or ``MLFLOW_TRACKING_URI``),
with the static prefix ``/mlflow``. It listens on a Unix socket in a folder only the
server's user may enter (``$TWIN_HOME/mlflow-ui``, mode 0700), never on a TCP port, and
runs in that folder, so nothing it writes by default lands in the server's working
folder. Its files go under ``$TWIN_HOME/mlartifacts`` only
(:class:`~twinengine.api.mlflow_rules.ArtifactRoots`): experiments made through it
default to that folder (``--default-artifact-root``), artifacts sent through the
proxied artifact API (``--serve-artifacts``) go to ``mlartifacts/proxied``
(``--artifacts-destination``), and a model version's source must lie there (MLflow's
``MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX``, besides the proxy's own check).
The child is not otherwise confined (see docs/security.md): the proxy refuses every
request that would choose another place. It stops with the server.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from twinengine.ai.tracking import tracking_uri
from twinengine.api.mlflow_rules import PROMPT_SOURCES, ArtifactRoots
from twinengine.core import TwinError
from twinengine.workflows.children import kill_group

PREFIX = "/mlflow"
_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes


class MlflowUI:
    """The ``mlflow server`` child of one ``twin serve`` (started on first use)."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.roots = ArtifactRoots(home)
        self.socket: Path | None = None
        self.child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self.client: httpx.AsyncClient | None = None

    def command(self, socket_path: Path) -> list[str]:
        return [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", tracking_uri(home=self.home)),
            *("--default-artifact-root", self.roots.root.as_uri()),
            *("--serve-artifacts", "--artifacts-destination", self.roots.proxied.as_uri()),
            *("--uvicorn-opts", f"--uds {socket_path}"),  # uvicorn binds it, not the port
            *("--host", "127.0.0.1", "--static-prefix", PREFIX, "--workers", "1"),
        ]

    def environment(self) -> dict[str, str]:
        """The child's environment: the server's, with model-version sources restricted
        to the artifact folder (and MLflow's own URI schemes)."""
        root = re.escape(self.roots.root.as_posix())
        placeholders = "|".join(re.escape(p) for p in sorted(PROMPT_SOURCES))
        pattern = rf"^((runs|models|mlflow-artifacts):/|(file://)?{root}/|({placeholders})$)"
        return {**os.environ, "MLFLOW_CREATE_MODEL_VERSION_SOURCE_VALIDATION_REGEX": pattern}

    def folder(self) -> Path:
        """A fresh folder only this user may enter (under ``$TWIN_HOME``, or a private
        temporary folder when the socket's path would be too long)."""
        folder = self.home / "mlflow-ui"
        if len(str(folder / "mlflow.sock")) > _SOCKET_PATH_MAX:
            folder = Path(tempfile.mkdtemp(prefix="twin-mlflow-"))
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        return folder

    def running(self) -> bool:
        return self.child is not None and self.child.poll() is None and self.socket is not None

    def ensure(self, timeout: float = 60.0) -> Path:
        """The socket of a running MLflow server, starting it when needed."""
        with self._lock:
            if self.running():
                assert self.socket is not None
                return self.socket
            folder = self.folder()
            path = folder / "mlflow.sock"
            path.unlink(missing_ok=True)
            self.roots.proxied.mkdir(parents=True, exist_ok=True)
            log = open(self.home / "mlflow-ui.log", "ab")  # noqa: SIM115 - the child keeps it
            self.child = subprocess.Popen(
                self.command(path),
                cwd=folder,
                env=self.environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            log.close()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and self.child.poll() is None:
                if _answers(path):
                    self.socket = path
                    return path
                time.sleep(0.2)
            self.stop()
            raise TwinError(
                "the MLflow UI did not start",
                hint="see mlflow-ui.log in the server's home; is mlflow installed (the ai extra)?",
            )

    def http(self, path: Path) -> httpx.AsyncClient:
        """The proxy's client of the child's socket."""
        if self.client is None:
            transport = httpx.AsyncHTTPTransport(uds=str(path))
            self.client = httpx.AsyncClient(transport=transport, timeout=60)
        return self.client

    def stop(self) -> None:
        child, self.child, self.socket = self.child, None, None
        self.client = None
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:  # with the workers it started
                kill_group(child)


def _answers(path: Path) -> bool:
    """Whether the MLflow server on socket ``path`` answers its health check."""
    if not path.exists():
        return False
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=2) as client:
            return client.get(f"http://localhost{PREFIX}/health").status_code == 200
    except httpx.HTTPError:
        return False
