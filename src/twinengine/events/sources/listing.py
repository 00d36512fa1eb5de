"""Sources that list a remote tree now and then and announce what changed.

:class:`ListingSource` is the part an S3 bucket (:mod:`.s3`) and a WebDAV collection
(:mod:`.webdav`) share: every ``interval`` seconds a listing of ``(key, version, item)``
is compared with the cursor (key → version); each key whose version differs is emitted
(``created``, or ``modified`` when the cursor knew it), then keys no longer listed are
dropped (emitted as ``deleted`` when ``deletes`` is set). The cursor is saved after the
events were emitted — every 100 events and at the end of a listing, also when an emit
failed — so a restart announces nothing twice and nothing is lost. A listing that
``stop`` interrupted raises :class:`ListingStopped`: a partial listing says nothing
about deletions.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

from twinengine.events.base import Emit, Event, EventSource

_SAVE_EVERY = 100  # events between cursor saves during one long listing


class ListingStopped(Exception):
    """``stop`` was set during a listing."""


class ListingSource(EventSource):
    """Emit what changed between listings; a subclass lists and makes the events."""

    #: the key of the cursor in the source's saved state
    cursor_field: ClassVar[str] = "files"
    interval: float
    deletes: bool

    def connect(self) -> None:
        """Open what listing needs, before the first listing (default: nothing)."""

    @abstractmethod
    def listing(self, stop: threading.Event) -> Iterator[tuple[str, str, Any]]:
        """``(key, version, item)`` of everything there now, in the order to announce it;
        raises :class:`ListingStopped` when ``stop`` is set before the end."""

    @abstractmethod
    def changed(self, key: str, version: str, item: Any, known: bool) -> Event:
        """The event of ``key`` at ``version`` (``known``: the cursor had an older one)."""

    @abstractmethod
    def deleted(self, key: str, version: str) -> Event:
        """The event of ``key``, last seen at ``version``, gone."""

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.connect()
        saved = self.state.load()
        cursor: dict[str, str] = dict(saved.get(self.cursor_field, {}))
        while not stop.is_set():
            self._poll(emit, stop, cursor, saved)
            stop.wait(self.interval)

    def _poll(
        self, emit: Emit, stop: threading.Event, cursor: dict[str, str], saved: dict[str, Any]
    ) -> None:
        """One listing: emit what changed, then save the cursor (also when emit failed)."""
        unsaved = 0
        listed: set[str] = set()
        try:
            for key, version, item in self.listing(stop):
                listed.add(key)
                if cursor.get(key) == version:
                    continue
                if stop.is_set():
                    return
                emit(self.changed(key, version, item, key in cursor))
                cursor[key] = version
                unsaved += 1
                if unsaved >= _SAVE_EVERY:
                    self.state.save({**saved, self.cursor_field: cursor})
                    unsaved = 0
            for key in sorted(set(cursor) - listed):
                if self.deletes:
                    emit(self.deleted(key, cursor[key]))
                del cursor[key]
                unsaved += 1
        except ListingStopped:
            return  # a partial listing says nothing about deletions
        finally:
            if unsaved:
                self.state.save({**saved, self.cursor_field: cursor})
