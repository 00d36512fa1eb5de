"""An S3-compatible bucket (AWS S3, MinIO, Ceph RGW …) as an event source.

:class:`S3Source` lists the bucket (under ``prefix``) every ``interval`` seconds and
emits each object whose ETag differs from the one in its cursor (key → ETag), so new and
overwritten objects are announced once; the cursor is saved after the events were
emitted (every 100 events and at the end of a listing: :class:`~.listing.ListingSource`).
:func:`parse_bucket_notification` turns a bucket-notification body (the AWS
``Records[]`` shape that MinIO and S3 send to a webhook) into events; the API's webhook
route and the ``webhook`` source use it. :meth:`S3Source.open_object` reads one object
of the source's own bucket and prefix with the source's credentials (what a trigger's
``$file`` fetches for its run).
"""

from __future__ import annotations

import datetime as dt
import mimetypes
import threading
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote_plus

from twinengine.core import ConfigError
from twinengine.core.errors import InvalidInputError, NotFoundError
from twinengine.events.base import Event, SourceState
from twinengine.events.payloads import load_json
from twinengine.events.sources.listing import ListingSource, ListingStopped
from twinengine.events.sources.options import needs, number, text
from twinengine.workflows.safetext import check_text


class S3Source(ListingSource):
    """Objects created or overwritten in ``bucket`` under ``prefix`` (deletions optional)."""

    kind = "s3"
    cursor_field = "objects"
    secret_fields = frozenset({"secret_key", "session_token"})  # sealed at rest, shown as ***

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.bucket: str = text(self, "bucket")
        self.prefix: str = self.option("prefix", "", str)
        self.endpoint_url: str | None = text(self, "endpoint_url", None)
        self.region: str | None = text(self, "region", None)
        self.access_key: str | None = text(self, "access_key", None)
        self.secret_key: str | None = self.option("secret_key", None, (str, type(None)))
        self.session_token: str | None = text(self, "session_token", None)
        if (self.access_key is None) != (self.secret_key is None):
            missing = "secret_key" if self.secret_key is None else "access_key"
            raise ConfigError(
                f"source {name!r} (s3): {missing!r} is required with "
                f"{'access_key' if missing == 'secret_key' else 'secret_key'!r}",
                hint="give both, or neither to use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
            )
        self.interval = number(self, "interval", 30.0, minimum=0.01)
        self.deletes: bool = self.option("deletes", False, bool)
        self.head: bool = self.option("head", False, bool)
        needs(self, "boto3")
        self._client: Any = None

    def _connect(self) -> Any:
        import boto3
        from botocore.config import Config

        session = boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            aws_session_token=self.session_token,
            region_name=self.region,
        )
        config = Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 2})
        return session.client("s3", endpoint_url=self.endpoint_url, config=config)

    def connect(self) -> None:
        if self._client is None:
            self._client = self._connect()

    def listing(self, stop: threading.Event) -> Iterator[tuple[str, str, Any]]:
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        )
        for page in pages:
            if stop.is_set():
                raise ListingStopped
            for item in page.get("Contents", []):
                yield item["Key"], item["ETag"].strip('"'), item

    def changed(self, key: str, version: str, item: Any, known: bool) -> Event:
        return self._object_event(key, version, item, "modified" if known else None)

    def deleted(self, key: str, version: str) -> Event:
        return self.event(
            key,
            kind="deleted",
            version=f"deleted:{version}",
            metadata={"bucket": self.bucket},
            location=f"s3://{self.bucket}/{key}",
        )

    def _object_event(self, key: str, etag: str, item: dict[str, Any], kind: str | None) -> Event:
        content_type = mimetypes.guess_type(key)[0]
        metadata: dict[str, Any] = {"bucket": self.bucket, "etag": etag}
        if isinstance(item.get("LastModified"), dt.datetime):
            metadata["last_modified"] = item["LastModified"].isoformat()
        if item.get("StorageClass"):
            metadata["storage_class"] = item["StorageClass"]
        if self.head:
            head = self._client.head_object(Bucket=self.bucket, Key=key)
            content_type = head.get("ContentType") or content_type
            metadata["user_metadata"] = head.get("Metadata", {})
            if head.get("VersionId"):
                metadata["version_id"] = head["VersionId"]
        return self.event(
            key,
            kind=kind or "created",
            version=etag,
            size=item.get("Size"),
            content_type=content_type,
            metadata=metadata,
            location=f"s3://{self.bucket}/{key}",
        )

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def open_object(self, location: str) -> tuple[Any, int]:
        """``(a stream of its bytes, its size)`` for ``s3://<bucket>/<key>`` — an object of
        this source's bucket under its prefix only (anything else answers like a missing
        object, whichever bucket a posted notification named)."""
        bucket, _, key = location.removeprefix("s3://").partition("/")
        if not location.startswith("s3://") or bucket != self.bucket:
            raise NotFoundError(f"source {self.name!r}: no object {location!r} in its bucket")
        if not key or not key.startswith(self.prefix):
            raise NotFoundError(f"source {self.name!r}: no object {location!r} under its prefix")
        if self._client is None:
            self._client = self._connect()
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise NotFoundError(
                f"source {self.name!r}: {location!r} cannot be read ({code})"
            ) from None
        except BotoCoreError as exc:
            raise ConnectionError(f"source {self.name!r}: {type(exc).__name__}") from None
        return answer["Body"], int(answer.get("ContentLength") or 0)

    def parse(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Event]:
        """A posted MinIO/S3 bucket notification (``{"Records": [...]}``) as events."""
        doc = load_json(body or b"{}", "the notification")
        return parse_bucket_notification(doc, self.name)


_TEXT_FIELDS = ("eTag", "etag", "versionId", "sequencer", "contentType")


def _check_fields(index: int, bucket: Any, obj: dict[str, Any]) -> None:
    """Refuse a record whose fields have the wrong types (they become an event's key,
    version, size and metadata, which triggers compare and store)."""
    wrong = None
    if not isinstance(bucket, str) or not bucket:
        wrong = "s3.bucket.name is not a bucket name"
    elif any(obj.get(f) is not None and not isinstance(obj[f], str) for f in _TEXT_FIELDS):
        wrong = "a text field of s3.object (eTag, versionId, sequencer …) is not text"
    elif obj.get("size") is not None and (
        isinstance(obj["size"], bool) or not isinstance(obj["size"], int) or obj["size"] < 0
    ):
        wrong = "s3.object.size is not a number of bytes"
    elif obj.get("userMetadata") is not None and not isinstance(obj["userMetadata"], dict):
        wrong = "s3.object.userMetadata is not an object"
    if wrong:
        raise InvalidInputError(f"bucket notification record {index}: {wrong}")


def parse_bucket_notification(body: dict[str, Any], source: str) -> list[Event]:
    """Events from an S3/MinIO bucket-notification body (``{"Records": [...]}``).

    The object key arrives URL-encoded and is decoded. The version is the object's
    version id when the bucket is versioned, else its ETag (so a re-sent notification of
    the same upload is the same event), and for deletions ``deleted:<sequencer>``.
    S3's ``s3:TestEvent`` (no ``Records``) gives no events.
    """
    if not isinstance(body, dict):
        raise InvalidInputError("a bucket notification must be a JSON object with 'Records'")
    records = body.get("Records", [])
    if not isinstance(records, list):
        raise InvalidInputError("a bucket notification's 'Records' must be a list")
    events: list[Event] = []
    for index, record in enumerate(records):
        try:
            name = str(record["eventName"])
            bucket = record["s3"]["bucket"]["name"]
            obj = record["s3"]["object"]
            key = unquote_plus(obj["key"])
        except (KeyError, TypeError) as exc:
            raise InvalidInputError(
                f"bucket notification record {index} lacks {exc}",
                hint="expected eventName, s3.bucket.name and s3.object.key",
            ) from None
        _check_fields(index, bucket, obj)
        check_text(key, f"bucket notification record {index}: s3.object.key")
        removed = "ObjectRemoved" in name
        etag = (obj.get("eTag") or obj.get("etag") or "").strip('"') or None
        sequencer = obj.get("sequencer")
        if removed:
            version = f"deleted:{sequencer or obj.get('versionId') or ''}"
        else:
            version = obj.get("versionId") or etag or sequencer
        metadata = {
            "event_name": name,
            "bucket": bucket,
            "etag": etag,
            "version_id": obj.get("versionId"),
            "sequencer": sequencer,
            "event_time": record.get("eventTime"),
        }
        if obj.get("userMetadata"):
            metadata["user_metadata"] = obj["userMetadata"]
        events.append(
            Event(
                source=source,
                key=key,
                kind="deleted" if removed else "created",
                version=version,
                size=obj.get("size"),
                content_type=obj.get("contentType") or mimetypes.guess_type(key)[0],
                metadata={k: v for k, v in metadata.items() if v is not None},
                location=f"s3://{bucket}/{key}",
            )
        )
    return events
