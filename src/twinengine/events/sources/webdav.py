"""A WebDAV folder (dCache's WebDAV door, Nextcloud, Apache mod_dav …) as an event source.

Every ``interval`` seconds the source lists ``path`` with ``PROPFIND`` (``Depth: 1``,
walking sub-collections itself when ``recursive``, since servers often refuse
``Depth: infinity``) and emits each file whose version changed: the ``getetag`` when the
server gives one, else ``getlastmodified`` and ``getcontentlength`` together. The cursor
(file path relative to ``path`` → version) is saved after the events were emitted
(:class:`~.listing.ListingSource`).
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from twinengine.core import ConfigError
from twinengine.events.base import Event, SourceState
from twinengine.events.sources.listing import ListingSource, ListingStopped
from twinengine.events.sources.options import http_credentials, number, text, without_user

_DAV = "{DAV:}"
_PROPFIND = (
    b'<?xml version="1.0" encoding="utf-8"?>'
    b'<d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/><d:getetag/>'
    b"<d:getlastmodified/><d:getcontentlength/><d:getcontenttype/></d:prop></d:propfind>"
)


@dataclass
class DavEntry:
    path: str  # decoded absolute URL path
    is_dir: bool
    etag: str | None
    modified: str | None
    size: int | None
    content_type: str | None

    @property
    def version(self) -> str:
        if self.etag:
            return self.etag
        return f"{self.modified}|{self.size}"


def parse_multistatus(body: bytes) -> list[DavEntry]:
    """The entries of a ``207 Multi-Status`` PROPFIND answer."""
    entries = []
    for response in ET.fromstring(body).iter(f"{_DAV}response"):
        href = response.findtext(f"{_DAV}href") or ""
        props: dict[str, ET.Element] = {}
        for propstat in response.iter(f"{_DAV}propstat"):
            status = propstat.findtext(f"{_DAV}status") or "200"
            if "200" not in status.split():  # "HTTP/1.1 404 Not Found": a missing prop
                continue
            for prop in propstat.iter(f"{_DAV}prop"):
                for child in prop:
                    props[child.tag.removeprefix(_DAV)] = child
        kind = props.get("resourcetype")
        is_dir = kind is not None and kind.find(f"{_DAV}collection") is not None
        length = (props["getcontentlength"].text or "") if "getcontentlength" in props else ""
        etag = (props["getetag"].text or "").strip().strip('"') if "getetag" in props else ""
        entries.append(
            DavEntry(
                path=unquote(urlsplit(href).path),
                is_dir=is_dir,
                etag=etag or None,
                modified=props["getlastmodified"].text if "getlastmodified" in props else None,
                size=int(length) if length.strip().isdigit() else None,
                content_type=props["getcontenttype"].text if "getcontenttype" in props else None,
            )
        )
    return entries


class WebdavSource(ListingSource):
    """Files created or changed in a WebDAV collection (deletions optional)."""

    kind = "webdav"
    secret_fields = frozenset({"password", "token"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        url = text(self, "url").rstrip("/")
        split = urlsplit(url)
        if split.scheme not in ("http", "https") or not split.netloc:
            raise ConfigError(f"source {name!r} (webdav): 'url' must be an http(s) URL")
        self.origin = without_user(f"{split.scheme}://{split.netloc}")  # locations: no user
        path = "/" + "/".join(p for p in (split.path, self.option("path", "", str)) if p)
        self.root = "/" + "/".join(part for part in path.split("/") if part)
        self.headers, self.auth = http_credentials(self, url)
        self.interval = number(self, "interval", 30.0, minimum=0.01)
        self.recursive: bool = self.option("recursive", True, bool)
        self.deletes: bool = self.option("deletes", False, bool)
        self.verify: bool | str = self.option("verify", True, (bool, str))
        self._client: httpx.Client | None = None

    def _list(self, directory: str) -> list[DavEntry]:
        if self._client is None:
            self._client = httpx.Client(
                headers=self.headers, auth=self.auth, verify=self.verify, timeout=30.0
            )
        response = self._client.request(
            "PROPFIND",
            self.origin + quote(directory.rstrip("/") + "/"),
            headers={"Depth": "1", "Content-Type": "application/xml"},
            content=_PROPFIND,
        )
        if response.status_code in (401, 403):
            raise ConfigError(
                f"source {self.name!r} (webdav): the server refused the credentials "
                f"(HTTP {response.status_code})",
                hint="check 'token' or 'username'/'password'",
            )
        if response.status_code == 404:
            raise ConfigError(f"source {self.name!r} (webdav): 'path' {directory!r} not found")
        response.raise_for_status()
        own = directory.rstrip("/")
        return [e for e in parse_multistatus(response.content) if e.path.rstrip("/") != own]

    def _files(self, stop: threading.Event) -> dict[str, DavEntry] | None:
        """Every file under the root, keyed by its path relative to the root (None when
        ``stop`` was set during the walk)."""
        files: dict[str, DavEntry] = {}
        todo = [self.root]
        while todo:
            if stop.is_set():
                return None
            for entry in self._list(todo.pop()):
                if entry.is_dir:
                    if self.recursive:
                        todo.append(entry.path)
                elif entry.path.startswith(self.root.rstrip("/") + "/"):
                    files[entry.path[len(self.root.rstrip("/")) + 1 :]] = entry
        return files

    def listing(self, stop: threading.Event) -> Iterator[tuple[str, str, Any]]:
        files = self._files(stop)
        if files is None:
            raise ListingStopped
        for key in sorted(files):
            yield key, files[key].version, files[key]

    def changed(self, key: str, version: str, item: Any, known: bool) -> Event:
        return self.event(
            key,
            kind="modified" if known else "created",
            version=version,
            size=item.size,
            content_type=item.content_type,
            metadata={"etag": item.etag, "last_modified": item.modified},
            location=self.origin + quote(item.path),
        )

    def deleted(self, key: str, version: str) -> Event:
        location = self.origin + quote(f"{self.root.rstrip('/')}/{key}")
        return self.event(key, kind="deleted", version=f"deleted:{version}", location=location)

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
