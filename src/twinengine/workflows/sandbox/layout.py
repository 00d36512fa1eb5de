"""The file system a sandboxed command sees, as an ordered list of mount operations.

Every backend shows the same tree, built by :func:`plan` from the server's
:class:`~.policy.HostView` and the command's :class:`~.policy.SandboxPolicy`: an empty
root; the system folders read-only (symbolic links such as ``/bin -> usr/bin`` kept as
links); a fresh ``/proc``, a minimal ``/dev``, an empty, writable ``/tmp`` (mode 1777,
of ``sandbox_tmp_mb``; ``/var/tmp`` leads there); the
server's Python environment read-only; the home and the configuration file masked if
they lie inside something visible; then the policy's folders — writable ones, and the
inputs read-only at the paths the command knows them by — parents before children, with
the folders leading to each created (mode 0755) where nothing is mounted. Nothing else
of the host exists inside: not ``/home``, ``/root``, ``/run``, other runs or the home.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from twinengine.workflows.sandbox.policy import HostView, SandboxPolicy, inside

BIND_KINDS = ("ro", "rw")


@dataclass(frozen=True)
class Op:
    """One step of building the tree: ``kind`` is ``ro``/``rw`` (bind ``source`` at
    ``dest``), ``symlink`` (``source`` is the link's text), ``scratch`` (an empty
    folder every user may write, like ``/tmp``), ``tmpfs`` (an empty folder over
    ``dest``), ``dir``, ``proc``, ``dev`` or ``mask`` (an empty file over ``dest``)."""

    kind: str
    dest: str
    source: str = ""


def _depth_key(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.split("/") if part)


def plan(view: HostView, policy: SandboxPolicy) -> list[Op]:
    """The mount operations of one command, in the order they must be applied."""
    ops = list(_base(view))
    wanted = [Op("rw", p, p) for p in policy.writable]
    wanted += [Op("ro", m.dest, m.source) for m in policy.readonly if os.path.exists(m.source)]
    seen = {op.dest for op in ops}
    unique: list[Op] = []
    for op in wanted:
        if op.dest not in seen:
            seen.add(op.dest)
            unique.append(op)
    unique.sort(key=lambda op: _depth_key(op.dest))
    for op in unique:
        ops += _parents(ops, op.dest)
        ops.append(op)
    return ops


@functools.lru_cache(maxsize=8)
def _base(view: HostView) -> tuple[Op, ...]:
    """What every command of a server sees: system, devices, Python, masks."""
    ops: list[Op] = []
    for folder in view.system:
        if os.path.islink(folder):
            ops.append(Op("symlink", folder, os.readlink(folder)))
        elif os.path.isdir(folder):
            ops.append(Op("ro", folder, folder))
    ops += [Op("proc", "/proc"), Op("dev", "/dev"), Op("scratch", "/tmp")]
    ops += [Op("dir", "/var"), Op("symlink", "/var/tmp", "../tmp")]  # one mount fewer
    for folder in view.python:
        ops += _parents(ops, folder)
        ops.append(Op("ro", folder, folder))
    visible = [op.dest for op in ops if op.kind == "ro"]
    if any(inside(view.home, folder) for folder in visible):
        ops.append(Op("tmpfs", view.home))
    ops += [Op("mask", f) for f in view.hidden if any(inside(f, v) for v in visible)]
    return tuple(ops)


def _parents(ops: list[Op], dest: str) -> list[Op]:
    """``dir`` operations for the folders above ``dest`` that nothing provides yet."""
    made: list[Op] = []
    parts = _depth_key(dest)[:-1]
    for i in range(1, len(parts) + 1):
        folder = "/" + "/".join(parts[:i])
        covering = [op for op in (*ops, *made) if inside(folder, op.dest)]
        if covering and covering[-1].dest == folder and covering[-1].kind != "mask":
            continue  # already there: made, mounted, or a link
        if covering and covering[-1].kind in (*BIND_KINDS, "symlink"):
            continue  # inside a mounted folder: it exists there
        made.append(Op("dir", folder))
    return made
