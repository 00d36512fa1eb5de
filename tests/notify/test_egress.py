"""The connection check of deliveries (:mod:`twinengine.notify.egress`) with real sockets:
inside ``public_only`` nothing reaches loopback, a private address or a local socket —
by name or by address, TCP or UDP, in the delivering thread or a worker it hands its
context to — and outside it every connection is as before."""

from __future__ import annotations

import contextvars
import socket
import tempfile
import threading
from pathlib import Path

import httpx
import pytest
import requests

from tests.notify.conftest import Receiver
from twinengine.notify.addresses import addresses_of, refusal
from twinengine.notify.egress import public_only


@pytest.fixture(autouse=True)
def private_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TWIN_NOTIFY_PRIVATE_TARGETS", raising=False)


def test_inside_nothing_reaches_the_servers_network(tmp_path: Path) -> None:
    peer = Receiver().start()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.settimeout(0.3)
    folder = Path(tempfile.mkdtemp(prefix="egress-", dir="/tmp"))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(folder / "s"))
    unix.listen()
    try:
        with public_only("a test") as egress:
            with pytest.raises(httpx.ConnectError):
                httpx.post(f"http://127.0.0.1:{peer.port}/a", timeout=5)
            with pytest.raises(requests.ConnectionError):
                requests.post(f"http://localhost:{peer.port}/b", timeout=5)
            with pytest.raises(PermissionError):
                socket.create_connection(("localhost", peer.port), timeout=5)
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out,
                pytest.raises(PermissionError),
            ):
                out.sendto(b"x", udp.getsockname())
            with socket.socket(socket.AF_UNIX) as local, pytest.raises(PermissionError):
                local.connect(str(folder / "s"))
            failures: list[BaseException] = []

            def worker() -> None:  # a worker given the delivery's context (as Apprise does)
                try:
                    socket.create_connection(("127.0.0.1", peer.port), timeout=5)
                except OSError as exc:
                    failures.append(exc)

            thread = threading.Thread(target=contextvars.copy_context().run, args=(worker,))
            thread.start()
            thread.join()
            assert isinstance(failures[0], PermissionError)
        assert len(egress.refused) == 6
        assert peer.attempts == {}
        with pytest.raises(TimeoutError):
            udp.recvfrom(10)
        # outside the check every connection works as before
        assert httpx.post(f"http://127.0.0.1:{peer.port}/c", timeout=5).status_code == 200
        with socket.socket(socket.AF_UNIX) as local:
            local.connect(str(folder / "s"))
    finally:
        peer.stop()
        udp.close()
        unix.close()


def test_private_targets_allowed_by_the_operator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWIN_NOTIFY_PRIVATE_TARGETS", "1")
    peer = Receiver().start()
    try:
        with public_only("a test") as egress:
            assert httpx.post(f"http://127.0.0.1:{peer.port}/a", timeout=5).status_code == 200
        assert egress.refused == []
    finally:
        peer.stop()


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:7f00:1]",
        "[0:0:0:0:0:0:0:1]",
        "[::]",
        "fe80::1%25eth0",
        "[fe80::1%eth0]",
        "[64:ff9b::a00:1]",
        "[64:ff9b:1::1]",
        "[2002:a00:1::]",
        "[::ffff:0:a00:1]",
        "[::a00:1]",
        "[fd00::1]",
        "[fec0::1]",
        "[ff02::1]",
        "2130706433",
        "0x7f.1",
        "0177.0.0.1",
        "127.1",
        "10.1",
        "100.64.0.1",
        "169.254.169.254",
        "192.0.2.1",
        "localhost",
    ],
)
def test_every_spelling_of_a_private_host_is_refused(host: str) -> None:
    found = addresses_of(host)
    assert found and any(refusal(a) for a in found), (host, found)


@pytest.mark.parametrize("host", ["8.8.8.8", "[2606:4700:4700::1111]", "[2a00:1450:4001::1]"])
def test_public_addresses_pass(host: str) -> None:
    assert [refusal(a) for a in addresses_of(host)] == [None]
