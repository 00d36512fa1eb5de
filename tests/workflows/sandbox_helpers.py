"""What the sandbox tests share: who a sandboxed command runs as, a network peer (another
machine on a private link, made with a network namespace) and a connection probe."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from twinengine.core.settings import SANDBOX_UIDS


def sandbox_uid(uid: int | str, uids: tuple[int, int] | None = SANDBOX_UIDS) -> bool:
    """Whether ``uid`` is one a sandboxed command runs as: as root, one of ``uids`` (the
    default ``sandbox_uids``), or nobody without a range; else the server's own uid."""
    if os.geteuid() != 0:
        return int(uid) == os.getuid()
    if uids is None:
        return int(uid) == 65534
    return uids[0] <= int(uid) <= uids[1]


PEER_SERVER = """
import socket, sys
server = socket.create_server((sys.argv[1], 0))
print(server.getsockname()[1], flush=True)
while True:
    conn, _ = server.accept()
    conn.sendall(b"peer-hello")
    conn.close()
"""


@dataclass
class Peer:
    """Another machine on a private link: a TCP service at ``address``:``port`` that
    answers ``peer-hello``; ``host`` is this machine's address on the link."""

    address: str
    port: int
    host: str
    network: str


@contextlib.contextmanager
def network_peer() -> Iterator[Peer]:
    """A network namespace behind a veth pair, on a /30 of 198.51.100.0/24 (TEST-NET-2)
    picked by pid, with :data:`PEER_SERVER` in it; skips unless root with ``ip``."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("a network peer needs root and ip (iproute2)")
    tag = f"tw{os.getpid() % 100000}"
    base = 4 * (os.getpid() % 63 + 1)
    host, peer = f"198.51.100.{base + 1}", f"198.51.100.{base + 2}"
    commands = [
        ["ip", "netns", "add", tag],
        ["ip", "link", "add", f"{tag}a", "type", "veth", "peer", "name", f"{tag}b", "netns", tag],
        ["ip", "addr", "add", f"{host}/30", "dev", f"{tag}a"],
        ["ip", "link", "set", f"{tag}a", "up"],
        ["ip", "-n", tag, "addr", "add", f"{peer}/30", "dev", f"{tag}b"],
        ["ip", "-n", tag, "link", "set", f"{tag}b", "up"],
    ]
    server = None
    try:
        for command in commands:
            subprocess.run(command, check=True, capture_output=True)
        server = subprocess.Popen(
            ["ip", "netns", "exec", tag, sys.executable, "-c", PEER_SERVER, peer],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline())
        yield Peer(peer, port, host, f"198.51.100.{base}/30")
    finally:
        if server is not None:
            server.kill()
            server.wait()
        subprocess.run(["ip", "link", "del", f"{tag}a"], capture_output=True, check=False)
        subprocess.run(["ip", "netns", "del", tag], capture_output=True, check=False)


CONNECT = """
import socket, sys
for target in sys.argv[1:]:
    host, _, port = target.rpartition(":")
    try:
        if host[:1] in ("@", "/"):
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(3)
            sock.connect("\\0" + host[1:] if host[0] == "@" else host)
        else:
            sock = socket.create_connection((host, int(port)), 3)
    except OSError as exc:
        print("refused", target, type(exc).__name__, flush=True)
        continue
    try:
        sock.settimeout(1)
        answer = sock.recv(20).decode(errors="replace")
    except OSError:
        answer = ""
    print("CONNECTED", target, answer, flush=True)
"""


def connect_script(*targets: str) -> str:
    """A shell line printing ``CONNECTED target answer`` or ``refused target why`` for
    each ``host:port`` (``@name:`` an abstract unix socket, ``/path:`` a socket file)."""
    quoted = " ".join(targets)
    return f"python3 -c '{CONNECT}' {quoted}"
