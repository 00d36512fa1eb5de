"""Payloads from outside — a webhook's body, a bucket notification, a message on a stream —
decoded within bounds.

Python's JSON reader recurses once per nesting level: 50 000 ``[`` in a request body
raise ``RecursionError`` deep inside it (a 500, and a reset keep-alive connection), and a
value a few hundred levels deep breaks every recursive walk after it. :func:`load_json`
refuses nesting deeper than :data:`MAX_DEPTH` with :class:`PayloadError` (an
:class:`~twinengine.core.errors.InvalidInputError`, so the API answers 400 naming the
problem); :func:`decode_payload` turns a message's bytes into JSON when they parse,
else text, else nothing (binary), and raises :class:`PayloadTooDeep` for a payload too deep
— a message source then skips that message (counted and logged, see
:meth:`~twinengine.events.base.EventSource.skip`) instead of failing on it forever.
"""

from __future__ import annotations

import json
from typing import Any

from twinengine.core.errors import InvalidInputError

MAX_DEPTH = 64  # lists and objects inside each other in one payload


class PayloadError(InvalidInputError):
    """A payload that cannot be taken: not JSON where JSON is required, or too deep."""


class PayloadTooDeep(PayloadError):
    """A JSON payload nested deeper than :data:`MAX_DEPTH`."""


def depth_over(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists and mappings more than ``limit`` deep (walked without
    recursion, stopping at the first level past the limit)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def load_json(data: bytes | str, what: str) -> Any:
    """The JSON value of ``data``; :class:`PayloadError` naming ``what`` when it is not
    JSON or nests deeper than :data:`MAX_DEPTH`."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise _too_deep(what) from None
    except ValueError as exc:  # also UnicodeDecodeError
        raise PayloadError(f"{what} is not valid JSON: {exc}") from None
    if depth_over(value):
        raise _too_deep(what)
    return value


def _too_deep(what: str) -> PayloadTooDeep:
    return PayloadTooDeep(
        f"{what} is nested more than {MAX_DEPTH} levels deep",
        hint=f"send flatter JSON: lists and objects at most {MAX_DEPTH} levels inside each other",
    )


def decode_payload(raw: bytes, content_type: str | None = None) -> tuple[Any, str | None]:
    """A message payload as JSON when it parses, else text, else None (binary); and its
    content type. :class:`PayloadError` when it is JSON nested too deep."""
    try:
        textual = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, content_type or "application/octet-stream"
    stripped = textual.lstrip()
    if stripped[:1] in ("{", "[", '"') or (content_type or "").endswith("json"):
        try:
            return load_json(textual, "the message"), content_type or "application/json"
        except PayloadTooDeep:
            raise
        except PayloadError:
            pass  # not JSON after all: its text
    return textual, content_type or "text/plain"
