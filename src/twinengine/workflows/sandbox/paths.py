"""What the run process reads on a sandboxed step's behalf stays inside what it may show.

The run process collects a step's outputs (globs, ``cwl.output.json``, ``loadContents``,
checksums), moves them to the run's outputs and copies writable InitialWorkDir entries —
as the server's user, outside the sandbox. A tool could make ``out.txt`` a link to
``/etc/shadow``, ``twin.db`` or another run's file and have the server read it for it.
:func:`check_inside` and :func:`check_tree` refuse (:class:`EscapeError`) any path whose
real path lies outside the allowed roots — the step's working folder and its declared
inputs — naming the path as the step knows it, never where it leads.
:func:`check_output` also refuses any path with a ``..`` that a step names for its
outputs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from twinengine.core.errors import InvalidInputError
from twinengine.workflows.sandbox.policy import inside


class EscapeError(InvalidInputError):
    """A step's output (or a file staged for it) leads outside what the step may show."""


def _shown(path: str, roots: Sequence[str]) -> str:
    for root in roots:
        if inside(path, root) and path != root:
            return os.path.relpath(path, root)
    return os.path.basename(path) or path


def check_inside(path: str, roots: Sequence[str], what: str = "output") -> str:
    """The real path of ``path``; :class:`EscapeError` when it is outside all ``roots``
    (real, absolute paths)."""
    real = os.path.realpath(path)
    if any(inside(real, root) for root in roots):
        return real
    raise EscapeError(
        f"{what} {_shown(os.path.abspath(path), roots)!r} leads outside the step's working "
        "folder and its inputs (a symbolic link, or a path with '..'): refused",
        hint="a step may only return files it wrote in its working folder, or its inputs",
    )


def check_output(path: str, base: str, roots: Sequence[str], what: str = "output") -> str:
    """:func:`check_inside` for a path a step named for its outputs (a glob match, a path
    in ``cwl.output.json``, a secondary file, a File an expression made), relative to
    its working folder ``base``: a ``..`` component is refused whatever it leads to, so
    no answer depends on what lies outside; named as the step wrote it."""
    if ".." in path.split(os.sep):
        shown = path[len(base) + 1 :] if path.startswith(base.rstrip(os.sep) + os.sep) else path
        raise EscapeError(
            f"{what} {shown!r} leads outside the step's working folder and its inputs (a "
            "path with '..'): refused",
            hint="a step may only return files it wrote in its working folder, or its inputs",
        )
    return check_inside(path, roots, what)


def check_tree(path: str, roots: Sequence[str], what: str = "output") -> str:
    """:func:`check_inside` for ``path`` and, when it is a folder, for every symbolic link
    in it (the real path of ``path``)."""
    real = check_inside(path, roots, what)
    if os.path.isdir(real):
        for folder, dirs, files in os.walk(real):
            for name in (*dirs, *files):
                entry = os.path.join(folder, name)
                if os.path.islink(entry):
                    check_inside(entry, roots, what)
    return real
