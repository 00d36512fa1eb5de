"""Which settings of an event source are secrets, and what happens to them: sealed in the
database, shown as ``***`` in every answer, kept when an editor sends ``***`` back.

A value is a secret when its key is one the source kind declares
(:attr:`~twinengine.events.base.EventSource.secret_fields`) or is named like one at any
depth (:func:`secret_name`: the name normalised — ``apiKey``, ``API-Key`` and ``api_key``
are one name — and its last word one of :data:`SECRET_WORDS`, or ``key`` after one of
:data:`KEY_KINDS`), every text under such a key (``credentials: {user: …}``), and the
password part of any URL (``redis://:pw@host``, ``https://user:pw@dav.example.org``).
:func:`seal` encrypts them with the server's :class:`~twinengine.core.secrets.SecretBox`,
:func:`unseal` opens them for the source itself, :func:`redact` shows them as ``***`` (a
URL keeps all but its password), :func:`restore` puts the stored value back where an
update sends the redacted one, and :func:`scrub` removes them from any text (an error, a
log line, an event).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twinengine.core.secrets import SecretBox, is_sealed

REDACTED = "***"
#: a setting whose normalised name ends in one of these words holds a secret
SECRET_WORDS = frozenset(
    {
        "password", "passwords", "passwd", "pwd", "pw", "pass", "passphrase", "secret",
        "secrets", "token", "tokens", "apikey", "apikeys", "credential", "credentials",
        "creds", "auth", "authorization", "privatekey", "sas", "signature", "cookie",
        "cookies", "bearer", "jwt", "otp",
    }
)  # fmt: skip
#: ``<kind>_key`` (``api_key``, ``x_api_key``, ``secret_access_key`` …) holds a secret
KEY_KINDS = frozenset({"api", "private", "secret", "signing", "encryption", "master", "account"})
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[^a-z0-9]+")


def secret_name(name: Any) -> bool:
    """Whether a setting called ``name`` holds a secret: ``apiKey``, ``X-Api-Key``,
    ``client_secret``, ``sasToken``, ``db.password``, ``aws_secret_access_key`` do;
    ``access_key``, ``key_field``, ``username`` do not."""
    words = [w for w in _SEPARATORS.split(_CAMEL.sub("_", str(name)).lower()) if w]
    if not words:
        return False
    if words[-1] in SECRET_WORDS:
        return True
    return words[-1] == "key" and any(w in KEY_KINDS for w in words[:-1])


Leaf = Callable[[str, bool], Any]  # (value, is a URL with a password) -> new value


def _url_password(value: str) -> str | None:
    """The password in a URL's user part (None when there is none)."""
    if "://" not in value or "@" not in value:
        return None
    try:
        return urlsplit(value).password
    except ValueError:
        return None


def _map(
    value: Any, leaf: Leaf, secret_keys: frozenset[str] = frozenset(), inside: bool = False
) -> Any:
    """``value`` with every secret leaf replaced by ``leaf(text, is_url)``; ``inside``: the
    value lies under a secret-named key (all its texts are secrets)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            named = inside or key in secret_keys or secret_name(key)
            out[key] = _map(item, leaf, inside=named)
        return out
    if isinstance(value, list):
        return [_map(item, leaf, inside=inside) for item in value]
    if isinstance(value, str) and (inside or is_sealed(value)):
        return leaf(value, not inside)
    if isinstance(value, str) and _url_password(value):
        return leaf(value, True)
    return value


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{REDACTED}@{host}"))


def shown_url(url: str) -> str:
    """``url`` as a log line or an answer may show it (its password as ``***``)."""
    return _hide_password(url) if _url_password(url) else url


def redact(config: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> dict[str, Any]:
    """``config`` (plain or sealed) as an answer shows it: each secret ``***``."""

    def hide(value: str, is_url: bool) -> str:
        if is_url and not is_sealed(value):
            return _hide_password(value)
        return REDACTED

    return _map(config, hide, secret_keys)


def seal(
    config: dict[str, Any], box: SecretBox, secret_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``config`` as stored: each secret (a whole URL that has a password) encrypted."""
    return _map(config, lambda value, _: box.seal(value), secret_keys)


def unseal(config: dict[str, Any], box: SecretBox) -> dict[str, Any]:
    """``config`` as the source needs it: every sealed value opened (plain ones kept)."""
    return _map(config, lambda value, _: box.open(value))


def redacted_view(
    config: dict[str, Any], box: SecretBox, secret_keys: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """A stored config as answers show it (URLs keep their user and host)."""

    def show(value: str, is_url: bool) -> str:
        if not is_sealed(value):
            return _hide_password(value) if is_url else REDACTED
        try:
            plain = box.open(value)
        except Exception:  # a key that does not open it: nothing more to show
            return REDACTED
        return _hide_password(plain) if _url_password(plain) else REDACTED

    return _map(config, show, secret_keys)


def restore(new: Any, old: Any, secret_keys: frozenset[str] = frozenset()) -> Any:
    """``new`` with each value that is the redacted form of the plain ``old`` one at the
    same place replaced by the ``old`` value: an editor who sends back what GET showed
    keeps the stored secret; a new value replaces it."""
    shown = redact(old, secret_keys) if isinstance(old, dict) else old
    return _restore(new, old, shown)


def _restore(new: Any, old: Any, shown: Any) -> Any:
    if isinstance(new, dict) and isinstance(old, dict) and isinstance(shown, dict):
        return {k: _restore(v, old.get(k), shown.get(k)) for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, list) and isinstance(shown, list):
        if len(new) != len(old):
            return new
        return [_restore(n, o, s) for n, o, s in zip(new, old, shown, strict=True)]
    if isinstance(new, str) and REDACTED in new and new == shown and old != shown:
        return old
    return new


def still_redacted(config: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> bool:
    """Whether a secret in ``config`` is still ``***`` (no stored value it stands for)."""
    found: list[bool] = []

    def check(value: str, is_url: bool) -> str:
        found.append(value == REDACTED or (is_url and _url_password(value) == REDACTED))
        return value

    _map(config, check, secret_keys)
    return any(found)


def secret_values(config: dict[str, Any], secret_keys: frozenset[str] = frozenset()) -> list[str]:
    """The plain secrets in ``config`` (URL passwords on their own), longest first."""
    found: list[str] = []

    def collect(value: str, is_url: bool) -> str:
        password = _url_password(value) if is_url else None
        found.append(password or value)
        if password and is_url:
            found.append(value)
        return value

    _map(config, collect, secret_keys)
    return sorted({s for s in found if len(s) >= 3 and s != REDACTED}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of a secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
