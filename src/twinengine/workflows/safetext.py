"""Text that can go everywhere a run's values go: command lines, environment variables,
file names, PROV-XML and JSON.

A NUL cannot be in an argument or an environment variable (the kernel's strings end
there: ``ValueError: embedded null byte`` when a step starts), XML 1.0 allows no other C0
control character than tab, newline and carriage return, nor U+FFFE and U+FFFF, and a lone
surrogate (``"\\ud800"`` in JSON) is not UTF-8. :func:`unsafe_character` finds the first
such character in a text; :func:`check_text` and :func:`check_value` (every string and key
of a JSON value, at any depth, walked without recursion) raise
:class:`~twinengine.core.errors.InvalidInputError` naming where it is, so bad input is a
clear 400 when it arrives — never a step that cannot start or an export that fails.
"""

from __future__ import annotations

import re
from typing import Any

from twinengine.core import InvalidInputError

_UNSAFE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MAX_DEPTH = 100  # lists and mappings inside each other in one value
_HINT = (
    "remove it: a NUL, a control character other than tab and newline, U+FFFE/U+FFFF or "
    "a lone surrogate cannot be passed to a program, an environment variable or XML"
)


def unsafe_character(text: str) -> str | None:
    """How the first unsafe character of ``text`` is named (``NUL (U+0000)``), or None."""
    found = _UNSAFE.search(text)
    if found is None:
        return None
    code = ord(found.group())
    return f"NUL (U+{code:04X})" if code == 0 else f"U+{code:04X}"


def check_text(text: Any, what: str) -> None:
    """Raise unless ``text`` (when it is a string) holds only safe characters."""
    if isinstance(text, str):
        bad = unsafe_character(text)
        if bad is not None:
            raise InvalidInputError(f"{what} holds the character {bad}", hint=_HINT)


def check_value(value: Any, what: str, where: str = "") -> None:
    """Raise unless every string and mapping key in ``value`` — at any depth, at most
    :data:`MAX_DEPTH` deep — holds only safe characters; the message names ``what`` and
    the place (``what 'x.files[2].basename'``)."""
    stack: list[tuple[str, Any, int]] = [(where, value, 0)]
    while stack:
        path, item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item, f"{what} {path!r}" if path else what)
            continue
        if not isinstance(item, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise InvalidInputError(
                f"{what} {path!r} is nested more than {MAX_DEPTH} levels deep",
                hint="flatten the value",
            )
        if isinstance(item, list):
            stack.extend((f"{path}[{i}]", v, depth + 1) for i, v in enumerate(item))
            continue
        for key, child in item.items():
            name = f"{path}.{key}" if path else str(key)
            check_text(key, f"{what} {name!r} (its name)")
            stack.append((name, child, depth + 1))
