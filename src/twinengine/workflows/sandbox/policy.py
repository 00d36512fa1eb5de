"""What a sandboxed command may see and do, and what every sandbox of a server hides.

:class:`SandboxPolicy` is the boundary between the engine and a sandbox backend: the
command's working folder, the folders it may write, the files and folders it may read
(each a :class:`Mount`: a real path and where the command sees it), whether it may
use the network, and what it declared of its memory and time (``ramMax``, its time limit
times its cores). :class:`HostView` is what is the same for every command of one server: the
read-only system and Python folders that programs need, what is hidden even when it
lies inside them (the home, the configuration file), the folders whose files may be
made readable to the sandbox user (:mod:`.ownership`), that user (:class:`SandboxUser`)
and the range of user ids sandboxes take one of each (when the server runs as root),
how network-allowed commands reach out, and the size limits. :func:`host_view` builds
it from the settings.
"""

from __future__ import annotations

import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinengine.core.errors import ConfigError
from twinengine.workflows.sandbox.uids import check_range

#: system folders a program needs, shown read-only (symbolic links stay links)
SYSTEM_FOLDERS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
#: the variables every sandboxed command gets unless the tool sets its own
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


@dataclass(frozen=True)
class Mount:
    """A host path (``source``, followed to its real path) shown at ``dest``."""

    source: str
    dest: str


@dataclass(frozen=True)
class SandboxPolicy:
    """One command's view: where it works, what it may write, read and reach."""

    cwd: str
    writable: tuple[str, ...] = ()
    readonly: tuple[Mount, ...] = ()
    network: bool = False
    memory_mb: int = 0  # the tool's ramMax: its processes' data limit (0: none)
    cpu_seconds: float = 0  # CPU time a process may use (0: no limit)


@dataclass(frozen=True)
class SandboxUser:
    """The unprivileged account sandboxed commands run as when the server is root."""

    uid: int
    gid: int

    @classmethod
    def lookup(cls, spec: str) -> SandboxUser:
        """``nobody``, ``65534`` or ``65534:65534`` (a name takes the account's group)."""
        name, _, group = spec.strip().partition(":")
        try:
            if name.isdigit():
                uid, gid = int(name), int(name)
            else:
                entry = pwd.getpwnam(name)
                uid, gid = entry.pw_uid, entry.pw_gid
            if group:
                gid = int(group)
        except (KeyError, ValueError):
            raise ConfigError(
                f"unknown sandbox user {spec!r}",
                hint="set TWIN_SANDBOX_USER to an existing account (default nobody) or UID:GID",
            ) from None
        if uid == 0 or gid == 0:
            raise ConfigError(
                f"the sandbox user {spec!r} is root",
                hint="sandboxed steps must run as an unprivileged account, e.g. nobody",
            )
        return cls(uid, gid)

    def can_read(self, st: os.stat_result) -> bool:
        """Whether this user may read (and, for a folder, enter) what ``st`` describes
        (a negative uid: any user of the group that owns nothing)."""
        need = 0o5 if stat.S_ISDIR(st.st_mode) else 0o4
        if st.st_uid == self.uid and self.uid >= 0:
            return (st.st_mode >> 6) & need == need
        if st.st_gid == self.gid:
            return (st.st_mode >> 3) & need == need
        return st.st_mode & need == need


@dataclass(frozen=True)
class HostView:
    """What every sandbox of one server shows, hides and runs as."""

    home: str  # the server's home: never visible except for what a policy mounts
    system: tuple[str, ...]  # read-only system folders that exist here
    python: tuple[str, ...]  # read-only folders of the server's Python environment
    hidden: tuple[str, ...] = ()  # files masked even inside a visible folder
    grantable: tuple[str, ...] = ()  # folders whose files may be made readable to user
    user: SandboxUser | None = None  # None: the server is not root, commands run as it
    uids: tuple[int, int] | None = None  # root: each sandbox runs as one of these uids
    network: str = "slirp4netns"  # how network-allowed commands reach out (or "host")
    deny: tuple[str, ...] = ()  # IPv4 networks they never reach (besides the host's own)
    processes: int = 0  # processes of one sandbox (0: no limit)
    memory_mb: int = 0  # address space of one process (0: the machine's memory)
    file_mb: int = 0  # largest file (0: no limit)
    tmp_mb: int = 0  # size of its /tmp and /var/tmp (0: the kernel's default)

    @property
    def reader(self) -> SandboxUser | None:
        """Who every sandbox reads files as: the sandbox user, or — with a uid per
        sandbox — any member of its group."""
        if self.user is None or self.uids is None:
            return self.user
        return SandboxUser(-1, self.user.gid)


def inside(path: str, root: str) -> bool:
    """Whether ``path`` is ``root`` or lies under it (both absolute, normalised)."""
    return path == root or path.startswith(root.rstrip("/") + "/")


def related(path: str, other: str) -> bool:
    """Whether one of two paths contains the other."""
    return inside(path, other) or inside(other, path)


def python_folders(home: str) -> tuple[str, ...]:
    """The folders the server's Python needs: its prefixes, TwinEngine's source tree and
    the server's ``PYTHONPATH`` — never the home, a folder holding it, or ``/``."""
    import twinengine

    candidates = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix]
    candidates.append(str(Path(twinengine.__file__).resolve().parent.parent))
    candidates.extend(p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p)
    found: list[str] = []
    for candidate in candidates:
        real = os.path.realpath(candidate)
        if real == "/" or related(real, home) or not os.path.isdir(real):
            continue
        if any(inside(real, kept) for kept in found):
            continue
        found = [kept for kept in found if not inside(kept, real)] + [real]
    return tuple(sorted(found))


def host_view(settings: Any, user: SandboxUser | None) -> HostView:
    """The :class:`HostView` of a server with ``settings``."""
    home = os.path.realpath(settings.home)
    system = tuple(p for p in SYSTEM_FOLDERS if os.path.lexists(p))
    python = tuple(p for p in python_folders(home) if not any(inside(p, s) for s in system))
    hidden = [str(settings.config_file)] if getattr(settings, "config_file", None) else []
    grantable = [os.path.join(home, name) for name in ("uploads", "workflows", "runs", "store")]
    store = str(getattr(settings, "store", "") or "")
    if store.startswith("/"):
        grantable.append(os.path.realpath(store))
    uids = settings.sandbox_uids if user is not None else None
    if uids is not None:
        check_range(*uids)
    return HostView(
        home=home,
        system=system,
        python=python,
        hidden=tuple(os.path.realpath(h) for h in hidden),
        grantable=tuple(grantable),
        user=user,
        uids=uids,
        network=settings.sandbox_network,
        deny=tuple(settings.sandbox_network_deny),
        processes=settings.sandbox_processes,
        memory_mb=settings.sandbox_memory_mb,
        file_mb=settings.sandbox_file_mb,
        tmp_mb=settings.sandbox_tmp_mb,
    )
