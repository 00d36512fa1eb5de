"""Job folders made ahead of need.

Every job needs a fresh, empty output folder and, for a tool that captures ``stdout``
or ``stderr``, a file in it; on some disks each of those creations costs half a
millisecond of kernel time — for a 1000-way scatter, a second of the dispatch thread.
:class:`FolderPool` makes them in a background thread (the system calls release the
GIL) a little ahead of demand, so the dispatch thread only takes a ready one. It keeps
few folders ready at first and more when jobs take them faster than it makes them;
folders still unused at the end are removed. Folders come first from the spare pool
that earlier runs left (:mod:`twinengine.workflows.scratch`), by rename.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
from pathlib import Path

from twinengine.core import new_id
from twinengine.workflows.scratch import SparePool

log = logging.getLogger("twinengine.workflows")

_MAX_AHEAD = 64


class FolderPool:
    """Fresh folders under ``parent`` holding empty ``files``, made by a background thread."""

    def __init__(
        self,
        parent: Path,
        files: tuple[str, ...] = (),
        ahead: int = 2,
        spare: SparePool | None = None,
    ) -> None:
        self.parent = parent
        self.files = files
        self.spare = spare
        self.ahead = ahead
        self._ready: collections.deque[str] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._fill, name="twin-folders", daemon=True)
        self._thread.start()

    def _fill(self) -> None:
        while True:
            with self._cond:
                while not self._closed and len(self._ready) >= self.ahead:
                    self._cond.wait()
                if self._closed:
                    return
            try:
                path = self._make()
            except OSError as exc:  # the dispatch thread makes its own and reports errors
                log.debug("folder pool stopped: %s", exc)
                return
            with self._cond:
                if self._closed:
                    _remove(path, self.files)
                    return
                self._ready.append(path)

    def _make(self) -> str:
        name = new_id()
        path = self.spare.claim(self.parent, name) if self.spare else None
        if path is None:
            path = str(self.parent / name)
            os.mkdir(path)
        for name in self.files:
            os.close(os.open(os.path.join(path, name), os.O_CREAT | os.O_WRONLY, 0o666))
        return path

    def take(self) -> str:
        """An empty folder that did not exist before this run."""
        with self._cond:
            if self._thread is None and not self._closed:
                self._start()
            if self._ready:
                self._cond.notify()
                return self._ready.popleft()
            self.ahead = min(_MAX_AHEAD, self.ahead * 2)  # demand outran the pool
            self._cond.notify()
        return self._make()

    def close(self) -> None:
        """Stop the thread and remove the folders nobody took."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._cond:
            leftover, self._ready = list(self._ready), collections.deque()
        for path in leftover:
            _remove(path, self.files)


def _remove(path: str, files: tuple[str, ...]) -> None:
    try:
        for name in files:
            os.unlink(os.path.join(path, name))
        os.rmdir(path)
    except OSError:
        pass
