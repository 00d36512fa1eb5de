"""The bubblewrap backend: each command in new namespaces, as an unprivileged user.

``bwrap`` gives the command new mount, pid, ipc and uts namespaces (and a new network
namespace — no interface but its own loopback — unless the policy allows the network),
the file system of :func:`~.layout.plan`, an environment of exactly what the policy
gives (``--clearenv``), a new session (no ``TIOCSTI`` into the server's terminal) and
death with its parent.

Who the command runs as: a server that is not root starts ``bwrap`` as itself in a new
user namespace that cannot make further ones (``--disable-userns``). A server that runs
as root cannot simply start bwrap as ``nobody``: bwrap 0.8 resolves every folder it
binds (also those given as ``--bind-fd``) with ``realpath`` as the calling user, and
``nobody`` cannot enter the server's 0700 home. So bwrap runs as root without a user
namespace, keeping only the capabilities to enter the command's (0700, sandbox user's)
folder and to change user, and the command inside is started through ``setpriv``, which
drops to the sandbox user and group with no supplementary groups, no capabilities and
``no_new_privs`` (set-user-ID programs and file capabilities grant nothing) before
anything of the tool runs. Files the server owns with mode 0600/0640 (``/etc/shadow``,
``twin.db``) stay unreadable inside.
"""

from __future__ import annotations

import os
import shutil

from twinengine.workflows.sandbox.base import Launch, Sandbox
from twinengine.workflows.sandbox.layout import plan
from twinengine.workflows.sandbox.policy import HostView, SandboxPolicy

_SIMPLE = {"proc": "--proc", "dev": "--dev", "tmpfs": "--tmpfs", "dir": "--dir"}


class BwrapSandbox(Sandbox):
    """Confine commands with bubblewrap (Debian package ``bubblewrap``)."""

    name = "bwrap"

    def __init__(self, view: HostView) -> None:
        super().__init__(view)
        self.bwrap = shutil.which("bwrap") or "bwrap"
        self.setpriv = shutil.which("setpriv") or "setpriv"

    def probe(self) -> str | None:
        if shutil.which("bwrap") is None:
            return "bwrap is not installed"
        if self.view.user is not None and shutil.which("setpriv") is None:
            return "setpriv (util-linux) is not installed"
        return super().probe()

    def command(self, argv: list[str], env: dict[str, str], policy: SandboxPolicy) -> Launch:
        args = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--hostname", "sandbox"]
        if not policy.network:
            args.append("--unshare-net")
        user = self.view.user
        if user is None:
            args += ["--unshare-user", "--disable-userns"]
        else:
            args += ["--cap-drop", "ALL"]  # but what entering the 0700 folder and setpriv need
            args += ["--cap-add", "CAP_DAC_OVERRIDE", "--cap-add", "CAP_SETUID"]
            args += ["--cap-add", "CAP_SETGID"]
        for op in plan(self.view, policy):
            if op.kind in _SIMPLE:
                args += [_SIMPLE[op.kind], op.dest]
            elif op.kind == "ro":
                args += ["--ro-bind", op.source, op.dest]
            elif op.kind == "rw":
                args += ["--bind", op.source, op.dest]
            elif op.kind == "symlink":
                args += ["--symlink", op.source, op.dest]
            elif op.kind == "mask":
                args += ["--ro-bind", os.devnull, op.dest]
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--chdir", policy.cwd, "--"]
        if user is not None:
            args += [
                self.setpriv,
                f"--reuid={user.uid}",
                f"--regid={user.gid}",
                "--clear-groups",
                "--inh-caps=-all",
                "--no-new-privs",
                "--",
            ]
        return Launch([*args, *argv], {})
