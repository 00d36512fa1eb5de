"""The ``webhook`` channel: an HTTP POST of the note as JSON, optionally HMAC-signed.

The target is an ``http(s)://`` URL. To have deliveries signed, append the shared secret
as a fragment: ``https://hooks.example.org/twin#secret=s3cr3t`` (a fragment never
leaves this machine: it is cut off before the request is made, and hidden when the
subscription is shown). A signed request carries
``X-Twin-Signature: sha256=<hex HMAC-SHA256 of the raw request body with the secret>``;
:func:`verify_signature` is the receiver's check. Every request also carries
``X-Twin-Event`` (the note's kind) and ``X-Twin-Delivery`` (its id). Any answer other
than 2xx, a timeout (10 s) or a connection error is a failed delivery, reported as
"failed" only (the answer or the connection error goes to the server log: no port-scan
oracle). The URL's host must be public (:mod:`twinengine.notify.addresses`) when
subscribing and when delivering, and the request goes to the address that was checked
(and, as every delivery's, only to public addresses: :mod:`twinengine.notify.egress`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from urllib.parse import urlsplit, urlunsplit

from twinengine.core import TwinError
from twinengine.notify.addresses import check_host, public_address
from twinengine.notify.base import DeliveryError, Notifier
from twinengine.notify.egress import public_only
from twinengine.notify.note import Note

log = logging.getLogger("twinengine.notify")

SIGNATURE_HEADER = "X-Twin-Signature"
_SECRET = "secret="
TIMEOUT = 10.0


def split_target(target: str) -> tuple[str, str | None]:
    """``(URL to post to, secret or None)`` of a webhook target."""
    url, _, fragment = target.partition("#")
    if not fragment:
        return url, None
    if not fragment.startswith(_SECRET) or len(fragment) == len(_SECRET):
        raise TwinError(
            "a webhook URL may carry only a #secret=… fragment",
            hint="e.g. https://hooks.example.org/twin#secret=LONG-RANDOM-TEXT",
        )
    return url, fragment[len(_SECRET) :]


def _pinned(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """``url`` with its host replaced by the public address it resolves to now (the
    ``Host`` header and, over https, the TLS server name keep the name): the request
    goes where the address check looked, not where a second lookup might point."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = public_address(host, port, f"webhook {url}")
    shown = f"[{address}]" if ":" in address else address
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = (userinfo + "@" if userinfo else "") + f"{shown}:{port}"
    headers["Host"] = parts.netloc.rpartition("@")[2]
    extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
    return urlunsplit(parts._replace(netloc=netloc)), extensions


def sign(secret: str, body: bytes) -> str:
    """The ``X-Twin-Signature`` value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is the right signature of ``body`` (constant-time compare)."""
    return bool(header) and hmac.compare_digest(sign(secret, body), header or "")


class WebhookNotifier(Notifier):
    """POSTs ``note.as_dict()`` as JSON to the target URL."""

    channel = "webhook"

    def __init__(self) -> None:
        import httpx

        from twinengine import __version__

        self._client = httpx.Client(
            timeout=TIMEOUT,
            follow_redirects=False,
            headers={"User-Agent": f"TwinEngine/{__version__}"},
        )

    def check_target(self, target: str | None) -> str | None:
        target = super().check_target(target) or ""
        url, _secret = split_target(target)
        try:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            scheme, host = "", None
        if scheme not in ("http", "https") or not host:
            raise TwinError(
                f"a webhook target must be an http(s) URL, not {url[:80]!r}",
                hint="e.g. https://hooks.example.org/twin (add #secret=… to have it signed)",
            )
        check_host(host, f"webhook {url}")
        return target

    def describe(self, target: str | None) -> str | None:
        if not target or "#" not in target:
            return target
        return target.partition("#")[0] + "#secret=***"

    def send(self, note: Note, target: str | None) -> None:
        import httpx

        url, secret = split_target(target or "")
        body = json.dumps(note.as_dict(), default=str).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Twin-Event": note.kind,
            "X-Twin-Delivery": note.id or "",
        }
        if secret:
            headers[SIGNATURE_HEADER] = sign(secret, body)
        pinned, extensions = _pinned(url, headers)
        failed = DeliveryError(
            f"webhook {url} could not be reached or did not accept the note: the delivery failed",
            hint="the server log has the receiver's answer",
        )
        try:
            with public_only(f"webhook {url}"):
                answer = self._client.post(
                    pinned, content=body, headers=headers, extensions=extensions
                )
        except httpx.HTTPError as exc:
            log.warning("webhook %s could not be reached: %s", url, exc or type(exc).__name__)
            raise failed from None
        if not 200 <= answer.status_code < 300:
            log.warning("webhook %s answered HTTP %s", url, answer.status_code)
            raise failed

    def close(self) -> None:
        self._client.close()
