"""Who owns what a sandboxed command touches, when the server runs as root.

A sandboxed command runs as an unprivileged user — the sandbox user, or a uid of its
own with the sandbox user's group —, so what it must write is handed over to that user
(:func:`hand_over`: owner, mode 0700, the whole tree the engine staged in it) and what it
must read has to be readable by it. The server keeps its own
files private (umask 077), so a file it wrote that a command is given to read — an
upload, a script of a registered workflow, a log an earlier step captured — is made
readable to the sandbox user's group (:func:`grant_read`: the group, then ``g+r``, or
``g+rx`` for a folder) — but only inside the folders of the home meant for it
(:attr:`~.policy.HostView.grantable`): never ``twin.db``, the secret key or anything
outside the home. Symbolic links are never followed when owners or modes change.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from twinengine.workflows.sandbox.policy import HostView, Mount, SandboxUser, inside

_GRANTED_LIMIT = 4096  # real paths remembered as already readable (per process)
_granted: set[tuple[str, int]] = set()


def hand_over(folders: Iterable[str], user: SandboxUser) -> None:
    """Make ``folders`` and everything in them the sandbox user's (``folders`` 0700)."""
    for top in folders:
        os.chown(top, user.uid, user.gid, follow_symlinks=False)
        os.chmod(top, 0o700)
        for root, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)


def grant_read(mounts: Iterable[Mount], view: HostView) -> None:
    """Make the sources of ``mounts`` that lie in the grantable folders readable."""
    user = view.reader
    if user is None:
        return
    for mount in mounts:
        real = os.path.realpath(mount.source)
        if not any(inside(real, root) for root in view.grantable):
            continue
        try:
            st = os.stat(real)
        except OSError:
            continue  # a missing input fails in the command, with its own message
        key = (real, st.st_mtime_ns)
        if key in _granted:
            continue
        _grant(real, st, user)
        if stat.S_ISDIR(st.st_mode):
            for root, dirs, files in os.walk(real):
                for name in (*dirs, *files):
                    path = os.path.join(root, name)
                    entry = os.lstat(path)
                    if not stat.S_ISLNK(entry.st_mode):
                        _grant(path, entry, user)
        if len(_granted) > _GRANTED_LIMIT:
            _granted.clear()
        _granted.add(key)


def readable(path: str, user: SandboxUser) -> bool:
    """Whether ``user`` may read ``path`` and, for a folder, everything in it (links are
    not followed: what they lead to is checked where it is used)."""
    try:
        if not user.can_read(os.stat(path)):
            return False
        if os.path.isdir(path):
            for root, dirs, files in os.walk(path):
                for name in (*dirs, *files):
                    entry = os.lstat(os.path.join(root, name))
                    if not stat.S_ISLNK(entry.st_mode) and not user.can_read(entry):
                        return False
    except OSError:
        return False
    return True


def _grant(path: str, st: os.stat_result, user: SandboxUser) -> None:
    if user.can_read(st):
        return
    folder = stat.S_ISDIR(st.st_mode)
    if st.st_gid != user.gid:
        os.chown(path, -1, user.gid, follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(st.st_mode) | (0o050 if folder else 0o040))
