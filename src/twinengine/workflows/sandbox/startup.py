"""Finishing a bubblewrap sandbox between its start and its command: limits, network.

bubblewrap is started with ``--info-fd`` (it writes the host pid of the sandbox's first
process there once the namespaces exist) and ``--block-fd`` (that process waits for one
byte before it starts the command). :meth:`Startup.finish`, called with bubblewrap's pid
right after it started, reads the pid, sets the :class:`~.limits.Limits` on that process
— the command and everything it starts inherit them —, brings up the network of a
network-allowed sandbox (:mod:`.network`), and only then lets the command run. If any of
that fails, the sandbox is killed before the byte is written (bubblewrap would take the
end of the pipe for the byte): a command never runs without its limits.
:meth:`Startup.abandon` frees the pipes when the start itself failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal

from twinengine.workflows.sandbox.limits import Limits
from twinengine.workflows.sandbox.network import SlirpNetwork


class Startup:
    """The pipes to one starting bubblewrap and what to do before its command runs."""

    def __init__(
        self,
        limits: Limits,
        network: SlirpNetwork | None = None,
        lease: int | None = None,
        resolv: bytes | None = None,
    ) -> None:
        self.limits = limits
        self.network = network
        self._info_r, self.info_w = os.pipe2(os.O_CLOEXEC)
        self.block_r, self._block_w = os.pipe2(os.O_CLOEXEC)
        self.lease = lease  # the uid lease bubblewrap's pid 1 keeps (``--sync-fd``)
        self.resolv_r: int | None = None
        if resolv is not None:  # what --ro-bind-data reads for /etc/resolv.conf
            self.resolv_r, resolv_w = os.pipe2(os.O_CLOEXEC)
            with os.fdopen(resolv_w, "wb") as data:
                data.write(resolv)

    @property
    def child_fds(self) -> tuple[int, ...]:
        """The descriptors bubblewrap inherits (the launcher closes its copies)."""
        fds = (self.info_w, self.block_r, self.lease, self.resolv_r)
        return tuple(fd for fd in fds if fd is not None)

    def started(self) -> None:
        """Close the launcher's copies of what bubblewrap now holds."""
        for fd in self.child_fds:
            os.close(fd)
        self.info_w = self.block_r = -1
        self.lease = self.resolv_r = None

    def finish(self, launcher: int) -> None:
        """Limits and network for the sandbox of bubblewrap process ``launcher``, then
        let its command run (see the module doc)."""
        child = None
        try:
            child = self._child_pid()
            if child is not None:
                self.limits.apply(child)
                if self.network is not None:
                    self.network.attach(launcher, child)
                os.write(self._block_w, b"1")
        except BaseException:
            _kill(launcher, child)
            raise
        finally:
            os.close(self._block_w)
            os.close(self._info_r)

    def abandon(self) -> None:
        """Free everything (bubblewrap did not start)."""
        if self.info_w != -1:
            self.started()
        os.close(self._block_w)
        os.close(self._info_r)

    def _child_pid(self) -> int | None:
        """The host pid of the sandbox's first process; None when bubblewrap failed
        before it made one (it exits with its own message)."""
        data = b""
        while not data.rstrip().endswith(b"}"):  # the whole object, not the end of the
            chunk = os.read(self._info_r, 4096)  # pipe: a forked child may hold a copy
            if not chunk:
                return None
            data += chunk
        return int(json.loads(data)["child-pid"])


def _kill(launcher: int, child: int | None) -> None:
    """Kill a sandbox that must not run: its first process (found among bubblewrap's
    children when its pid was not read yet — it would wait forever for the dead
    bubblewrap, holding its uid) and bubblewrap itself."""
    pids = [child] if child is not None else []
    listing = f"/proc/{launcher}/task/{launcher}/children"
    if child is None:
        with contextlib.suppress(OSError, ValueError), open(listing, encoding="ascii") as found:
            pids = [int(pid) for pid in found.read().split()]
    for pid in (*pids, launcher):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
