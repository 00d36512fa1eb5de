"""Definitions users give as YAML or JSON text (event sources, triggers …), parsed within
bounds: a text of at most ``max_bytes``, nested at most ``max_depth`` deep, and no YAML
anchors, aliases or merge keys — an alias repeats a node without repeating its text, so a
few hundred bytes of nested aliases ("billion laughs") would grow to gigabytes.

:func:`load_definition` first reads the YAML event stream (libyaml's C parser: cheap,
builds nothing) to refuse what is out of bounds, naming the line, and only then builds
the value — with timestamps left as text, and only what JSON can hold (mappings with text
keys, lists, text, finite numbers, booleans, null), since definitions are stored as JSON.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from twinengine.core.errors import ConfigError

MAX_BYTES = 64 * 1024  # a definition's text: settings, not data
MAX_DEPTH = 32  # mappings and lists inside each other
_BIG = 2**63  # integers beyond this are refused (JSON readers and databases differ)
_HINT = "write every value out in full: anchors (&a), aliases (*a) and merge keys (<<) are refused"
_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(_Base):  # type: ignore[misc,valid-type]
    """The safe loader, minus timestamps (a date stays the text it was written as)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


def load_definition(
    text: str | bytes, what: str = "the definition", *, max_bytes: int = MAX_BYTES,
    max_depth: int = MAX_DEPTH,
) -> Any:  # fmt: skip
    """The value of a YAML/JSON ``text``; :class:`ConfigError` naming ``what`` and the
    line when it is too large, too deep, uses anchors/aliases/merge keys or is not YAML."""
    size = len(text.encode("utf-8") if isinstance(text, str) else text)
    if size > max_bytes:
        raise ConfigError(
            f"{what} is {size} bytes; at most {max_bytes} are accepted",
            hint="a definition holds settings, not data",
        )
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{what} is not UTF-8 text: {exc}") from None
    try:
        _check_events(text, what, max_depth)
        value = yaml.load(text, Loader=_Loader)  # nosec B506 - a safe loader (see _Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML/JSON: {exc}") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of 5000 digits
        raise ConfigError(f"{what} holds a value that cannot be read: {exc}") from None
    _check_json(value, what, "")
    return value


def _check_events(text: str, what: str, max_depth: int) -> None:
    frames: list[list[bool]] = []  # per open collection: [is a mapping, next node is a key]
    for event in yaml.parse(text, Loader=_Loader):
        line = event.start_mark.line + 1 if event.start_mark else "?"
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(f"{what}: line {line}: YAML alias *{event.anchor}", hint=_HINT)
        if getattr(event, "anchor", None):
            raise ConfigError(f"{what}: line {line}: YAML anchor &{event.anchor}", hint=_HINT)
        if isinstance(event, yaml.ScalarEvent | yaml.CollectionStartEvent) and frames:
            is_mapping, is_key = frames[-1]
            if is_mapping:
                frames[-1][1] = not is_key
            merge = isinstance(event, yaml.ScalarEvent) and event.value == "<<"
            if is_mapping and is_key and merge and event.implicit[0]:
                raise ConfigError(f"{what}: line {line}: YAML merge key <<", hint=_HINT)
        if isinstance(event, yaml.CollectionStartEvent):
            if len(frames) >= max_depth:
                raise ConfigError(
                    f"{what}: line {line}: nested more than {max_depth} levels deep",
                    hint="flatten the definition",
                )
            frames.append([isinstance(event, yaml.MappingStartEvent), True])
        elif isinstance(event, yaml.CollectionEndEvent):
            frames.pop()


def _check_json(value: Any, what: str, where: str) -> None:
    """Refuse what JSON (the stored form) cannot hold, naming where it is."""
    here = where or "the top level"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{what}: {here}: the key {key!r} is not text", hint="quote it")
            _check_json(item, what, f"{where}.{key}" if where else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json(item, what, f"{where}[{index}]")
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        return
    elif isinstance(value, int):
        if not -_BIG < value < _BIG:
            raise ConfigError(f"{what}: {here}: the integer is too large", hint="quote it")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ConfigError(f"{what}: {here}: {value} is not a finite number")
    else:
        raise ConfigError(
            f"{what}: {here}: a {type(value).__name__} value is not allowed",
            hint="definitions hold mappings, lists, text, numbers, true/false and null",
        )
