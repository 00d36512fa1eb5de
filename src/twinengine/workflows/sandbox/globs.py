"""Output globs of a sandboxed step, expanded only inside what the step may show.

The run process expands a step's output globs as the server's user, outside the
sandbox: ``../../../../uploads/*/*`` would list other projects' files, and a glob's
answer — a match, an escape error naming it, an empty list — would tell whether a file
exists there. :func:`confined_glob` refuses, before anything is listed or looked up, a
pattern that is absolute, has a ``..`` component or a NUL byte, or would pass through a
folder (a link the step made, or one a wildcard matched) whose real path lies outside
the allowed roots (the step's working folder and its inputs); only then does it expand
the pattern with :mod:`glob`, so every folder that is listed or looked into lies inside.
The refusal is one message naming the pattern as the step wrote it; what a match itself
leads to is checked afterwards by :func:`~.paths.check_inside`, which names the match
as the step wrote it.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from twinengine.workflows.sandbox.paths import EscapeError
from twinengine.workflows.sandbox.policy import inside


class GlobEscapeError(EscapeError):
    """An output glob would be expanded outside the step's working folder."""


def glob_refused(pattern: str) -> GlobEscapeError:
    """The one refusal of an output glob, naming ``pattern`` as written."""
    return GlobEscapeError(
        f"glob {pattern!r} reaches outside the step's working folder (an absolute path, a "
        "'..' or a link to a folder elsewhere): refused",
        hint="a glob names files in the step's working folder, relative to it (e.g. 'out/*.csv')",
    )


def check_pattern(pattern: str) -> None:
    """:class:`GlobEscapeError` when ``pattern`` is absolute, has a ``..`` component or
    a NUL byte (seen before any expansion)."""
    if pattern.startswith("/") or ".." in pattern.split("/") or "\0" in pattern:
        raise glob_refused(pattern)


def confined_glob(base: str, pattern: str, roots: Sequence[str]) -> list[str]:
    """The paths under ``base`` that ``pattern`` matches (as :func:`glob.glob`, not
    sorted), expanded only through folders whose real paths lie inside ``roots``;
    :class:`GlobEscapeError` otherwise (see the module doc)."""
    check_pattern(pattern)
    escaped = glob.escape(base)
    parts = pattern.split("/")
    for depth in range(1, len(parts)):  # each folder level the expansion goes through
        prefix = "/".join(parts[:depth])
        if not prefix.strip("/"):
            continue
        if glob.has_magic(prefix):
            passed = glob.glob(os.path.join(escaped, prefix))  # lists checked folders only
        else:
            passed = [os.path.join(base, prefix)]  # looked into whether it exists or not
        for path in passed:
            real = os.path.realpath(path)
            if not any(inside(real, root) for root in roots):
                raise glob_refused(pattern)
    if not glob.has_magic(pattern):  # a plain name (most tools): one lookup
        path = os.path.join(base, pattern)
        return [path] if os.path.lexists(path) else []
    return glob.glob(os.path.join(escaped, pattern))
