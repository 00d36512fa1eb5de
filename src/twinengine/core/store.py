"""The object store: logs and outputs kept behind an fsspec URL.

The default is a local folder (``$TWIN_HOME/store``); any fsspec URL works (``s3://``,
``webdav://`` …). Keys are ``/``-separated paths such as ``runs/<run>/logs/<step>.stderr``.
For a local store, :meth:`ObjectStore.local_path` lets the engine write logs in place,
with no staging copy; for a remote one the engine writes locally and calls
:meth:`ObjectStore.put_file` when the step ends.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from twinengine.core.errors import ConfigError, NotFoundError


class ObjectStore:
    """A key → bytes store on top of an fsspec file system."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._fs = None
        if "://" not in url or url.startswith("file://"):
            self._root: Path | None = Path(url.removeprefix("file://")).expanduser().resolve()
        else:
            self._root = None

    @property
    def is_local(self) -> bool:
        return self._root is not None

    @property
    def fs(self):  # type: ignore[no-untyped-def]
        if self._fs is None:
            import fsspec

            try:
                self._fs = fsspec.core.url_to_fs(self.url)[0]
            except (ImportError, ValueError) as exc:
                raise ConfigError(
                    f"cannot open object store {self.url!r}: {exc}",
                    hint="install the fsspec back-end for that protocol or fix TWIN_STORE",
                ) from exc
        return self._fs

    def uri(self, key: str) -> str:
        """The full URL of ``key``."""
        if self._root is not None:
            return str(self._root / key)
        return f"{self.url}/{key}"

    def _inside(self, uri_or_key: str) -> Path:
        """The local path of a key or of a path in the store; refuses anything outside it."""
        assert self._root is not None
        raw = uri_or_key.removeprefix("file://")
        path = Path(raw) if raw.startswith("/") else self._root / raw
        resolved = path.resolve()
        if resolved != self._root and self._root not in resolved.parents:
            raise NotFoundError(
                f"{uri_or_key!r} is outside the object store {self.url}",
                hint="keys are relative paths such as runs/RUN/logs/STEP.stderr",
            )
        return resolved

    def local_path(self, key: str) -> Path | None:
        """Path of ``key`` on this machine (parents created) when the store is local."""
        if self._root is None:
            return None
        path = self._inside(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def local_folder(self, prefix: str) -> Path | None:
        """The folder for keys under ``prefix`` (created) when the store is local."""
        if self._root is None:
            return None
        path = self._inside(prefix)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def put_file(self, local: str | os.PathLike[str], key: str) -> str:
        """Upload a local file to ``key``; returns its URI."""
        if self._root is not None:
            target = self.local_path(key)
            assert target is not None
            if Path(local).resolve() != target:
                import shutil

                shutil.copyfile(local, target)
            return str(target)
        self.fs.put_file(str(local), self.uri(key))
        return self.uri(key)

    def put_bytes(self, key: str, data: bytes) -> str:
        if self._root is not None:
            path = self.local_path(key)
            assert path is not None
            path.write_bytes(data)
            return str(path)
        self.fs.pipe_file(self.uri(key), data)
        return self.uri(key)

    def read_bytes(self, uri_or_key: str) -> bytes:
        """Read an object by key or by the URI :meth:`uri` returned."""
        target = uri_or_key if ("://" in uri_or_key or uri_or_key.startswith("/")) else None
        try:
            if self._root is not None:
                return self._read_local(uri_or_key)
            return self.fs.cat_file(target or self.uri(uri_or_key))
        except FileNotFoundError:
            raise NotFoundError(f"object {uri_or_key!r} is not in the store {self.url}") from None

    def _read_local(self, uri_or_key: str) -> bytes:
        """A regular file of the local store, read without following a link (a step that
        left ``x.stderr -> /etc/shadow`` gets nothing)."""
        path = self._inside(uri_or_key)
        raw = uri_or_key.removeprefix("file://")
        given = Path(os.path.normpath(raw if raw.startswith("/") else self._root / raw))
        refused = NotFoundError(f"object {uri_or_key!r} is a link or not a file; not read")
        if given != path:
            raise refused
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise refused from None
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise refused
            return handle.read()

    def tail(self, uri_or_key: str, max_bytes: int = 4000) -> str:
        """The last ``max_bytes`` of an object as text ('' when it does not exist)."""
        try:
            data = self.read_bytes(uri_or_key)
        except NotFoundError:
            return ""
        if max_bytes <= 0:
            return ""
        return data[-max_bytes:].decode("utf-8", errors="replace")

    def exists(self, uri_or_key: str) -> bool:
        if self._root is not None:
            try:
                return self._inside(uri_or_key).exists()
            except NotFoundError:
                return False
        return self.fs.exists(uri_or_key if "://" in uri_or_key else self.uri(uri_or_key))
