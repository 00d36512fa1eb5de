"""One user id per running sandbox, from the ``sandbox_uids`` range (root servers).

Steps of one server must not share a user: the kernel counts processes (RLIMIT_NPROC)
per user, so a fork bomb in one step would stop every other step's forks. A sandbox takes
a *lease* on a free uid of the range: an exclusive ``flock`` on the file named after the
uid in :data:`LEASES` (a root-only folder shared by every process of every server on the
machine). The lease's descriptor is handed to bubblewrap as ``--sync-fd``, which only
the sandbox's pid 1 (bwrap's own reaper, root, no capabilities, not the command) keeps
open: the lock lasts exactly as long as the sandbox does, however it ends, and a crashed
server leaks nothing. Each process hands the range out round-robin from a random start,
so a uid just released is the last to be taken again. :func:`check_range` refuses a
range that overlaps an account or a subordinate-id range of ``/etc/subuid`` (whose
owner could otherwise signal the steps from a rootless container).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import stat
import threading
import time

from twinengine.core.errors import ConfigError

#: where the leases live (``/run`` is root's and gone at reboot, like every lease)
LEASES = "/run/twinengine/sandbox-uids"
WAIT = 1.0  # seconds to wait for a uid when all are held


class SandboxBusyError(ConfigError):
    """Every uid of the range is held by a running sandbox."""


class UidPool:
    """Leases on the uids ``first``..``last`` (inclusive) for this process."""

    def __init__(self, first: int, last: int, folder: str = LEASES) -> None:
        self.first, self.last = first, last
        self.folder = folder
        self._next = random.randrange(first, last + 1)
        self._lock = threading.Lock()
        self._ready = False

    def take(self) -> tuple[int, int]:
        """``(uid, fd)``: a free uid and the descriptor holding its lease (close it once
        the sandbox has it; the lease ends when every copy is closed). When every uid is
        held, it waits up to :data:`WAIT` seconds for one (a sandbox ends a moment after
        its command: its pid 1 is killed when bubblewrap exits)."""
        self._prepare()
        deadline = time.monotonic() + WAIT
        while True:
            found = self._scan()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        size = self.last - self.first + 1
        raise SandboxBusyError(
            f"all {size} sandbox uids ({self.first}-{self.last}) are in use by running "
            "steps and functions",
            hint="wait for some to end, or give sandbox_uids a larger range",
        )

    def _scan(self) -> tuple[int, int] | None:
        """One round over the range from the cursor; None when every uid is held."""
        size = self.last - self.first + 1
        for _ in range(size):
            with self._lock:
                uid = self._next
                self._next = self.first if uid >= self.last else uid + 1
            fd = os.open(
                os.path.join(self.folder, str(uid)),
                os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                0o600,
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise
            return uid, fd
        return None

    def _prepare(self) -> None:
        """Make the lease folder (root's, 0700) once, and refuse one that is not."""
        if self._ready:
            return
        os.makedirs(self.folder, mode=0o700, exist_ok=True)
        st = os.lstat(self.folder)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise ConfigError(
                f"the sandbox uid lease folder {self.folder} is not a private folder of "
                "the server's user",
                hint=f"remove {self.folder}; twin serve makes it again (mode 0700)",
            )
        self._ready = True


def _ranges(path: str, column: int) -> list[tuple[str, int, int]]:
    """``(name, first, last)`` of ``/etc/passwd`` uids (column 2) or ``/etc/subuid``."""
    found = []
    try:
        with open(path, encoding="utf-8", errors="replace") as lines:
            for line in lines:
                fields = line.strip().split(":")
                if len(fields) < column + 2 or line.startswith("#"):
                    continue
                try:
                    first = int(fields[column])
                    count = int(fields[column + 1]) if column == 1 else 1
                except ValueError:
                    continue
                found.append((fields[0], first, first + count - 1))
    except OSError:
        pass
    return found


def check_range(
    first: int, last: int, passwd: str = "/etc/passwd", subuid: str = "/etc/subuid"
) -> None:
    """Refuse a uid range that a local account or a subordinate-id range uses."""
    for path, column in ((passwd, 2), (subuid, 1)):
        for name, low, high in _ranges(path, column):
            if low <= last and first <= high:
                what = "account" if column == 2 else "subordinate uids of"
                raise ConfigError(
                    f"sandbox_uids {first}-{last} overlaps the {what} {name!r} ({path})",
                    hint="give sandbox_uids a range of ids nothing else uses, e.g. "
                    "2000000000-2000065535",
                )
