"""A local folder as an event source: a file that appears or changes becomes an event once
it has stopped changing (``settle``), so half-written files are never announced.

Changes are seen through watchdog (inotify on Linux) or, with ``mode: poll`` or when no
watch can be set up, by scanning the folder every ``interval`` seconds. On start the
folder is scanned too, so files written while the source was down are announced. The
cursor maps each file (path relative to the root) to its version ``<mtime_ns>-<size>``
and is saved after the events of a batch were emitted.

Files are looked at with ``lstat``: a symbolic link (or anything but a regular file) in
the folder is never announced and never followed, and a file replaced by a link counts
as deleted. On a shared server the folder is checked again at every scan against the
source's :class:`~twinengine.events.folderbounds.FolderBounds` (set by
:meth:`FolderSource.limit_paths`): a folder swapped for a link that leads out of them
stops the source, ``down``.
"""

from __future__ import annotations

import fnmatch
import mimetypes
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twinengine.core import ConfigError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.folderbounds import (
    FolderBounds,
    FolderOutOfBounds,
    real_path,
    regular_file,
)
from twinengine.events.sources.options import choice, needs, number, text
from twinengine.workflows.fileroots import real_paths

_IDLE_WAIT = 0.1  # seconds between checks when nothing is pending
_SAVE_EVERY = 1.0  # seconds between saves of the cursor


@dataclass
class _Pending:
    size: int
    mtime_ns: int
    since: float  # monotonic time of the last change seen


class FolderSource(EventSource):
    """Files created or modified under ``path`` (optionally deletions too)."""

    kind = "folder"

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.root = Path(text(self, "path")).expanduser()
        self.recursive: bool = self.option("recursive", True, bool)
        self.pattern: str | None = text(self, "pattern", None)
        self.mode = choice(self, "mode", "auto", ("auto", "inotify", "poll"))
        self.interval = number(self, "interval", 1.0, minimum=0.01)
        self.settle = number(self, "settle", 0.2)
        self.deletes: bool = self.option("deletes", False, bool)
        if self.mode != "poll":
            needs(self, "watchdog")
        self._observer: Any = None
        self.bounds: FolderBounds | None = None  # set on a server (limit_paths)
        self._top = self.root  # the folder's real path while running

    def limit_paths(self, roots: tuple[Path, ...] | None, hidden: tuple[Path, ...]) -> None:
        """Watch only inside ``roots`` (None: anywhere), never ``hidden``; refused at once
        (:class:`FolderOutOfBounds`) when the folder already leads elsewhere."""
        self.bounds = FolderBounds(None if roots is None else real_paths(roots), real_paths(hidden))
        if self.root.is_dir():
            self._real_top()

    def _real_top(self) -> Path:
        """The folder's real path now, checked: a folder, inside :attr:`bounds`."""
        real = real_path(self.root)
        if real is None or not real.is_dir():
            raise RuntimeError(f"source {self.name!r}: {str(self.root)!r} is not a folder")
        if self.bounds is not None and not self.bounds.allows(real):
            raise FolderOutOfBounds(
                f"source {self.name!r} (folder): {str(self.root)!r} now leads outside the "
                "folders this server lets the source watch (was it replaced by a link?); "
                "the source is stopped",
                hint="make the path a folder inside TWIN_WATCH_ROOTS again, then resume it",
            )
        return real

    # watching ------------------------------------------------------------------------
    def _start_observer(self, changes: queue.SimpleQueue[tuple[str, str, bool]]) -> bool:
        """Start a watchdog observer feeding ``changes``; False when polling instead."""
        if self.mode == "poll":
            return False
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                kind, is_dir = event.event_type, event.is_directory
                if kind in ("opened", "closed_no_write"):
                    return
                changes.put((kind, os.fsdecode(event.src_path), is_dir))
                if kind == "moved":
                    changes.put(("created", os.fsdecode(event.dest_path), is_dir))

        if self.mode == "inotify":
            try:
                from watchdog.observers.inotify import InotifyObserver as Observer
            except ImportError as exc:
                raise ConfigError(
                    f"source {self.name!r} (folder): 'mode' inotify needs Linux",
                    hint="use mode: auto or mode: poll",
                ) from exc
        else:
            from watchdog.observers import Observer
        observer = Observer()
        try:
            observer.schedule(Handler(), str(self._top), recursive=self.recursive)
            observer.start()
        except OSError:
            if self.mode == "inotify":
                raise
            return False  # e.g. the inotify watch limit: fall back to scanning
        self._observer = observer
        return True

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=2)

    # files --------------------------------------------------------------------------
    def _key(self, path: Path) -> str | None:
        """The key of a file that this source watches, else None."""
        try:
            rel = path.relative_to(self._top)
        except ValueError:
            return None
        if not rel.parts or (not self.recursive and len(rel.parts) > 1):
            return None
        key = rel.as_posix()
        if self.pattern and not (
            fnmatch.fnmatch(key, self.pattern) or fnmatch.fnmatch(rel.name, self.pattern)
        ):
            return None
        return key

    def _scan(self, top: Path, stop: threading.Event | None = None) -> dict[str, os.stat_result]:
        """Regular files under ``top`` (all of them when recursive) with their ``lstat``
        results; links are neither announced nor followed (``os.walk`` does not descend
        into linked folders)."""
        found: dict[str, os.stat_result] = {}
        if os.path.realpath(top) != os.path.normpath(top) or not os.path.isdir(top):
            return found  # reached through a link (or no folder any more): not looked into
        for dirpath, dirnames, filenames in os.walk(top):
            if stop is not None and stop.is_set():
                break
            if not self.recursive:
                dirnames.clear()
            for filename in filenames:
                path = Path(dirpath, filename)
                key = self._key(path)
                if key is None:
                    continue
                info = regular_file(path)
                if info is not None:  # else: a link, a FIFO …, or removed while scanning
                    found[key] = info
        return found

    def _file(self, key: str) -> os.stat_result | None:
        """The ``lstat`` of the watched file ``key`` when it is a regular file reached
        without a link (a folder on its way swapped for one does not count)."""
        path = self._top / key
        if "/" in key and os.path.realpath(path.parent) != str(path.parent):
            return None
        return regular_file(path)

    def _event(self, key: str, kind: str, version: str, info: os.stat_result | None) -> Event:
        path = self.root / key
        metadata: dict[str, Any] = {}
        if info is not None:
            metadata["mtime"] = info.st_mtime
        return self.event(
            key,
            kind=kind,
            version=version,
            size=info.st_size if info is not None else None,
            content_type=mimetypes.guess_type(key)[0] if info is not None else None,
            metadata=metadata,
            location=str(path),
        )

    # main loop ----------------------------------------------------------------------
    def run(self, emit: Emit, stop: threading.Event) -> None:
        if not self.root.is_dir():
            raise ConfigError(
                f"source {self.name!r} (folder): 'path' {str(self.root)!r} is not a folder"
            )
        self._top = self._real_top()
        saved = self.state.load()
        cursor: dict[str, str] = dict(saved.get("files", {}))
        self._emitted = 0
        changes: queue.SimpleQueue[tuple[str, str, bool]] = queue.SimpleQueue()
        watching = self._start_observer(changes)  # before the scan: nothing slips between
        pending: dict[str, _Pending] = {}
        gone: set[str] = set()

        def note(key: str, info: os.stat_result, now: float) -> None:
            if f"{info.st_mtime_ns}-{info.st_size}" == cursor.get(key):
                pending.pop(key, None)
                return
            known = pending.get(key)
            if known is None or (known.size, known.mtime_ns) != (info.st_size, info.st_mtime_ns):
                # a file last written longer ago than ``settle`` (found by a scan) is ready
                age = min(max(0.0, time.time() - info.st_mtime), self.settle)
                pending[key] = _Pending(info.st_size, info.st_mtime_ns, now - age)

        def full_scan() -> None:
            now = time.monotonic()
            self._check_top()
            found = self._scan(self._top, stop)
            if stop.is_set():
                return  # a partial scan says nothing about deletions
            for key, info in found.items():
                note(key, info, now)
            gone.update(set(cursor) - set(found))

        full_scan()
        next_scan = time.monotonic() + self.interval
        # the cursor is saved at most once a second (it maps every file: rewriting it per
        # event would cost O(files) each time); files emitted since the last save are
        # emitted again after a crash — the same idempotency key, so nothing runs twice
        dirty, saved_at = False, time.monotonic()
        try:
            while not stop.is_set():
                self._drain(changes, pending, gone, note)
                if not watching and time.monotonic() >= next_scan:
                    full_scan()
                    next_scan = time.monotonic() + self.interval
                if pending or gone:
                    before = self._emitted
                    try:
                        self._emit_ready(emit, stop, cursor, pending, gone)
                    finally:
                        dirty = dirty or self._emitted != before
                if dirty and time.monotonic() - saved_at >= _SAVE_EVERY:
                    self.state.save({**saved, "files": cursor})
                    dirty, saved_at = False, time.monotonic()
                self._check_top()
                if watching and not self._observer.is_alive():
                    raise RuntimeError(f"source {self.name!r}: the folder watch stopped")
                wait = max(0.02, min(_IDLE_WAIT, self.settle / 2)) if pending else _IDLE_WAIT
                stop.wait(wait)
        finally:  # what was emitted is acknowledged, even when a later emit failed
            if dirty or self._emitted:
                self.state.save({**saved, "files": cursor})
            self._stop_observer()

    def _check_top(self) -> None:
        """Raise unless the folder still is the real folder the source started on."""
        if self._real_top() != self._top:
            raise RuntimeError(f"source {self.name!r}: {str(self.root)!r} was moved or replaced")

    def _drain(
        self,
        changes: queue.SimpleQueue[tuple[str, str, bool]],
        pending: dict[str, _Pending],
        gone: set[str],
        note: Any,
    ) -> None:
        """Turn watchdog's notifications into pending files and deletions."""
        now = time.monotonic()
        while True:
            try:
                kind, raw, is_dir = changes.get_nowait()
            except queue.Empty:
                return
            path = Path(raw)
            if is_dir:
                if kind == "created" and path.is_relative_to(self._top):  # files may predate it
                    for key, info in self._scan(path).items():
                        note(key, info, now)
                continue
            key = self._key(path)
            if key is None:
                continue
            if kind in ("deleted", "moved"):
                pending.pop(key, None)
                gone.add(key)
                continue
            info = self._file(key)
            if info is not None:
                note(key, info, now)
            else:  # gone, or now a link: not a file this source announces
                pending.pop(key, None)
                gone.add(key)

    def _emit_ready(
        self,
        emit: Emit,
        stop: threading.Event,
        cursor: dict[str, str],
        pending: dict[str, _Pending],
        gone: set[str],
    ) -> None:
        """Emit settled files and deletions, updating ``cursor`` after each emit — or
        after all of them, when ``emit`` takes a batch at once (``emit.many``)."""
        ready: list[tuple[Event | None, str, str | None]] = []  # (event, key, version)
        for key in sorted(gone):
            gone.discard(key)
            if key in pending or self._file(key) is not None or key not in cursor:
                continue
            deleted = None
            if self.deletes:
                deleted = self._event(key, "deleted", f"deleted:{cursor[key]}", None)
            ready.append((deleted, key, None))
        now = time.monotonic()
        for key in sorted(pending):
            if stop.is_set():
                break
            item = pending[key]
            info = self._file(key)
            if info is None:
                del pending[key]
                gone.add(key)
                continue
            if (info.st_size, info.st_mtime_ns) != (item.size, item.mtime_ns):
                pending[key] = _Pending(info.st_size, info.st_mtime_ns, now)
                continue
            if now - item.since < self.settle:
                continue
            version = f"{info.st_mtime_ns}-{info.st_size}"
            del pending[key]
            if cursor.get(key) == version:
                continue
            kind = "modified" if key in cursor else "created"
            ready.append((self._event(key, kind, version, info), key, version))
        many = getattr(emit, "many", None)
        events = [event for event, _, _ in ready if event is not None]
        if many is not None and len(events) > 1:
            many(events)
            for _, key, version in ready:
                self._acknowledge(cursor, key, version)
            return
        for event, key, version in ready:
            if event is not None:
                emit(event)
            self._acknowledge(cursor, key, version)

    def _acknowledge(self, cursor: dict[str, str], key: str, version: str | None) -> None:
        """Record an emitted file's version in the cursor (None: it is gone)."""
        if version is None:
            del cursor[key]
        else:
            cursor[key] = version
        self._emitted += 1

    def close(self) -> None:
        self._stop_observer()
