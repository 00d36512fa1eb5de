"""Where the sandbox's helper programs are: on ``PATH``, else in the system folders.

``twin serve`` may run with a ``PATH`` that lacks ``/usr/bin`` or ``/usr/sbin`` (a
service unit, a minimal container, a virtual environment's activation gone wrong), while
bubblewrap, setpriv, slirp4netns, nsenter, ip or podman are installed there.
:func:`find_program` looks on ``PATH`` first, then in :data:`SYSTEM_BIN`;
:func:`not_found` says which places were searched, so a missing program reads as
"not found on PATH", not "not installed".
"""

from __future__ import annotations

import os
import shutil

#: where Debian installs the helpers, searched after PATH
SYSTEM_BIN = ("/usr/bin", "/bin", "/usr/sbin", "/sbin")


def find_program(name: str) -> str | None:
    """The program ``name`` on ``PATH``, else in :data:`SYSTEM_BIN`; None: not found."""
    found = shutil.which(name)
    if found is not None:
        return found
    for folder in SYSTEM_BIN:
        path = os.path.join(folder, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def not_found(name: str, package: str) -> str:
    """Why ``name`` (Debian package ``package``) cannot be used: not found where looked."""
    return f"{name} was not found on PATH nor in {', '.join(SYSTEM_BIN)} (Debian package {package})"
