"""The bubblewrap backend: each command in new namespaces, as an unprivileged user.

``bwrap`` gives the command new mount, pid, ipc, uts and network namespaces, the file
system of :func:`~.layout.plan` (its ``/tmp`` and ``/var/tmp`` of ``sandbox_tmp_mb``), an
environment of exactly what the policy gives (``--clearenv``), a new session (no
``TIOCSTI`` into the server's terminal) and death with its parent. A command that may
use the network gets its own namespace too, connected through slirp4netns
(:mod:`.network`) — or, with ``sandbox_network = host``, the server's. bubblewrap holds
the command until :mod:`.startup` has set its limits and network (``--info-fd``,
``--block-fd``).

Who the command runs as: a server that is not root starts ``bwrap`` as itself in a new
user namespace that cannot make further ones (``--disable-userns``). A server that runs
as root cannot simply start bwrap as ``nobody``: bwrap 0.8 resolves every folder it
binds (also those given as ``--bind-fd``) with ``realpath`` as the calling user, and
``nobody`` cannot enter the server's 0700 home (nor can bwrap switch user itself once in
a user namespace: it drops the capability to change group first). So bwrap runs as root
without a user namespace, keeping only the capabilities to enter the command's (0700,
sandbox user's) folder and to change user, and the command inside is started through
``setpriv``, which drops to the command's user — a uid of its own from ``sandbox_uids``,
whose lease (:mod:`.uids`) bwrap's pid 1 holds as its ``--sync-fd`` — and the sandbox
user's group, with no supplementary groups, no capabilities and ``no_new_privs``
(set-user-ID programs and file capabilities grant nothing) before anything of the tool
runs. Files the server owns with mode 0600/0640 (``/etc/shadow``, ``twin.db``) stay
unreadable inside.
"""

from __future__ import annotations

import os

from twinengine.workflows.sandbox.base import Launch, Sandbox, SandboxedCommand
from twinengine.workflows.sandbox.layout import plan
from twinengine.workflows.sandbox.limits import MIB, limits_for
from twinengine.workflows.sandbox.network import SlirpNetwork
from twinengine.workflows.sandbox.policy import HostView, SandboxPolicy, SandboxUser
from twinengine.workflows.sandbox.programs import find_program, not_found
from twinengine.workflows.sandbox.startup import Startup

_SIMPLE = {"proc": "--proc", "dev": "--dev", "dir": "--dir"}


def resolv_conf_path() -> str:
    """Where the sandbox's ``/etc/resolv.conf`` is bound: the file itself, or where a
    link there leads (bwrap cannot bind onto a link whose target is not in the sandbox)."""
    return os.path.realpath("/etc/resolv.conf")


class BwrapSandbox(Sandbox):
    """Confine commands with bubblewrap (Debian package ``bubblewrap``)."""

    name = "bwrap"
    leases_uids = True

    def __init__(self, view: HostView) -> None:
        super().__init__(view)
        self.bwrap = find_program("bwrap") or "bwrap"
        found = find_program("setpriv")  # runs inside: where a link on PATH leads
        self.setpriv = os.path.realpath(found) if found else "setpriv"
        self.network = SlirpNetwork(view)

    def probe(self) -> str | None:
        if find_program("bwrap") is None:
            return not_found("bwrap", "bubblewrap")
        if self.view.user is not None and find_program("setpriv") is None:
            return not_found("setpriv", "util-linux")
        return super().probe()

    def confine(self, cmd: SandboxedCommand) -> Launch:
        argv, env, policy, user, lease = cmd.argv, cmd.env, cmd.policy, cmd.user, cmd.lease
        slirp = policy.network and self.view.network != "host"
        limits = limits_for(self.view, policy)
        if slirp:
            self.network.check()
            resolv = self.network.resolv_conf() if os.path.exists("/etc/resolv.conf") else None
            startup = Startup(limits, self.network, lease, resolv)
        else:
            startup = Startup(limits, lease=lease)
        try:
            args = self._args(policy, user, lease, startup)
        except BaseException:
            startup.abandon()
            raise
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
        return Launch([*args, *argv], {}, user=user, startup=startup)

    def _args(
        self, policy: SandboxPolicy, user: SandboxUser | None, lease: int | None, startup: Startup
    ) -> list[str]:
        """bwrap's options: namespaces, descriptors, capabilities and the file system."""
        args = [self.bwrap, "--die-with-parent", "--new-session", "--clearenv"]
        args += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
        args += ["--hostname", "sandbox", "--info-fd", str(startup.info_w)]
        args += ["--block-fd", str(startup.block_r)]
        if lease is not None:
            args += ["--sync-fd", str(lease)]
        if not policy.network or startup.network is not None:
            args.append("--unshare-net")
        if user is None:
            args += ["--unshare-user", "--disable-userns"]
        else:
            args += ["--cap-drop", "ALL"]  # but what entering the 0700 folder and setpriv need
            args += ["--cap-add", "CAP_DAC_OVERRIDE", "--cap-add", "CAP_SETUID"]
            args += ["--cap-add", "CAP_SETGID"]
        tmp_size = ["--size", str(self.view.tmp_mb * MIB)] if self.view.tmp_mb else []
        for op in plan(self.view, policy):
            if op.kind in _SIMPLE:
                args += [_SIMPLE[op.kind], op.dest]
            elif op.kind == "scratch":
                args += [*tmp_size, "--perms", "1777", "--tmpfs", op.dest]
            elif op.kind == "tmpfs":
                args += ["--size", str(MIB), "--tmpfs", op.dest]
            elif op.kind == "ro":
                args += ["--ro-bind", op.source, op.dest]
            elif op.kind == "rw":
                args += ["--bind", op.source, op.dest]
            elif op.kind == "symlink":
                args += ["--symlink", op.source, op.dest]
            elif op.kind == "mask":
                args += ["--ro-bind", os.devnull, op.dest]
        if startup.resolv_r is not None:
            args += ["--perms", "0644", "--ro-bind-data", str(startup.resolv_r)]
            args.append(resolv_conf_path())
        return args

    def describe(self) -> str:
        text = super().describe()
        if self.view.user is not None and self.view.uids is not None:
            first, last = self.view.uids
            text = f"{self.name}, steps run each as a uid of {first}-{last}"
        if self.view.network == "host":
            return text + "; network-allowed steps share the server's network (UNSAFE)"
        why = self.network_problem()
        if why is not None:
            return text + f"; network-allowed steps fail ({why})"
        return text + "; network-allowed steps go out through slirp4netns"

    def network_problem(self) -> str | None:
        return None if self.view.network == "host" else self.network.why_not()
