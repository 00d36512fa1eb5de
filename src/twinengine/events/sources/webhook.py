"""An HTTP webhook as an event source: passive, its events arrive through the API's
``POST /api/v1/events/{source}`` route, which hands the request to :meth:`parse`.

A JSON object is one event, a JSON list one event per item; each item's key comes from
``key_field`` (default ``key``; the source's name when the item lacks it) and its version
from ``version_field`` or else the sha256 of the item, so a re-sent request is the same
event. Any other body is one event with the text as ``data``. With ``format: s3`` the body
is an S3/MinIO bucket notification. With ``secret`` set, the request must carry
``X-Twin-Signature: sha256=<hex HMAC-SHA256 of the body>``. JSON is read within bounds
(:func:`~twinengine.events.payloads.load_json`: nested at most 64 deep), so a hostile
body is a 400 naming the problem.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from typing import Any

from twinengine.core.errors import AuthError
from twinengine.events.base import Emit, Event, EventSource, SourceState
from twinengine.events.payloads import PayloadError, PayloadTooDeep, load_json
from twinengine.events.sources.options import choice, text
from twinengine.events.sources.s3 import parse_bucket_notification
from twinengine.notify.webhook import SIGNATURE_HEADER, verify_signature
from twinengine.notify.webhook import sign as notify_sign
from twinengine.workflows.safetext import check_text


def sign(body: bytes, secret: str) -> str:
    """The ``X-Twin-Signature`` value for ``body`` (what a sender computes): the same
    signature as TwinEngine's own webhooks (:func:`twinengine.notify.webhook.sign`)."""
    return notify_sign(secret, body)


class WebhookSource(EventSource):
    """Events POSTed to the API; :meth:`run` only waits, :meth:`parse` does the work."""

    kind = "webhook"
    secret_fields = frozenset({"secret"})  # sealed at rest, shown as ***
    passive = True  # nothing to watch: the API receives its events

    def __init__(self, name: str, config: dict[str, Any], state: SourceState | None = None) -> None:
        super().__init__(name, config, state)
        self.format = choice(self, "format", "json", ("json", "s3"))
        self.key_field: str = text(self, "key_field", "key")
        self.version_field: str | None = text(self, "version_field", None)
        self.secret: str | None = text(self, "secret", None)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        stop.wait()

    def verify(self, body: bytes, headers: Mapping[str, str]) -> None:
        """Raise :class:`AuthError` unless the body's signature matches ``secret``."""
        if self.secret is None:
            return
        given = next((v for k, v in headers.items() if k.lower() == SIGNATURE_HEADER.lower()), "")
        if not given:
            raise AuthError(
                f"webhook {self.name!r} needs a {SIGNATURE_HEADER} header",
                hint="send sha256=<hex HMAC-SHA256 of the body with the source's secret>",
            )
        if not verify_signature(self.secret, body, given.strip()):
            raise AuthError(f"webhook {self.name!r}: the {SIGNATURE_HEADER} does not match")

    def parse(self, body: bytes, content_type: str, headers: Mapping[str, str]) -> list[Event]:
        """Check the signature and turn one request's body into events."""
        self.verify(body, headers)
        media = (content_type or "").split(";")[0].strip().lower()
        if self.format == "s3":
            return parse_bucket_notification(self._json(body), self.name)
        if media == "application/json" or media.endswith("+json") or not media:
            try:
                payload = load_json(body, f"webhook {self.name!r}: the body")
            except PayloadTooDeep:
                raise
            except PayloadError:
                if media:
                    raise
                payload = None
            if isinstance(payload, list):
                return [self._item(item, len(body), index) for index, item in enumerate(payload)]
            if isinstance(payload, dict):
                return [self._item(payload, len(body), None)]
        try:
            data: Any = body.decode("utf-8")
        except UnicodeDecodeError:
            data = None  # binary: only its size and hash travel
        return [
            self.event(
                self.name,
                kind="webhook",
                version=hashlib.sha256(body).hexdigest(),
                size=len(body),
                content_type=content_type or None,
                data=data,
            )
        ]

    def _json(self, body: bytes) -> Any:
        return load_json(body, f"webhook {self.name!r}: the body")

    def _item(self, item: Any, size: int, index: int | None) -> Event:
        key, version = self.name, None
        if isinstance(item, dict):
            if item.get(self.key_field) not in (None, ""):
                key = str(item[self.key_field])
            if self.version_field and item.get(self.version_field) not in (None, ""):
                version = str(item[self.version_field])
        if version is None:
            canonical = json.dumps(item, sort_keys=True, separators=(",", ":"))
            version = hashlib.sha256(canonical.encode()).hexdigest()
        where = f"webhook {self.name!r}: the item" + ("" if index is None else f" {index}")
        check_text(key, f"{where}'s key")  # keys and versions are stored as text columns
        check_text(version, f"{where}'s version")
        return self.event(
            key,
            kind="webhook",
            version=version,
            size=size,
            content_type="application/json",
            metadata={} if index is None else {"index": index},
            data=item,
        )
