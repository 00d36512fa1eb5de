"""How the CLI reports user errors: one red line (and a hint), no traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console

from twinengine.core import TwinError

err_console = Console(stderr=True, highlight=False)
F = TypeVar("F", bound=Callable[..., Any])


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
