"""Checked config values that several built-in sources share: numbers with a minimum, one
of a few choices, an optional package that must be installed, HTTP credentials (bearer
token, user name and password, or the user part of a URL — never left in an event's
location). Message payloads are decoded by :mod:`twinengine.events.payloads`.

Every check raises :class:`~twinengine.core.errors.ConfigError` naming the source, its
kind and the field, like :meth:`EventSource.option` does for a missing field.
"""

from __future__ import annotations

import importlib.util
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from twinengine.core import ConfigError
from twinengine.events.base import EventSource


def _fail(source: EventSource, key: str, text: str) -> ConfigError:
    return ConfigError(f"source {source.name!r} ({source.kind}): {key!r} {text}")


def number(source: EventSource, key: str, default: float, *, minimum: float = 0.0) -> float:
    """A number >= ``minimum`` (booleans refused although Python counts them as ints)."""
    value = source.config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _fail(source, key, "must be a number")
    if value < minimum:
        raise _fail(source, key, f"must be at least {minimum:g}")
    return float(value)


def integer(source: EventSource, key: str, default: int, *, minimum: int = 0) -> int:
    value = source.config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(source, key, "must be an integer")
    if value < minimum:
        raise _fail(source, key, f"must be at least {minimum}")
    return value


def text(source: EventSource, key: str, default: Any = ...) -> Any:
    """A non-empty string (required unless a default is given; the default may be None)."""
    value = source.option(key, default, (str, type(None)))
    if value is not None and not value.strip():
        raise _fail(source, key, "must not be empty")
    return value


def choice(source: EventSource, key: str, default: str, choices: tuple[str, ...]) -> str:
    value = source.option(key, default, str)
    if value not in choices:
        raise _fail(source, key, "must be one of " + ", ".join(choices))
    return value


def needs(source: EventSource, module: str, package: str | None = None) -> None:
    """Fail early, at configuration time, when an optional package is not installed."""
    if importlib.util.find_spec(module) is None:
        raise ConfigError(
            f"source {source.name!r} ({source.kind}) needs the Python package "
            f"{package or module!r}, which is not installed",
            hint="pip install 'twinengine[events]'",
        )


def http_credentials(
    source: EventSource, url: str | None = None
) -> tuple[dict[str, str], tuple[str, str] | None]:
    """Headers and basic-auth pair from ``token`` or ``username``/``password`` — or from
    the user part of ``url`` (``https://user:pw@host``) when neither is given."""
    token = text(source, "token", None)
    username = text(source, "username", None)
    password = source.option("password", None, (str, type(None)))
    if token and username:
        raise _fail(source, "token", "and 'username' exclude each other; give one of them")
    if username and password is None:
        raise _fail(source, "password", "is required with 'username'")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if not token and not username and url is not None:
        parts = urlsplit(url)
        if parts.username is not None:
            return headers, (unquote(parts.username), unquote(parts.password or ""))
    return headers, ((username, password) if username else None)


def without_user(url: str) -> str:
    """``url`` without its user part: what may appear in an event's location."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
