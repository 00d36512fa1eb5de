"""The network of a network-allowed sandbox: its own namespace, out through slirp4netns.

A command that may use the network (``NetworkAccess``, a function's ``network: true``)
still gets a network namespace of its own, never the server's: :meth:`SlirpNetwork.attach`
starts ``slirp4netns`` (Debian package ``slirp4netns``) against it while bubblewrap holds
the command, and the command starts once the network is up. slirp4netns connects to the
outside with ordinary sockets of the server's host, so the sandbox reaches what the host
reaches — except:

- the host's loopback (``--disable-host-loopback``: no ``127.0.0.1`` service, no gateway
  alias of it) and its abstract unix sockets (they belong to the host's namespace);
- slirp's DNS alias (``--disable-dns``: it would forward any port to the host's resolver);
  the sandbox's ``/etc/resolv.conf`` names the host's own name servers instead, those that
  are neither loopback nor the host itself (with systemd-resolved's stub: its upstreams);
- every address of the host itself (read from ``/proc/net/fib_trie`` at each start), the
  link-local ``169.254.0.0/16`` (cloud metadata services) and the ``sandbox_network_deny``
  networks: each is a ``prohibit`` route in the sandbox's namespace (connecting fails at
  once with ``EACCES``), which the command — without capabilities there — cannot remove.
  A listed name server inside those networks keeps a route of its own.

IPv6 is not offered. slirp4netns runs with ``--enable-seccomp`` (and, on a root server,
``--enable-sandbox``: its own mount namespace, capabilities dropped) and ends with the
sandbox (``--exit-fd``: a pidfd of bubblewrap's process, readable once it is reaped).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import select
import shutil
import subprocess
import threading

from twinengine.core.errors import ConfigError
from twinengine.workflows.sandbox.policy import HostView

GATEWAY = "10.0.2.2"  # slirp4netns' default network is 10.0.2.0/24
ADDRESS = "10.0.2.100/24"  # the sandbox's address in it (slirp4netns' own choice)
ALWAYS_DENIED = ("169.254.0.0/16",)
READY_TIMEOUT = 10.0  # seconds slirp4netns may take to bring the interface up
RESOLVERS = ("/etc/resolv.conf", "/run/systemd/resolve/resolv.conf")
NS_GET_USERNS = 0xB701  # ioctl: the user namespace owning a namespace (linux/nsfs.h)


class SandboxNetworkError(ConfigError):
    """A command may use the network and its sandbox cannot give it one safely."""


def host_addresses() -> list[str]:
    """The IPv4 addresses of this host (every interface), but loopback."""
    found: list[str] = []
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as trie:
            last = ""
            for line in trie:
                text = line.strip()
                if text.startswith("|-- "):
                    last = text[4:]
                elif text.endswith("host LOCAL") and last and not last.startswith("127."):
                    prefix = text.split()[0]  # "/32"
                    network = f"{last}{prefix}" if prefix.startswith("/") else last
                    if network not in found:
                        found.append(network)
    except OSError:
        pass
    return found


def nameservers(local: list[str]) -> list[str]:
    """The host's name servers a sandbox may use: not loopback, not the host itself."""
    hosts = [ipaddress.ip_network(n, strict=False) for n in local]
    for path in RESOLVERS:
        listed = []
        try:
            with open(path, encoding="utf-8", errors="replace") as conf:
                for line in conf:
                    fields = line.split()
                    if len(fields) >= 2 and fields[0] == "nameserver":
                        listed.append(fields[1])
        except OSError:
            continue
        usable = []
        for text in listed:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            local = address.is_loopback or any(address in host for host in hosts)
            if address.version == 4 and not local:
                usable.append(text)
        if usable or any(not _loopback(n) for n in listed):
            return usable  # a resolver file of real servers: take it as it is
    return []


def _loopback(text: str) -> bool:
    try:
        return ipaddress.ip_address(text).is_loopback
    except ValueError:
        return False


class SlirpNetwork:
    """Networks of a server's network-allowed sandboxes (``sandbox_network = slirp4netns``)."""

    def __init__(self, view: HostView) -> None:
        self.view = view
        self.slirp = shutil.which("slirp4netns")
        self.nsenter = shutil.which("nsenter")
        self.ip = shutil.which("ip")

    def why_not(self) -> str | None:
        """None when network-allowed sandboxes can be started; else what is missing."""
        if self.slirp is None:
            return "slirp4netns was not found on PATH"
        if self.nsenter is None or self.ip is None:
            return "nsenter (util-linux) or ip (iproute2) was not found on PATH"
        return None

    def check(self) -> None:
        """Refuse (:class:`SandboxNetworkError`) when :meth:`why_not` says so."""
        why = self.why_not()
        if why is not None:
            raise SandboxNetworkError(
                f"this step may use the network and the server gives network-allowed "
                f"steps a network of their own through slirp4netns, but {why}",
                hint="install it (apt-get install slirp4netns iproute2), or set "
                "sandbox_network = host to share the server's network (unsafe on a shared "
                "server: steps then reach its loopback services)",
            )

    def resolv_conf(self) -> bytes:
        """The ``/etc/resolv.conf`` a network-allowed sandbox sees."""
        servers = nameservers(host_addresses())
        lines = [f"nameserver {server}" for server in servers[:3]]
        lines = lines or ["# no name server is reachable from the sandbox"]
        return ("\n".join(lines) + "\n").encode()

    def attach(self, launcher: int, child: int) -> None:
        """Give the namespace of the sandbox whose pid 1 is ``child`` (bubblewrap's
        process ``launcher``) its interface, then its refusals; the command waits.

        The namespace is held by a descriptor from the start (no pid is looked up
        twice). A server that is not root enters the user namespace that owns it (asked
        of the namespace itself, ``NS_GET_USERNS``: bubblewrap nests a second one for
        ``--disable-userns`` meanwhile), and slirp4netns runs without its own sandbox
        there (it would need root in that user namespace)."""
        self.check()
        netns = os.open(f"/proc/{child}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        owner = None
        try:
            if self.view.user is None:
                owner = fcntl.ioctl(netns, NS_GET_USERNS)
            self._start_slirp(launcher, child, owner)
            self._configure(netns, owner)
        finally:
            os.close(netns)
            if owner is not None:
                os.close(owner)

    def _start_slirp(self, launcher: int, child: int, owner: int | None) -> None:
        """slirp4netns on the sandbox's namespace, once its interface is there."""
        assert self.slirp is not None
        rootless = [] if owner is None else [f"--userns-path=/proc/self/fd/{owner}"]
        ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
        exit_fd = os.pidfd_open(launcher)
        try:
            proc = subprocess.Popen(
                [self.slirp, "--mtu=65520", "--disable-host-loopback", "--disable-dns",
                 "--enable-seccomp", *(["--enable-sandbox"] if owner is None else rootless),
                 f"--ready-fd={ready_w}", f"--exit-fd={exit_fd}", str(child), "tap0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                pass_fds=(ready_w, exit_fd) if owner is None else (ready_w, exit_fd, owner),
            )  # fmt: skip
        finally:
            os.close(ready_w)
            os.close(exit_fd)
        try:
            poller = select.poll()  # not select(): a server may hold more than 1024 files
            poller.register(ready_r, select.POLLIN)
            ready = poller.poll(READY_TIMEOUT * 1000)
            up = bool(ready) and os.read(ready_r, 1) == b"1"
        finally:
            os.close(ready_r)
        if not up:
            proc.kill()
            _, err = proc.communicate()
            why = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no answer"]
            raise SandboxNetworkError(f"slirp4netns could not start the network: {why[0]}")
        threading.Thread(target=_reap, args=(proc,), daemon=True).start()

    def _configure(self, netns: int, owner: int | None) -> None:
        """Bring the interface up with slirp's address and gateway, then add the
        ``prohibit`` routes (and the name servers' exceptions). Not slirp4netns'
        ``--configure``: it also sets the loopback up, racing bubblewrap, which is
        setting up the same loopback at that moment."""
        assert self.nsenter is not None and self.ip is not None
        local = host_addresses()
        denied = [*local, *ALWAYS_DENIED, *self.view.deny]
        networks = [ipaddress.ip_network(n, strict=False) for n in denied]
        lines = [
            "link set tap0 mtu 65520 up",
            f"addr add {ADDRESS} dev tap0",
            f"route add default via {GATEWAY} dev tap0",
        ]
        lines += [f"route replace prohibit {network}" for network in dict.fromkeys(denied)]
        for server in nameservers(local):
            if any(ipaddress.ip_address(server) in network for network in networks):
                lines.append(f"route replace {server}/32 via {GATEWAY} dev tap0")
        enter = [self.nsenter, f"--net=/proc/self/fd/{netns}"]
        if owner is not None:
            enter += [f"--user=/proc/self/fd/{owner}", "--preserve-credentials"]
        done = subprocess.run(
            [*enter, self.ip, "-4", "-batch", "-"],
            input="\n".join(lines).encode() + b"\n",
            capture_output=True,
            timeout=READY_TIMEOUT,
            check=False,
            pass_fds=(netns,) if owner is None else (netns, owner),
        )
        if done.returncode != 0:
            why = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["?"]
            raise SandboxNetworkError(f"cannot set up the sandbox's network: {why[0]}")


def _reap(proc: subprocess.Popen[bytes]) -> None:
    """Wait for a slirp4netns (it ends with its sandbox) so that it leaves no zombie."""
    proc.communicate()
