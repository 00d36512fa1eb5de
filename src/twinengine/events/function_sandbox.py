"""How the workers of functions run in the server's sandbox.

On ``twin serve`` every function call runs in the server's sandbox
(:mod:`twinengine.workflows.sandbox`), like a workflow step: a working folder of its
own (per call for a command, per worker process for a python function) is its home,
its temporary folder and the only place it may write; the system and the server's
Python environment are read-only; the network only when the function's ``network``
setting allows. Its environment is what its definition declares on top of ``PATH``,
``HOME``, ``TMPDIR`` and ``LANG`` — never the server's. A python worker also gets a
``PYTHONPATH`` with TwinEngine's source tree (for its worker module) and the folders
the function's own ``PYTHONPATH`` names, shown read-only; those must lie inside the
admin's input roots (``TWIN_INPUT_ROOTS``), so a definition cannot show a worker the
server's home or another project's files. :meth:`FunctionSandbox.check` refuses such a
definition, and a command whose program the sandbox does not show, when it is deployed.
Each process runs under the sandbox's limits (processes, memory, file size) as a user of
its own; :meth:`FunctionSandbox.launch` gives what to start with ``Launch.popen``, and
:meth:`FunctionSandbox.exit_code` reads its end as a plain process's.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import twinengine
from twinengine.core import InvalidInputError
from twinengine.workflows.sandbox import (
    BASE_PATH,
    Launch,
    Mount,
    Sandbox,
    SandboxPolicy,
    inside,
)

#: the folder TwinEngine is imported from (its worker module lives there)
SOURCE_ROOT = str(Path(twinengine.__file__).resolve().parent.parent)


class FunctionSandboxError(InvalidInputError):
    """A function definition asks for something its sandbox cannot show."""


@dataclass(frozen=True)
class FunctionSandbox:
    """The server's sandbox, as functions use it."""

    sandbox: Sandbox
    roots: tuple[str, ...] = ()  # folders a python function's PYTHONPATH may name

    @property
    def confines(self) -> bool:
        return self.sandbox.confines

    @staticmethod
    def python_path(env: dict[str, str]) -> list[str]:
        return [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]

    def check(self, kind: str, argv: list[str] | None, env: dict[str, str]) -> None:
        """Refuse a definition whose module folders or program the sandbox cannot show."""
        if not self.confines:
            return
        for entry in self.python_path(env):
            real = os.path.realpath(entry)
            if not any(inside(real, os.path.realpath(root)) for root in self.roots):
                raise FunctionSandboxError(
                    f"PYTHONPATH entry {entry!r} is not shown to sandboxed functions",
                    hint="put the module in a folder under the server's input roots "
                    "(TWIN_INPUT_ROOTS), or install it in the server's Python environment",
                )
        if kind == "command" and argv:
            program = argv[0]
            if os.sep not in program:
                program = shutil.which(program, path=env.get("PATH", BASE_PATH)) or program
            if not self.sandbox.shows(program):
                raise FunctionSandboxError(
                    f"program {argv[0]!r} is not shown to sandboxed functions",
                    hint="use a program of the system (/usr, /bin) or of the server's Python "
                    "environment",
                )

    def environment(self, env: dict[str, str], folder: str, python: bool) -> dict[str, str]:
        """A worker's environment: the basics, then the definition's ``env``."""
        base = {"PATH": BASE_PATH, "HOME": folder, "TMPDIR": folder, "LANG": "C.UTF-8"}
        merged = {**base, **env}
        if python:
            merged["PYTHONPATH"] = os.pathsep.join([SOURCE_ROOT, *self.python_path(env)])
        return merged

    def launch(
        self, argv: list[str], env: dict[str, str], folder: str, network: bool, python: bool
    ) -> Launch:
        """The confined start of ``argv`` working in ``folder`` (start it with
        ``Launch.popen``)."""
        mounts = tuple(Mount(p, p) for p in self.python_path(env) if python)
        policy = SandboxPolicy(cwd=folder, writable=(folder,), readonly=mounts, network=network)
        return self.sandbox.launch(argv, self.environment(env, folder, python), policy)

    def exit_code(self, code: int | None) -> int | None:
        """A sandboxed process's exit code as a plain one's (-N: killed by signal N)."""
        return None if code is None else self.sandbox.exit_code(code)

    @staticmethod
    def new_folder(parent: Path | str) -> str:
        """A fresh working folder under ``parent`` (the pool's private folder)."""
        return tempfile.mkdtemp(prefix="work-", dir=parent)

    @staticmethod
    def remove_folder(folder: str | None) -> None:
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def run(
        self, argv: list[str], env: dict[str, str], timeout: float, python: bool
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` to its end in a sandbox of its own (deploy-time checks)."""
        parent = tempfile.mkdtemp(prefix="twin-fn-check-")
        try:
            folder = self.new_folder(parent)
            launch = self.launch(argv, env, folder, network=False, python=python)
            proc = launch.popen(
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise
            return subprocess.CompletedProcess(argv, self.exit_code(proc.returncode), out, err)
        finally:
            shutil.rmtree(parent, ignore_errors=True)
