"""Patterns users give in trigger filters, matched in time linear in the text.

A ``key_regex`` is compiled with RE2 (``google-re2``): an automaton, never backtracking,
so ``^(a+)+$`` against a long key costs microseconds instead of freezing the server.
RE2 refuses what it cannot match that way — backreferences (``\\1``), lookarounds
(``(?=…)``, ``(?<!…)``), possessive and atomic groups — and patterns whose automaton
would need more than :data:`MAX_MEMORY`; :func:`compile_regex` turns each refusal into a
:class:`~twinengine.core.errors.ConfigError` with RE2's reason, when the trigger is added.
Globs (``key``, ``content_type``, metadata values) are matched with :mod:`fnmatch`,
whose translation is linear as well; both kinds are capped at :data:`MAX_PATTERN`
characters.
"""

from __future__ import annotations

import fnmatch
from functools import lru_cache
from typing import Any

import re2

from twinengine.core import ConfigError

MAX_PATTERN = 1024  # characters of one regular expression or glob
MAX_MEMORY = 8 << 20  # bytes RE2 may use for one compiled pattern


def _options() -> Any:
    options = re2.Options()
    options.max_mem = MAX_MEMORY
    options.log_errors = False  # the reason goes to the user, not to the server's stderr
    return options


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """``pattern`` compiled by RE2; :class:`ConfigError` saying why when it cannot be."""
    if not isinstance(pattern, str):
        raise ConfigError(f"a regular expression is text, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise ConfigError(
            f"the regular expression has {len(pattern)} characters; at most {MAX_PATTERN}"
        )
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ConfigError(
            f"not a regular expression RE2 can match: {reason} (in {pattern!r})",
            hint="RE2 syntax: no backreferences (\\1) or lookarounds ((?=…), (?<!…)); "
            "or use a glob (filter.key)",
        ) from None


def check_glob(pattern: Any) -> str:
    """``pattern`` if it is a usable glob (text of at most MAX_PATTERN characters)."""
    if not isinstance(pattern, str):
        raise ConfigError(f"a glob is text, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN:
        raise ConfigError(f"the glob has {len(pattern)} characters; at most {MAX_PATTERN}")
    return pattern


def regex_finds(pattern: str, text: str) -> bool:
    """Whether the RE2 ``pattern`` matches somewhere in ``text``."""
    return compile_regex(pattern).search(text) is not None


def glob_matches(text: str, pattern: str) -> bool:
    """Whether ``text`` matches the glob ``pattern`` (case-sensitive, ``*`` crosses ``/``)."""
    return fnmatch.fnmatchcase(text, pattern)
