"""Remote objects that a delivery's events reported, fetched for the trigger's run.

A trigger's ``$file`` (or ``$files``) on an ``s3`` source names an object as
``s3://bucket/key``, which a run — confined to its own files — cannot read.
:meth:`ReportedObjects.fetched` fetches each File object of the run's inputs whose
location is one the delivery's own events reported: from the trigger's ``s3`` source,
with that source's own credentials and only from its bucket and prefix
(:meth:`~twinengine.events.sources.s3.S3Source.open_object`); from an ``http(s)`` URL only
when its host is in ``fetch_hosts`` (no redirects, ``fetch_timeout``, no credentials).
The bytes become an upload of the trigger's project (``upload:ID``), which the run is
given as a local File like any upload — never a server path it could not read
otherwise. The event's size must be known and at most the limit — the trigger's
``filter.max_size``, and never more than ``max_upload_mb`` — and the bytes are counted as
they arrive too. Any other remote location is left alone, and the input check refuses it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any, BinaryIO

import httpx

from twinengine.core import InvalidInputError, NotFoundError, TwinError
from twinengine.events.base import make_source
from twinengine.events.triggers import started_by
from twinengine.workflows.fileroots import FILE_CLASSES


class ReportedObjects:
    """Fetches the remote objects a delivery's events reported (see the module)."""

    def __init__(self, settings: Any, store: Any, uploads: Any) -> None:
        self.settings, self.store, self.uploads = settings, store, uploads

    def fetched(
        self,
        given: dict[str, Any],
        bodies: list[dict[str, Any]],
        source: dict[str, Any] | None,
        trigger: dict[str, Any],
    ) -> dict[str, Any]:
        """``given`` with each File object naming a reported remote object replaced by
        an upload of the trigger's project holding its bytes."""
        reported = {
            b["location"]: b
            for b in bodies
            if isinstance(b.get("location"), str) and _remote(b["location"])
        }
        if not reported:
            return given
        fetch = _Fetch(self, source, trigger, reported)
        try:
            return {key: fetch.value(value) for key, value in given.items()}
        finally:
            fetch.close()

    def limit(self, trigger: dict[str, Any]) -> int:
        """The most bytes one object may have: the trigger's ``filter.max_size``, at most
        ``max_upload_mb``."""
        most = int(self.settings.max_upload_mb) * 1024 * 1024
        wanted = (trigger["definition"].get("filter") or {}).get("max_size")
        return most if wanted is None else min(most, int(wanted))


def _remote(location: str) -> bool:
    return urllib.parse.urlsplit(location).scheme in ("s3", "http", "https")


class _Fetch:
    """One delivery's fetches: each reported location fetched once."""

    def __init__(
        self,
        objects: ReportedObjects,
        source: dict[str, Any] | None,
        trigger: dict[str, Any],
        reported: dict[str, dict[str, Any]],
    ) -> None:
        self.objects, self.source, self.trigger, self.reported = objects, source, trigger, reported
        self.done: dict[str, str] = {}  # location -> upload:ID
        self._s3: Any = None

    def value(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if not isinstance(value, dict):
            return value
        location = value.get("location")
        if value.get("class") == "File" and isinstance(location, str) and location in self.reported:
            kept = {k: v for k, v in value.items() if k not in ("location", "path", "basename")}
            return {**kept, "location": self.upload(location)}
        if value.get("class") in FILE_CLASSES:
            return value  # not fetched: checked (and refused if remote) as it is
        return {k: self.value(v) for k, v in value.items()}

    def upload(self, location: str) -> str:
        if location not in self.done:
            event = self.reported[location]
            size, limit = event.get("size"), self.objects.limit(self.trigger)
            if not isinstance(size, int) or isinstance(size, bool):
                raise InvalidInputError(
                    f"{location}: its size is not known, so it is not fetched for the run",
                    hint="objects are fetched only when their event gives a size",
                )
            if size > limit:
                raise InvalidInputError(
                    f"{location}: {size} bytes, more than the {limit} a trigger's run may fetch",
                    hint="raise the trigger's filter.max_size (at most TWIN_MAX_UPLOAD_MB)",
                )
            stream, name = self._open(location, limit)
            try:
                row = self.objects.uploads.save(
                    stream,
                    name,
                    project=self.trigger["project"],
                    created_by=started_by(self.trigger["name"]),
                    limit=limit,
                )
            finally:
                stream.close()
            self.done[location] = row["location"]
        return self.done[location]

    def _open(self, location: str, limit: int) -> tuple[BinaryIO, str]:
        parts = urllib.parse.urlsplit(location)
        name = urllib.parse.unquote(parts.path.rsplit("/", 1)[-1]) or "object"
        if parts.scheme == "s3":
            body, size = self._s3_source(location).open_object(location)
            if size > limit:
                body.close()
                raise InvalidInputError(f"{location}: {size} bytes, more than {limit}")
            return body, name
        return _HttpBody.open(location, self.objects.settings), name

    def close(self) -> None:
        if self._s3 is not None:
            self._s3.close()

    def _s3_source(self, location: str) -> Any:
        source = self.source
        if source is None or source.get("kind") != "s3":
            raise NotFoundError(
                f"{location}: only an s3 source's own objects are fetched for a run",
                hint="receive bucket notifications on an s3 source (it has the credentials)",
            )
        if self._s3 is None:
            row = self.objects.store.sealed_source(source["name"], source["project"])
            config = self.objects.store.open_config(row)
            self._s3 = make_source(source["name"], "s3", config)
        return self._s3


class _HttpBody:
    """A file-like ``read(n)`` over an http(s) answer, within ``fetch_timeout``."""

    def __init__(self, client: httpx.Client, response: Any) -> None:
        self.client, self.response = client, response
        self.chunks: Iterator[bytes] = response.iter_bytes(1 << 20)

    @classmethod
    def open(cls, url: str, settings: Any) -> _HttpBody:
        parts = urllib.parse.urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port or (443 if parts.scheme == "https" else 80)
        allowed = {h.lower() for h in settings.fetch_hosts}
        if host not in allowed and f"{host}:{port}" not in allowed:
            raise InvalidInputError(
                f"{url}: fetching it is not allowed (the server's fetch_hosts setting lists "
                "the hosts a trigger's run may fetch from)",
                hint="ask the operator to add the host to TWIN_FETCH_HOSTS",
            )
        client = httpx.Client(timeout=float(settings.fetch_timeout), follow_redirects=False)
        try:
            response = client.send(client.build_request("GET", url), stream=True)
        except httpx.HTTPError as exc:
            client.close()
            raise TwinError(f"{url}: cannot be fetched ({type(exc).__name__})") from None
        if response.status_code != 200:
            response.close()
            client.close()
            raise TwinError(f"{url}: the server answered {response.status_code}")
        return cls(client, response)

    def read(self, _size: int = -1) -> bytes:
        try:
            return next(self.chunks, b"")
        except httpx.HTTPError as exc:
            raise TwinError(f"reading the object failed ({type(exc).__name__})") from None

    def close(self) -> None:
        self.response.close()
        self.client.close()
