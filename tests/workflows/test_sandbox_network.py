"""Network-allowed sandboxes: a namespace of their own, out through slirp4netns.

Real bubblewrap, real slirp4netns, a real peer (a network namespace behind a veth pair:
another machine on a private link): a step with the network reaches the peer, and not
the host's loopback (also through slirp's gateway and DNS aliases), the host's own
addresses (its interface, its side of the link) where a service listens on all
addresses, the host's abstract unix sockets, the link-local metadata address, nor the
networks of ``sandbox_network_deny``, and cannot remove those refusals; its
``resolv.conf`` names the host's name servers. A step without the network has none;
with ``sandbox_network = host`` a step shares the server's network (the unsafe choice);
without slirp4netns a network step fails with one message naming the fix; a time limit
and a cancel end slirp4netns with the sandbox.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import twinengine.core
from tests.workflows.sandbox_helpers import Peer, connect_script, network_peer
from twinengine.core import get_settings
from twinengine.workflows.executors.base import JobResult, JobSpec, run_blocking
from twinengine.workflows.executors.local import LocalExecutor
from twinengine.workflows.sandbox import probe

pytestmark = [
    pytest.mark.skipif(
        probe("bwrap", get_settings()) is not None, reason="bubblewrap cannot start here"
    ),
    pytest.mark.skipif(shutil.which("slirp4netns") is None, reason="slirp4netns not installed"),
]


def step(tmp_path: Path, key: str, script: str, network: bool = True) -> tuple[JobResult, str]:
    work = tmp_path / key
    work.mkdir()
    spec = JobSpec(
        key=key,
        argv=["sh", "-c", script],
        cwd=str(work),
        env={"PATH": "/usr/sbin:/usr/bin:/bin"},
        stdout_path=str(work / "out.txt"),
        stderr_path=str(work / "err.txt"),
        sandbox="bwrap",
        writable=(str(work),),
        network=network,
    )
    result = run_blocking(spec)
    out = (work / "out.txt").read_text() if (work / "out.txt").exists() else ""
    return result, out


class Services:
    """What a server's host offers locally: a TCP service on loopback, one on every
    address, and an abstract unix socket — each answering its name."""

    def __init__(self) -> None:
        self.loopback = socket.create_server(("127.0.0.1", 0))
        self.everywhere = socket.create_server(("0.0.0.0", 0))
        self.abstract = f"twin-net-test-{os.getpid()}"
        self.unix = socket.socket(socket.AF_UNIX)
        self.unix.bind("\0" + self.abstract)
        self.unix.listen()
        for sock, name in ((self.loopback, b"loopback"), (self.everywhere, b"everywhere"),
                           (self.unix, b"abstract")):  # fmt: skip
            threading.Thread(target=self._answer, args=(sock, name), daemon=True).start()

    @staticmethod
    def _answer(sock: socket.socket, name: bytes) -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            conn.sendall(name)
            conn.close()

    @property
    def port(self) -> int:
        return self.everywhere.getsockname()[1]

    def close(self) -> None:
        for sock in (self.loopback, self.everywhere, self.unix):
            sock.close()


@pytest.fixture(scope="module")
def services() -> Iterator[Services]:
    found = Services()
    yield found
    found.close()


@pytest.fixture(scope="module")
def peer() -> Iterator[Peer]:
    with network_peer() as found:
        yield found


def own_addresses() -> list[str]:
    """This machine's IPv4 addresses but loopback (``ip -4 -o addr``)."""
    shown = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    found = [line.split()[3].split("/")[0] for line in shown.splitlines()]
    return [address for address in found if not address.startswith("127.")]


def usable_nameservers() -> list[str]:
    """The host's name servers a sandbox may use: IPv4, not loopback, not the host."""
    own = own_addresses()
    found = []
    for line in Path("/etc/resolv.conf").read_text().splitlines():
        fields = line.split()
        server = fields[1] if len(fields) >= 2 and fields[0] == "nameserver" else ""
        if "." in server and not server.startswith("127.") and server not in own:
            found.append(server)
    return found


def seen(out: str) -> dict[str, str]:
    """``target -> 'CONNECTED answer' | 'refused why'`` from :func:`connect_script`."""
    found = {}
    for line in out.splitlines():
        verdict, _, rest = line.partition(" ")
        target, _, detail = rest.partition(" ")
        if verdict in ("CONNECTED", "refused"):
            found[target] = f"{verdict} {detail}".strip()
    return found


def test_a_network_step_reaches_other_machines_and_nothing_of_the_host(
    tmp_path: Path, services: Services, peer: Peer
) -> None:
    lo = services.loopback.getsockname()[1]
    hosts = [f"{address}:{services.port}" for address in own_addresses()]
    assert f"{peer.host}:{services.port}" in hosts  # the host's side of the link is its own
    targets = [
        f"{peer.address}:{peer.port}",
        f"127.0.0.1:{lo}",
        f"127.0.0.1:{services.port}",
        f"10.0.2.2:{lo}",  # slirp's gateway: the host's loopback unless disabled
        f"10.0.2.3:{lo}",  # slirp's DNS alias: forwards any port to the host's resolver
        *hosts,
        f"@{services.abstract}:",
        "169.254.169.254:80",
    ]
    script = connect_script(*targets)
    script += "; cat /etc/resolv.conf; ip route del prohibit 169.254.0.0/16 && echo REMOVED"
    result, out = step(tmp_path, "net", script)
    found = seen(out)
    assert found[targets[0]] == "CONNECTED peer-hello", out
    for target in targets[1:]:
        assert found[target].startswith("refused"), (target, out)
    assert found["169.254.169.254:80"] == "refused PermissionError"  # a prohibit route
    assert "REMOVED" not in out
    servers = [line.split()[1] for line in out.splitlines() if line.startswith("nameserver")]
    assert servers == usable_nameservers()[:3], out  # the host's, never loopback or slirp's
    assert result.exit_code != 0  # the last command (the route removal) failed


def test_sandbox_network_deny_closes_more_networks(
    tmp_path: Path, peer: Peer, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = f"{peer.address}:{peer.port}"
    private = "10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"  # slirp's own 10.0.2.0/24 stays
    monkeypatch.setenv("TWIN_SANDBOX_NETWORK_DENY", private)
    twinengine.core.reset()
    _, out = step(tmp_path, "private", connect_script(remote, "10.1.2.3:80") + "; ip route")
    assert seen(out)[remote] == "CONNECTED peer-hello", out
    assert seen(out)["10.1.2.3:80"] == "refused PermissionError", out
    for server in usable_nameservers():  # a name server in a closed network keeps a route
        if server.startswith(("10.", "192.168.")):
            assert f"{server} via 10.0.2.2 dev tap0" in out, out
    monkeypatch.setenv("TWIN_SANDBOX_NETWORK_DENY", f"192.0.2.0/24, {peer.network}")
    twinengine.core.reset()
    assert get_settings().sandbox_network_deny == ("192.0.2.0/24", peer.network)
    _, out = step(tmp_path, "denied", connect_script(remote))
    assert seen(out)[remote] == "refused PermissionError", out


def test_a_step_without_the_network_has_none(tmp_path: Path, peer: Peer) -> None:
    script = connect_script(f"{peer.address}:{peer.port}") + "; tail -n +3 /proc/net/dev"
    _, out = step(tmp_path, "offline", script, network=False)
    assert seen(out)[f"{peer.address}:{peer.port}"].startswith("refused"), out
    interfaces = [line.split(":")[0].strip() for line in out.splitlines()[1:]]
    assert interfaces == ["lo"], out  # no interface but its own loopback


def test_sandbox_network_host_shares_the_servers_network(
    tmp_path: Path, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWIN_SANDBOX_NETWORK", "host")
    twinengine.core.reset()
    lo = f"127.0.0.1:{services.loopback.getsockname()[1]}"
    _, out = step(tmp_path, "shared", connect_script(lo))
    assert seen(out)[lo] == "CONNECTED loopback", out  # the unsafe choice, as documented


def test_without_slirp4netns_a_network_step_fails_naming_the_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tools = tmp_path / "bin"  # this server's PATH: everything but slirp4netns
    tools.mkdir()
    for name in ("bwrap", "setpriv", "nsenter", "ip"):
        found = shutil.which(name)
        assert found is not None
        (tools / name).symlink_to(found)
    monkeypatch.setenv("PATH", str(tools))
    monkeypatch.setenv("TWIN_SANDBOX_TMP_MB", "1000")  # a sandbox made for this PATH
    twinengine.core.reset()
    result, out = step(tmp_path, "helpless", "echo RAN")
    assert result.exit_code == 127 and out == ""
    assert "slirp4netns was not found on PATH" in (result.error or "")
    assert "apt-get install slirp4netns" in (result.error or "")
    offline, out = step(tmp_path, "offline", "echo RAN", network=False)
    assert offline.exit_code == 0 and out == "RAN\n"  # steps without the network still run


def slirps() -> list[int]:
    """The slirp4netns processes this test process started that still exist."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if "(slirp4netns)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid():
            found.append(int(pid))
    return found


def test_a_time_limit_and_a_cancel_end_the_network_helper_too(tmp_path: Path) -> None:
    executor = LocalExecutor(cores=2, ram_mb=0)
    for key, limit in (("limited", 1.0), ("cancelled", None)):
        work = tmp_path / key
        work.mkdir()
        executor.submit(
            JobSpec(
                key=key,
                argv=["sh", "-c", f"sleep 303.{len(key)} & sleep 303.{len(key)}"],
                cwd=str(work),
                env={"PATH": "/usr/bin:/bin"},
                sandbox="bwrap",
                writable=(str(work),),
                network=True,
                timelimit=limit,
            )
        )
    assert len(slirps()) == 2  # one per network-allowed sandbox, while they run
    time.sleep(0.5)
    executor.cancel("cancelled")
    results: dict[str, JobResult] = {}
    deadline = time.monotonic() + 30
    while len(results) < 2 and time.monotonic() < deadline:
        for result in executor.wait(0.5):
            results[result.key] = result
    executor.close()
    assert results["limited"].timed_out and results["cancelled"].cancelled
    deadline = time.monotonic() + 5
    while slirps() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert slirps() == []
    commands = [Path(f"/proc/{p}/cmdline").read_bytes() for p in os.listdir("/proc")
                if p.isdigit() and Path(f"/proc/{p}/cmdline").exists()]  # fmt: skip
    assert not any(c.startswith(b"sleep\0303.") for c in commands)
