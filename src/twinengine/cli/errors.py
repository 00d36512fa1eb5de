"""How the CLI reports user errors: one red line (and a hint), no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from twinengine.core import TwinError

F = TypeVar("F", bound=Callable[..., Any])


class LazyConsole:
    """A rich Console made on first use: commands that print nothing styled (``twin run``
    prints JSON) do not import rich at all."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    @property
    def real(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


err_console = LazyConsole(stderr=True, highlight=False)


def report(exc: TwinError) -> None:
    err_console.print(f"[bold red]error:[/] {exc.message}", soft_wrap=True)
    if exc.hint:
        err_console.print(f"  [dim]hint:[/] {exc.hint}", soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn :class:`TwinError` into a message and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TwinError as exc:
            report(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            sys.exit(130)

    return wrapper  # type: ignore[return-value]
