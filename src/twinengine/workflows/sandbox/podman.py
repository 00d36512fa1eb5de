"""The container backend: each command in a podman container built from the host's folders.

No registry is needed: the container's image is an empty root (``localhost/twin-sandbox``,
imported once from a tar holding only the ``/bin -> usr/bin`` style links), and the
tree of :func:`~.layout.plan` is mounted into it — the system and Python folders
read-only, the policy's folders, tmpfs for ``/tmp`` and the home when masked. The
command runs as the sandbox user (root server) with every capability dropped,
``no-new-privileges``, no network (``--network none``) unless the policy allows it (then
podman's own slirp4netns without the host's loopback, or ``host`` with
``sandbox_network = host``), an init process that forwards signals, the limits of
:mod:`.limits` as ``--pids-limit`` and ``--ulimit`` (the container is the unit, so no
uid of its own is needed), and exactly the policy's environment (podman adds
``container=podman`` and ``HOSTNAME``). A rootless server runs it as itself
(``--userns keep-id``).

Limits: a container costs a few hundred milliseconds to start (bubblewrap: a few);
cancelling kills the ``podman`` process, whose ``SIGTERM`` reaches the command (signal
proxy) — a command that ignores it may outlive the cancel; paths with ``:`` or ``,``
cannot be mounted; a network-allowed container reaches the host's own non-loopback
addresses (the bwrap backend refuses them). This backend is built and its command line
tested here, but podman was not installed on the development machine, so it has not run
a step end to end.
"""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

from twinengine.core.errors import ConfigError
from twinengine.workflows.sandbox.base import Launch, Sandbox, SandboxedCommand
from twinengine.workflows.sandbox.layout import plan
from twinengine.workflows.sandbox.limits import limits_for
from twinengine.workflows.sandbox.policy import HostView, SandboxPolicy
from twinengine.workflows.sandbox.programs import find_program, not_found

IMAGE = "localhost/twin-sandbox:2"
_SLIRP = "slirp4netns:allow_host_loopback=false,enable_ipv6=false"


def _limits(view: HostView, policy: SandboxPolicy) -> list[str]:
    """The :mod:`.limits` of a command as podman options (per container)."""
    limits = limits_for(view, policy)
    args = ["--ulimit", "core=0:0", "--ulimit", f"as={limits.memory}:{limits.memory}"]
    if limits.data:
        args += ["--ulimit", f"data={limits.data}:{limits.data}"]
    if view.processes:
        args += ["--pids-limit", str(view.processes)]
    if limits.file_size:
        args += ["--ulimit", f"fsize={limits.file_size}:{limits.file_size}"]
    if limits.cpu:
        args += ["--ulimit", f"cpu={limits.cpu}:{limits.cpu + 5}"]
    return args


def empty_root(view: HostView) -> bytes:
    """A tar of an empty root holding the system folders that are links on this host,
    and ``/var/tmp`` leading to ``/tmp``."""
    links = [(f, os.readlink(f)) for f in view.system if os.path.islink(f)]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        var = tarfile.TarInfo("var")
        var.type, var.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(var)
        for path, target in [*links, ("/var/tmp", "../tmp")]:
            link = tarfile.TarInfo(path.lstrip("/"))
            link.type = tarfile.SYMTYPE
            link.linkname = target
            tar.addfile(link)
    return buffer.getvalue()


class PodmanSandbox(Sandbox):
    """Confine commands in podman containers (Debian packages ``podman`` and ``runc``)."""

    name = "podman"

    def __init__(self, view: HostView) -> None:
        super().__init__(view)
        self.podman = find_program("podman") or "podman"
        self._base = [self.podman]
        if os.geteuid() == 0 and find_program("runc"):
            self._base += ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]

    def confine(self, cmd: SandboxedCommand) -> Launch:
        argv, env, policy, user = cmd.argv, cmd.env, cmd.policy, cmd.user
        args = [*self._base, "run", "--rm", "--init", "--interactive"]
        args += ["--cap-drop", "all", "--security-opt", "no-new-privileges"]
        network = "none"
        if policy.network:
            network = "host" if self.view.network == "host" else _SLIRP
        args += ["--network", network, "--hostname", "sandbox"]
        args += ["--ipc", "private", "--pull", "never", "--workdir", policy.cwd]
        args += _limits(self.view, policy)
        if user is not None:
            args += ["--user", f"{user.uid}:{user.gid}"]
        elif os.geteuid() != 0:
            args += ["--userns", "keep-id"]
        for op in plan(self.view, policy):
            if {":", ","} & set(op.source + op.dest):
                raise ConfigError(
                    f"the podman sandbox cannot mount a path with ':' or ',' ({op.dest!r})",
                    hint="use TWIN_SANDBOX=bwrap, or paths without those characters",
                )
            if op.kind in ("ro", "rw"):
                args += ["--volume", f"{op.source}:{op.dest}:{op.kind},rbind"]
            elif op.kind == "scratch":
                size = f",size={self.view.tmp_mb}m" if self.view.tmp_mb else ""
                args += ["--tmpfs", f"{op.dest}:rw,nosuid,nodev,mode=1777{size}"]
            elif op.kind == "tmpfs":
                args += ["--tmpfs", f"{op.dest}:ro,nosuid,nodev,mode=755,size=1m"]
            elif op.kind == "mask":
                args += ["--volume", f"{os.devnull}:{op.dest}:ro"]
            # proc, dev, dir and links: podman makes /proc and /dev, and mount points
        for key, value in env.items():
            args += ["--env", f"{key}={value}"]
        return Launch([*args, IMAGE, *argv], {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}, user=user)

    def probe(self) -> str | None:
        if find_program("podman") is None:
            return not_found("podman", "podman")
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": os.environ.get("HOME", "/")}
        have = subprocess.run(
            [*self._base, "image", "exists", IMAGE], env=env, capture_output=True, check=False
        )
        if have.returncode != 0:
            made = subprocess.run(
                [*self._base, "import", "-", IMAGE],
                input=empty_root(self.view),
                env=env,
                capture_output=True,
                check=False,
            )
            if made.returncode != 0:
                return made.stderr.decode("utf-8", "replace").strip() or "podman import failed"
        return super().probe()
