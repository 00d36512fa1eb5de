"""Serving a file from inside a folder a step wrote, never from outside it.

A step controls what it leaves in its output folder: a symbolic link ``out ->
/etc/shadow``, a ``..`` in a name, a named pipe that blocks whoever opens it.
:func:`open_beneath` opens ``folder/relative`` one component at a time relative to the
folder's descriptor, with ``O_NOFOLLOW`` on every component, refuses ``.``/``..``/empty
components, and accepts only a regular file (opened non-blocking, checked with
``fstat`` on the open descriptor, so nothing can be swapped in between). :func:`digest`
hashes such a file and :func:`file_response` streams it from the open descriptor.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from fastapi.responses import StreamingResponse

from twinengine.core import NotFoundError

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CHUNK = 1 << 20


class NotInFolder(NotFoundError):
    """The name leaves the folder, crosses a link, or is not a regular file."""


def open_beneath(folder: Path, relative: str) -> tuple[int, os.stat_result]:
    """``(descriptor, stat)`` of the regular file ``relative`` inside ``folder``."""
    parts = relative.split("/")
    missing = NotInFolder(f"no file {relative!r} here")
    if not relative or "\x00" in relative or any(p in ("", ".", "..") for p in parts):
        raise missing
    try:
        fd = os.open(folder, _DIR)
    except OSError:
        raise missing from None
    try:
        for part in parts[:-1]:
            inner = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = inner
        leaf = os.open(parts[-1], _FILE, dir_fd=fd)
    except OSError:
        raise missing from None
    finally:
        os.close(fd)
    info = os.fstat(leaf)
    if not stat.S_ISREG(info.st_mode):
        os.close(leaf)
        raise missing
    return leaf, info


def digest(folder: Path, relative: str) -> str | None:
    """SHA-256 (hex) of the regular file ``relative`` inside ``folder``; None if none."""
    try:
        fd, _ = open_beneath(folder, relative)
    except NotFoundError:
        return None
    sha = hashlib.sha256()
    with os.fdopen(fd, "rb") as handle:
        while block := handle.read(_CHUNK):
            sha.update(block)
    return sha.hexdigest()


def file_response(fd: int, info: os.stat_result, name: str, media_type: str) -> StreamingResponse:
    """A download of the open file ``fd`` (closed when sent or abandoned)."""

    def chunks() -> Iterator[bytes]:
        with os.fdopen(fd, "rb") as handle:
            while block := handle.read(_CHUNK):
                yield block

    headers = {
        "Content-Length": str(info.st_size),
        "Content-Security-Policy": "sandbox",  # a step's HTML never runs as this site
        "X-Content-Type-Options": "nosniff",
        "Content-Disposition": f"attachment; filename*=utf-8''{quote(name, safe='')}",
    }
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)
