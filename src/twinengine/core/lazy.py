"""Packages whose public names are imported on first use.

A command that needs one light function of a package should not pay for the heavy
libraries its other functions use (cwltool, SQLAlchemy, the ``prov`` library): a package
``__init__`` declares ``name -> module`` and gets its ``__getattr__``/``__dir__`` here.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, importing ``exports[name]`` on first use."""
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # later look-ups skip this function
        return value

    def __dir__() -> list[str]:
        return names

    return __getattr__, __dir__
