"""The sandbox interface: turn a command and its policy into what to start.

A :class:`Sandbox` backend (bubblewrap, a container runtime, or none) is made once per
process for one server's :class:`~.policy.HostView`. :meth:`Sandbox.launch` picks who
the command runs as (a uid of its own, leased from ``sandbox_uids``, when the backend
can keep the lease for the sandbox's life: :mod:`.uids`), prepares the files (the
writable folders handed to that user, the inputs made readable to the sandbox group:
:mod:`.ownership`) and returns a :class:`Launch`: the program line, the environment of
the launcher (never the server's) and what must happen once it runs. A backend
implements only :meth:`Sandbox.confine`, given the command, its environment, policy,
user and lease as one :class:`SandboxedCommand`.
:meth:`Launch.popen` starts it like ``subprocess.Popen`` and finishes the sandbox
(limits, network: :mod:`.startup`) before the command runs — every caller starts a
launch that way. :meth:`Sandbox.exit_code` gives a launcher's exit code as a plain run
of the command would have (a sandbox reports death by signal N as 128+N). :meth:`probe`
starts one real sandbox (``true``) to tell whether the backend works on this machine.
"""

from __future__ import annotations

import os
import subprocess
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from twinengine.core.errors import TwinError
from twinengine.workflows.sandbox.ownership import grant_read, hand_over, readable
from twinengine.workflows.sandbox.policy import (
    BASE_PATH,
    HostView,
    SandboxPolicy,
    SandboxUser,
    inside,
)
from twinengine.workflows.sandbox.startup import Startup
from twinengine.workflows.sandbox.uids import UidPool

MAX_SIGNAL = 64  # a launcher exit code 129..192 is a command killed by signal 1..64
_pools: dict[tuple[int, int], UidPool] = {}
_pools_lock = threading.Lock()


@dataclass(frozen=True)
class SandboxedCommand:
    """A command to confine: its program line, exactly its environment, its policy, who
    it runs as (None: the server's user) and the descriptor that holds that user's uid
    lease (None: no lease)."""

    argv: list[str]
    env: dict[str, str]
    policy: SandboxPolicy
    user: SandboxUser | None = None
    lease: int | None = None


@dataclass
class Launch:
    """What to start: the program line, the environment of the launcher, who the
    command runs as (None: the server's user) and what finishes its sandbox."""

    argv: list[str]
    env: dict[str, str]
    user: SandboxUser | None = None
    startup: Startup | None = None

    def popen(self, **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen(argv, env=env, **kwargs)``, then the sandbox finished (its
        limits and network) before the command runs; on failure the launcher is killed
        and reaped and the error raised. Start a launch only once."""
        startup, self.startup = self.startup, None
        if startup is None:
            return subprocess.Popen(self.argv, env=self.env, **kwargs)
        kwargs["pass_fds"] = (*kwargs.get("pass_fds", ()), *startup.child_fds)
        try:
            proc = subprocess.Popen(self.argv, env=self.env, **kwargs)
        except BaseException:
            startup.abandon()
            raise
        startup.started()
        try:
            startup.finish(proc.pid)
        except BaseException:
            proc.wait()
            raise
        return proc

    def abandon(self) -> None:
        """Free what the launch holds when it will not be started."""
        if self.startup is not None:
            self.startup.abandon()
            self.startup = None


class Sandbox(ABC):
    """A way to confine commands; one instance per process and server."""

    #: the value of the ``sandbox`` setting that picks this backend
    name = "abstract"
    #: whether commands are confined at all (``none`` is the only one that is not)
    confines = True
    #: whether each sandbox can run as a uid of its own (the backend keeps the lease)
    leases_uids = False

    def __init__(self, view: HostView) -> None:
        self.view = view

    def command(
        self,
        argv: list[str],
        env: dict[str, str],
        policy: SandboxPolicy,
        user: SandboxUser | None = None,
        lease: int | None = None,
    ) -> Launch:
        """The confined form of ``argv`` with exactly ``env`` as its environment, run as
        ``user`` (default: the sandbox user) whose uid ``lease`` holds."""
        return self.confine(SandboxedCommand(argv, env, policy, user or self.view.user, lease))

    @abstractmethod
    def confine(self, cmd: SandboxedCommand) -> Launch:
        """What to start for ``cmd`` (its user already chosen): the backend's part of
        :meth:`command`."""

    def launch(self, argv: list[str], env: dict[str, str], policy: SandboxPolicy) -> Launch:
        """Who the command runs as, the policy's files prepared for that user, then
        :meth:`command`."""
        user, lease = self.view.user, None
        if user is None or not self.confines:
            return self.command(argv, env, policy)
        if self.leases_uids and self.view.uids is not None:
            uid, lease = uid_pool(*self.view.uids).take()
            user = SandboxUser(uid, user.gid)
        try:
            hand_over(policy.writable, user)
            grant_read(policy.readonly, self.view)
            return self.command(argv, env, policy, user=user, lease=lease)
        except BaseException:
            if lease is not None:
                os.close(lease)
            raise

    def exit_code(self, code: int) -> int:
        """The exit code a plain run would have had, from the launcher's ``code``: a
        confined command killed by signal N makes its launcher exit with 128+N, given
        back as -N (a command that itself exits with 129..192 reads the same)."""
        if self.confines and 128 < code <= 128 + MAX_SIGNAL:
            return 128 - code
        return code

    def may_read(self, path: str) -> bool:
        """Whether the sandbox user may read ``path`` (a folder: all of it) — what the
        server reads or copies on a command's behalf must pass this. Files in the
        grantable folders pass: they are made readable when they are mounted."""
        user = self.view.reader
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
            proc = launch.popen(
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
        except (OSError, TwinError) as exc:
            return str(exc)
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.communicate()
            return str(exc)
        if proc.returncode != 0:
            text = (err or out).decode("utf-8", "replace").strip()
            return text.splitlines()[-1] if text else f"exit code {proc.returncode}"
        return None

    def network_problem(self) -> str | None:
        """Why network-allowed commands cannot start here (None: they can)."""
        return None

    def describe(self) -> str:
        """One line for ``/health`` and ``twin info``."""
        user = self.view.user
        who = f"uid {user.uid}" if user is not None else f"uid {os.getuid()} (the server's)"
        return f"{self.name}, steps run as {who}"


def uid_pool(first: int, last: int) -> UidPool:
    """This process's leases on the uids ``first``..``last``."""
    with _pools_lock:
        pool = _pools.get((first, last))
        if pool is None:
            pool = _pools[(first, last)] = UidPool(first, last)
    return pool
