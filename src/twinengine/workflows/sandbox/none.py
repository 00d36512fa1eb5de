"""The ``none`` backend: commands run unconfined, as the server, with what they are given.

For a single-user server (``TWIN_SANDBOX=none``): the command line and the environment
are passed through untouched, nothing changes owner. ``twin serve`` warns loudly when it
starts this way, and ``/health`` and ``twin info`` say so.
"""

from __future__ import annotations

from twinengine.workflows.sandbox.base import Launch, Sandbox, SandboxedCommand


class NoSandbox(Sandbox):
    """Run commands as they are (no confinement)."""

    name = "none"
    confines = False

    def confine(self, cmd: SandboxedCommand) -> Launch:
        return Launch(list(cmd.argv), dict(cmd.env))

    def probe(self) -> str | None:
        return None

    def describe(self) -> str:
        return "none: steps and functions run unconfined, as the server's user"
