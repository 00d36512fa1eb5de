"""The console-script entry of ``twin``: ``twin run …`` straight to its command, the
rest through the whole Typer application of :mod:`twinengine.cli.main` — building the
whole command tree imports every command module and costs tens of milliseconds, which a
short workflow run feels, and ``twin run`` needs none of it.
"""

from __future__ import annotations

import sys


def main() -> None:
    """Console-script entry point."""
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        from twinengine.cli.run import run_alone

        run_alone(sys.argv[2:])
        return
    from twinengine.cli.main import app

    app()
