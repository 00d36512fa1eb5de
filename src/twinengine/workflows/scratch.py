"""Scratch folders kept between runs, so that a run reuses folders instead of making them.

Each job needs an empty output folder and an empty temporary folder. Making a folder
allocates an inode; on some file systems that is slow exactly when many were deleted
a moment ago — ext4 without a journal skips every inode freed in the last seconds to
minutes, one by one (measured here: 0.5 to 1.5 ms per ``mkdir`` after a 1000-job run was
cleaned up, against 0.03 ms on a quiet disk). So instead of deleting the empty job
folders of a finished run, :func:`recycle` moves them into a spare pool
(``TWIN_HOME/spare``) — one ``rename`` each, a few milliseconds for a thousand — and
:class:`SparePool` hands them to the next run by ``rename``, which allocates nothing.
What is left (folders with files in them) is deleted by a detached ``rm -rf``
(:func:`remove_in_background`). The pool is bounded (:data:`MAX_SPARE`); two runs taking
from it at once are safe, since a rename succeeds for only one of them.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterable
from pathlib import Path

MAX_SPARE = 20000


class SparePool:
    """Empty folders left by earlier runs, claimed one at a time by rename."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._names: list[str] | None = None
        self._lock = threading.Lock()

    def claim(self, parent: Path | str, name: str) -> str | None:
        """Move a spare folder to ``parent/name``; None when the pool is empty."""
        target = os.path.join(parent, name)
        with self._lock:
            if self._names is None:
                try:
                    self._names = os.listdir(self.path)
                except OSError:
                    self._names = []
            while self._names:
                spare = os.path.join(self.path, self._names.pop())
                try:
                    os.rename(spare, target)
                except OSError:  # taken by another run meanwhile (or not a folder)
                    continue
                return target
        return None


def recycle(
    spare: Path | str,
    folders: Iterable[Path | str],
    limit: int = MAX_SPARE,
    room: int | None = None,
) -> int:
    """Move the empty sub-folders of ``folders`` into ``spare``; returns how many moved.
    ``room``: how many more the pool takes, when the caller keeps count."""
    if room is None:
        try:
            room = limit - len(os.listdir(spare))
        except FileNotFoundError:
            os.makedirs(spare, exist_ok=True)
            room = limit
    moved = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            if moved >= room:
                return moved
            if entry.is_dir(follow_symlinks=False) and _empty(entry.path):
                try:
                    os.rename(entry.path, os.path.join(spare, entry.name))
                    moved += 1
                except OSError:
                    pass
    return moved


def _empty(path: str) -> bool:
    try:
        with os.scandir(path) as entries:
            return next(entries, None) is None
    except OSError:
        return False


def remove_in_background(folders: Iterable[Path | str]) -> None:
    """Delete folders without making the user wait for thousands of unlinks."""
    existing = [str(f) for f in folders if os.path.exists(f)]
    if not existing:
        return
    try:
        subprocess.Popen(
            ["rm", "-rf", "--", *existing],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        for folder in existing:
            shutil.rmtree(folder, ignore_errors=True)


def tidy(spare: Path | str, folders: list[Path | str]) -> None:
    """Recycle the empty job folders of ``folders``, then delete the rest (detached)."""
    recycle(spare, folders)
    remove_in_background(folders)


class _Tidier:
    """One background thread of a long-lived process (``twin serve``) that tidies the
    folders of finished runs, so a run neither waits for it nor forks ``rm`` each time."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[tuple[str, list[str]]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def put(self, spare: Path | str, folders: list[Path | str]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name="twin-tidy", daemon=True)
                self._thread.start()
        self._items.put((str(spare), [str(f) for f in folders]))

    def _work(self) -> None:
        rooms: dict[str, int] = {}  # spare pool -> room left, counted once per 500 runs
        done = 0
        while True:
            spare, folders = self._items.get()
            try:
                if spare not in rooms or done % 500 == 0:
                    os.makedirs(spare, exist_ok=True)
                    rooms[spare] = MAX_SPARE - len(os.listdir(spare))
                rooms[spare] -= recycle(spare, folders, room=max(0, rooms[spare]))
                for folder in folders:
                    try:
                        os.rmdir(folder)  # emptied by recycle: one system call
                    except OSError:
                        shutil.rmtree(folder, ignore_errors=True)
            except Exception:  # never let one folder stop the tidying of the next
                continue
            finally:
                done += 1


_TIDIER = _Tidier()


def tidy_later(spare: Path | str, folders: list[Path | str]) -> None:
    """:func:`tidy` on this process's background thread (for runs inside a server)."""
    _TIDIER.put(spare, folders)
