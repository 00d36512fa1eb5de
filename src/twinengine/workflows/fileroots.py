"""Which server files a run may read: File and Directory objects checked against roots.

A File or Directory object names a server path through ``location`` or ``path`` — in a
run's input object, in a trigger's, or as a literal in a CWL document (an input's or a
step's default, an InitialWorkDirRequirement entry, …) — at any depth: inside records
and arrays, in ``secondaryFiles`` and in a Directory's ``listing``. :func:`file_objects`
finds them all. :class:`Roots` says whether a path, with its symbolic links resolved,
may be read: inside one of the run's own roots (its run folder, its workflow's folder —
places of the server that only the server writes), or inside a granted root (the files
an event reported) or a shared root (``input_roots``) but never inside a hidden one:
:func:`server_private` names those (the server's home, its secret key, database, local
store and settings file), whatever a granted or shared root holds or a link leads to.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FILE_CLASSES = ("File", "Directory")


def _real(path: Path) -> Path | None:
    try:
        return path.expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def real_paths(paths: Iterable[Path]) -> tuple[Path, ...]:
    """``paths`` with their links resolved (those that cannot be resolved left out)."""
    return tuple(r for r in (_real(Path(p)) for p in paths) if r is not None)


def server_private(settings: Any) -> tuple[Path, ...]:
    """What no run, input or event may ever name (links resolved): the server's home, its
    secret key file, its settings file, a SQLite database (with its ``-wal``/``-shm``)
    and a local object store, wherever they are."""
    found = [Path(settings.home)]
    for name in ("secret_key_path", "config_file"):
        value = getattr(settings, name, None)
        if value:
            found.append(Path(value))
    url = str(getattr(settings, "database_url", "") or "")
    if url.startswith("sqlite:///"):
        database = url[len("sqlite:///") :].split("?", 1)[0]
        if database and database != ":memory:":
            found += [Path(database + suffix) for suffix in ("", "-wal", "-shm", "-journal")]
    store = str(getattr(settings, "store", "") or "")
    if store and urlsplit(store).scheme in ("", "file"):
        found.append(Path(urlsplit(store).path if store.startswith("file:") else store))
    return real_paths(found)


def registered_root(document: str | Path, home: Path) -> Path | None:
    """The upload folder (``$TWIN_HOME/workflows/<id>``) holding ``document``, links
    resolved; None for a document that is not in the server's workflow registry."""
    registry = _real(home / "workflows")
    real = _real(Path(document))
    if registry is None or real is None or not real.is_relative_to(registry):
        return None
    parts = real.relative_to(registry).parts
    return registry / parts[0] if len(parts) > 1 else None


@dataclass(frozen=True)
class Roots:
    """Folders (or single files) whose contents a run may read.

    ``own``: always allowed (the server's own places for the run); ``granted`` (what an
    event reported) and ``shared`` (``input_roots``): allowed unless inside ``hidden``.
    Build it with :meth:`of`, which resolves the links of every root once. A path is
    judged by its real path (every link resolved), so a link — or a folder swapped for
    one — never leads into a hidden place through a granted or shared root."""

    own: tuple[Path, ...] = ()
    shared: tuple[Path, ...] = ()
    hidden: tuple[Path, ...] = ()
    granted: tuple[Path, ...] = ()

    @classmethod
    def of(
        cls,
        own: Iterable[Path] = (),
        shared: Iterable[Path] = (),
        hidden: Iterable[Path] = (),
        granted: Iterable[Path] = (),
    ) -> Roots:
        return cls(real_paths(own), real_paths(shared), real_paths(hidden), real_paths(granted))

    def allows(self, path: Path) -> Path | None:
        """``path`` with its links resolved when a run may read it; else None."""
        real = _real(path)
        if real is None:
            return None
        if any(real.is_relative_to(root) for root in self.own):
            return real
        if any(real.is_relative_to(root) for root in self.hidden):
            return None
        if any(real.is_relative_to(root) for root in (*self.granted, *self.shared)):
            return real
        return None


def file_objects(value: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, object)`` for every File and Directory object in ``value``, at any depth;
    ``where`` is the path to it (``x.secondaryFiles[0]``; a mapping with an ``id`` starts
    it again at the id's fragment). Each container is visited once, so a document whose
    YAML aliases share a node is walked in linear time."""
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if not isinstance(item, (dict, list)) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, list):
            stack.extend((f"{path}[{i}]", v) for i, v in reversed(list(enumerate(item))))
            continue
        if isinstance(item.get("id"), str):
            path = item["id"].rsplit("#", 1)[-1]
        if item.get("class") in FILE_CLASSES:
            yield path, item
        stack.extend(
            (f"{path}.{k}" if path else str(k), v) for k, v in reversed(list(item.items()))
        )
