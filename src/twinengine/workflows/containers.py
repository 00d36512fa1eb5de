"""Which container engine (if any) works on this machine.

cwltool needs one to honour ``DockerRequirement``. A client binary alone is not enough
(``docker`` without a daemon is common): Docker counts only when its socket exists.
With none working, TwinEngine behaves as ``cwltool --no-container``: a DockerRequirement
under ``hints`` is ignored and one under ``requirements`` is reported as unsupported
(exit code 33).
"""

from __future__ import annotations

import os
import shutil
import socket


def _docker_daemon_answers(host: str) -> bool:
    if not host.startswith("unix://"):
        return True  # a remote daemon: trust the configuration
    path = host.removeprefix("unix://")
    if not os.path.exists(path):
        return False
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(0.5)
    try:
        probe.connect(path)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def working_container_engine() -> str | None:
    """``docker``, ``podman``, ``singularity`` (also for apptainer) or None."""
    docker_host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if shutil.which("docker") and _docker_daemon_answers(docker_host):
        return "docker"
    if shutil.which("podman"):
        return "podman"
    if shutil.which("apptainer") or shutil.which("singularity"):
        return "singularity"
    return None
