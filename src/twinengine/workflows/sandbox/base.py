"""The sandbox interface: turn a command and its policy into what to start.

A :class:`Sandbox` backend (bubblewrap, a container runtime, or none) is made once per
process for one server's :class:`~.policy.HostView`. :meth:`Sandbox.launch` prepares
the files (the writable folders handed to the sandbox user, the inputs made readable
to it: :mod:`.ownership`) and returns a :class:`Launch` — the program line and the
environment to start it with — that a plain ``subprocess.Popen`` runs as the confined
command; the launcher itself never sees the server's environment. :meth:`probe`
starts one real sandbox (``true``) to tell whether the backend works on this machine.
"""

from __future__ import annotations

import os
import subprocess
from abc import ABC, abstractmethod
from dataclasses import dataclass

from twinengine.workflows.sandbox.ownership import grant_read, hand_over, readable
from twinengine.workflows.sandbox.policy import BASE_PATH, HostView, SandboxPolicy, inside


@dataclass(frozen=True)
class Launch:
    """What to start: the program line and the environment of the launcher."""

    argv: list[str]
    env: dict[str, str]


class Sandbox(ABC):
    """A way to confine commands; one instance per process and server."""

    #: the value of the ``sandbox`` setting that picks this backend
    name = "abstract"
    #: whether commands are confined at all (``none`` is the only one that is not)
    confines = True

    def __init__(self, view: HostView) -> None:
        self.view = view

    @abstractmethod
    def command(self, argv: list[str], env: dict[str, str], policy: SandboxPolicy) -> Launch:
        """The confined form of ``argv`` with exactly ``env`` as its environment."""

    def launch(self, argv: list[str], env: dict[str, str], policy: SandboxPolicy) -> Launch:
        """Prepare the policy's files for the sandbox user, then :meth:`command`."""
        if self.view.user is not None and self.confines:
            hand_over(policy.writable, self.view.user)
            grant_read(policy.readonly, self.view)
        return self.command(argv, env, policy)

    def may_read(self, path: str) -> bool:
        """Whether the sandbox user may read ``path`` (a folder: all of it) — what the
        server reads or copies on a command's behalf must pass this. Files in the
        grantable folders pass: they are made readable when they are mounted."""
        user = self.view.user
        if user is None or not self.confines:
            return True
        real = os.path.realpath(path)
        if any(inside(real, root) for root in self.view.grantable):
            return True
        return readable(real, user)

    def shows(self, path: str) -> bool:
        """Whether ``path`` is visible (read-only) in every sandbox: in the system or the
        server's Python environment (no confinement: everything is)."""
        if not self.confines:
            return True
        real = os.path.realpath(path)
        folders = (*self.view.system, *self.view.python)
        return any(inside(real, os.path.realpath(folder)) for folder in folders)

    def probe(self) -> str | None:
        """None when a sandbox starts here; else why it does not (its error output)."""
        launch = self.command(["true"], {"PATH": BASE_PATH}, SandboxPolicy(cwd="/"))
        try:
            done = subprocess.run(
                launch.argv,
                env=launch.env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if done.returncode != 0:
            text = (done.stderr or done.stdout).decode("utf-8", "replace").strip()
            return text.splitlines()[-1] if text else f"exit code {done.returncode}"
        return None

    def describe(self) -> str:
        """One line for ``/health`` and ``twin info``."""
        user = self.view.user
        who = f"uid {user.uid}" if user is not None else f"uid {os.getuid()} (the server's)"
        return f"{self.name}, steps run as {who}"
