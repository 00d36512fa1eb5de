"""Which sandbox a process uses: the ``sandbox`` setting, checked by starting one.

:func:`server_sandbox` is what ``twin serve`` calls once as it starts: ``auto`` takes
bubblewrap if a sandbox really starts with it here, else the container runtime, else
refuses with :class:`SandboxUnavailableError` (one line naming the fix); ``bwrap`` or
``podman`` must work or the server refuses; ``none`` runs steps unconfined. The name it
settles on travels to the run processes (``TWIN_SANDBOX``, ``--sandbox``) with the
other sandbox settings (:func:`sandbox_env`), where :func:`open_sandbox` makes the
backend once per process for that process's settings.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import replace
from typing import Any

from twinengine.core import get_settings
from twinengine.core.errors import ConfigError
from twinengine.workflows.sandbox.base import Sandbox
from twinengine.workflows.sandbox.bwrap import BwrapSandbox
from twinengine.workflows.sandbox.none import NoSandbox
from twinengine.workflows.sandbox.podman import PodmanSandbox
from twinengine.workflows.sandbox.policy import SandboxUser, host_view

BACKENDS: dict[str, type[Sandbox]] = {
    "bwrap": BwrapSandbox,
    "podman": PodmanSandbox,
    "none": NoSandbox,
}
_FIX = {
    "auto": "install bubblewrap (apt-get install bubblewrap) or add its folder to the "
    "server's PATH, or set TWIN_SANDBOX=none for a single-user server",
    "bwrap": "install bubblewrap (apt-get install bubblewrap) or add its folder to the "
    "server's PATH, or set TWIN_SANDBOX=none for a single-user server",
    "podman": "install podman (apt-get install podman runc) or add its folder to the "
    "server's PATH, set TWIN_SANDBOX=bwrap, or TWIN_SANDBOX=none for a single-user server",
}
#: the settings a sandbox is made for, besides home, user, configuration and store
_VIEW_SETTINGS = (
    "sandbox_network",
    "sandbox_network_deny",
    "sandbox_uids",
    "sandbox_processes",
    "sandbox_memory_mb",
    "sandbox_file_mb",
    "sandbox_tmp_mb",
)
log = logging.getLogger(__name__)
_made: dict[tuple[Any, ...], Sandbox] = {}
_probed: dict[tuple[Any, ...], str | None] = {}
_lock = threading.Lock()


class SandboxUnavailableError(ConfigError):
    """The server is set to confine steps, and no sandbox works on this machine."""


def _user(settings: Any) -> SandboxUser | None:
    return SandboxUser.lookup(settings.sandbox_user) if os.geteuid() == 0 else None


def open_sandbox(name: str, settings: Any = None) -> Sandbox:
    """The backend ``name`` for ``settings`` (default: this process's), made once."""
    settings = settings or get_settings()
    if name not in BACKENDS:
        raise ConfigError(
            f"unknown sandbox {name!r}", hint="choose one of: " + ", ".join(sorted(BACKENDS))
        )
    key = (name, settings.home, settings.sandbox_user, settings.config_file, settings.store)
    key += tuple(getattr(settings, field) for field in _VIEW_SETTINGS)
    with _lock:
        box = _made.get(key)
        if box is None:
            box = _made[key] = BACKENDS[name](host_view(settings, _user(settings)))
    return box


def probe(name: str, settings: Any = None) -> str | None:
    """Why the backend ``name`` does not start a sandbox here (None: it does); asked once."""
    box = open_sandbox(name, settings)
    key = (name, box.view)
    with _lock:
        if key in _probed:
            return _probed[key]
    why = box.probe()
    with _lock:
        _probed[key] = why
    return why


def server_sandbox(settings: Any = None, *, strict: bool = True) -> Sandbox:
    """The sandbox ``twin serve`` confines steps and functions with (see module doc).
    ``strict=False`` (an app made without ``twin serve``, tests): ``auto`` with nothing
    working falls back to ``none`` with a warning instead of refusing."""
    settings = settings or get_settings()
    choice = settings.sandbox
    if choice == "none":
        return open_sandbox("none", settings)
    names = ["bwrap", "podman"] if choice == "auto" else [choice]
    reasons = []
    for name in names:
        why = probe(name, settings)
        if why is None:
            box = open_sandbox(name, settings)
            if box.network_problem() is not None:
                log.warning("sandbox: %s", box.describe())
            return box
        reasons.append(f"{name}: {why}")
    if choice == "auto" and not strict:
        log.warning("no sandbox works here (%s): steps run UNCONFINED", "; ".join(reasons))
        return open_sandbox("none", settings)
    raise SandboxUnavailableError(  # one line: what is wrong, why, and the fix
        f"twin serve confines steps and functions (sandbox = {choice}) and no sandbox works "
        f"here ({'; '.join(reasons)}): {_FIX[choice]}"
    )


def run_sandbox(name: str | None, settings: Any = None) -> str | None:
    """The backend a run's commands use: ``name`` as given (the server's choice, or
    ``twin run --sandbox``), ``auto`` settled by :func:`server_sandbox`; None: none."""
    if name is None:
        return None
    if name == "auto":
        return server_sandbox(replace(settings or get_settings(), sandbox="auto")).name
    open_sandbox(name, settings)  # an unknown name is refused here
    return name


def sandbox_env(settings: Any) -> dict[str, str]:
    """The ``TWIN_*`` variables that give a child process (a run worker) the sandbox
    settings of ``settings``, however they were set."""
    uids = settings.sandbox_uids
    return {
        "TWIN_SANDBOX": settings.sandbox,
        "TWIN_SANDBOX_USER": settings.sandbox_user,
        "TWIN_SANDBOX_NETWORK": settings.sandbox_network,
        "TWIN_SANDBOX_NETWORK_DENY": ",".join(settings.sandbox_network_deny),
        "TWIN_SANDBOX_UIDS": f"{uids[0]}-{uids[1]}" if uids else "none",
        "TWIN_SANDBOX_PROCESSES": str(settings.sandbox_processes),
        "TWIN_SANDBOX_MEMORY_MB": str(settings.sandbox_memory_mb),
        "TWIN_SANDBOX_FILE_MB": str(settings.sandbox_file_mb),
        "TWIN_SANDBOX_TMP_MB": str(settings.sandbox_tmp_mb),
        "TWIN_SANDBOX_OUTPUT_MB": str(settings.sandbox_output_mb),
        "TWIN_SANDBOX_OUTPUT_FILES": str(settings.sandbox_output_files),
    }
