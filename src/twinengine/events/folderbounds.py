"""Which local files a folder source, and a trigger's runs, may reach on a shared server.

A project may add a folder source only for a folder under ``watch_roots``
(:func:`check_watchable`, when a non-admin adds it). What the source then reads is
judged again and again by real paths, every link resolved, whatever the folder was when
the source was added: at every scan its folder must stay inside its
:class:`FolderBounds` — the real ``watch_roots`` (anywhere for a source an admin added)
and never the server's own files
(:func:`~twinengine.workflows.fileroots.server_private`) — else the source stops
(:class:`FolderOutOfBounds`); when a trigger fires, its runs get only the regular files
the source reported that lie in the folder as it is then and inside those bounds
(:func:`reported_files`). Files are looked at with ``lstat`` (:func:`regular_file`):
a link is never a file of the folder.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinengine.core import ForbiddenError
from twinengine.workflows.fileroots import real_paths, server_private


def real_path(path: Any) -> Path | None:
    """``path`` with every link resolved (None when it cannot be)."""
    try:
        return Path(str(path)).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def check_watchable(config: dict[str, Any], roots: tuple[Path, ...]) -> None:
    """Refuse a folder source whose ``path``, links resolved, lies outside every one of
    ``roots`` (the server's ``watch_roots``: the folders a project may watch)."""
    path = config.get("path")
    real = real_path(path) if isinstance(path, str) and path else None
    if real is None or not any(real.is_relative_to(r) for r in _resolved(roots)):
        raise ForbiddenError(
            f"folder source: path {path!r} is not inside a folder this server lets projects watch",
            hint="watch a folder under TWIN_WATCH_ROOTS ("
            + (", ".join(str(r) for r in roots) or "none set")
            + "), or ask an admin to add the source",
        )


@dataclass(frozen=True)
class FolderBounds:
    """Where a folder source of a shared server may look, links resolved: inside
    ``roots`` (the real ``watch_roots``; None: anywhere — a source an admin added) and
    never inside ``hidden`` (:func:`~twinengine.workflows.fileroots.server_private`)."""

    roots: tuple[Path, ...] | None = None
    hidden: tuple[Path, ...] = ()

    @classmethod
    def of(cls, settings: Any, admin: bool) -> FolderBounds:
        """The bounds of a source on a server with ``settings`` (``admin``: an admin or
        the operator's CLI added it)."""
        roots = None if admin else real_paths(settings.watch_roots)
        return cls(roots, server_private(settings))

    def allows(self, real: Path) -> bool:
        """Whether the real path ``real`` lies inside the bounds."""
        if any(real.is_relative_to(hidden) for hidden in self.hidden):
            return False
        return self.roots is None or any(real.is_relative_to(root) for root in self.roots)


class FolderOutOfBounds(ForbiddenError):
    """A folder source's folder now leads outside the folders it may watch."""


def reported_files(
    config: dict[str, Any], events: list[dict[str, Any]], bounds: FolderBounds
) -> tuple[Path, ...]:
    """The regular files a folder source (``config``) reported in ``events`` that a
    trigger on it may give its runs, as real paths: each must lie — every link resolved,
    now, whatever the folder was when the source was added — inside the source's folder
    as it is now and inside ``bounds``."""
    root = real_path(config.get("path") or "")
    if root is None or not bounds.allows(root):
        return ()
    found = []
    for event in events:
        location = event.get("location")
        real = real_path(location) if isinstance(location, str) and location else None
        if real is None or real == root or not real.is_relative_to(root):
            continue
        if bounds.allows(real) and regular_file(real) is not None:
            found.append(real)
    return tuple(found)


def _resolved(roots: tuple[Path, ...]) -> list[Path]:
    return [r for r in (real_path(root) for root in roots) if r is not None]


def regular_file(path: Path | str) -> os.stat_result | None:
    """``lstat`` of ``path`` when it is a regular file (not a link, folder, FIFO …)."""
    try:
        info = os.lstat(path)
    except (OSError, ValueError):
        return None
    return info if stat.S_ISREG(info.st_mode) else None
