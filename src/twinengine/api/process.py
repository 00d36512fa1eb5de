"""``twin serve`` as a child process: for benchmarks, browser tests and scripts.

:class:`ServeProcess` starts ``twin serve`` on a free loopback port with its own
``TWIN_HOME`` (and no other ``TWIN_*`` setting inherited unless given), keeps draining
its output into a log file (a full pipe would stall the server), picks up the admin token
printed on the first start, waits until ``GET /health`` answers, and stops the server
with SIGTERM (SIGKILL after a grace period). Use it as a context manager. On a machine
where no sandbox works it starts the server with ``TWIN_SANDBOX=none`` (unless told a
sandbox), as ``twin serve`` would otherwise refuse.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from twinengine.core import Settings
from twinengine.workflows.sandbox import probe

TOKEN = re.compile(r"twin_[A-Za-z0-9_-]+")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def twin_command() -> str:
    """The ``twin`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("twin")
    return str(beside) if beside.exists() else (shutil.which("twin") or "twin")


def sandbox_works(home: Path) -> bool:
    """Whether ``twin serve`` would find a sandbox that works here (it refuses otherwise)."""
    settings = Settings(home=home, database_url="", store="")
    return any(probe(name, settings) is None for name in ("bwrap", "podman"))


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


class ServeProcess:
    """A ``twin serve`` child process: ``url``, ``token`` (first start), ``log`` path."""

    def __init__(
        self,
        home: Path,
        *,
        env: dict[str, str] | None = None,
        log: Path | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.home = Path(home)
        self.extra_env = env or {}
        self.log = log or self.home / "serve.log"
        self.start_timeout = start_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = ""
        self.process: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def start(self) -> ServeProcess:
        self.home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWIN_")}
        env.update(TWIN_HOME=str(self.home), PYTHONUNBUFFERED="1", **self.extra_env)
        if "TWIN_SANDBOX" not in self.extra_env and not sandbox_works(self.home):
            env["TWIN_SANDBOX"] = "none"  # tests and scripts on a machine without one
        self.process = subprocess.Popen(
            [twin_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.home,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        announced = threading.Event()
        self._reader = threading.Thread(target=self._pump, args=(announced,), daemon=True)
        self._reader.start()
        deadline = time.monotonic() + self.start_timeout
        announced.wait(self.start_timeout)
        while not healthy(self.url):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"twin serve did not start; its output:\n{self.output()}")
            time.sleep(0.1)  # waiting for the server to listen
        return self

    def _pump(self, announced: threading.Event) -> None:
        assert self.process is not None and self.process.stdout is not None
        with self.log.open("w", encoding="utf-8") as out:
            for line in self.process.stdout:
                out.write(line)
                out.flush()
                match = TOKEN.search(line) if "admin token" in line else None
                if match and not self.token:
                    self.token = match.group(0)
                if line.startswith("home "):  # twin serve's last line before it listens
                    announced.set()
        announced.set()  # the server ended

    def output(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self, grace: float = 10.0) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def __enter__(self) -> ServeProcess:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
