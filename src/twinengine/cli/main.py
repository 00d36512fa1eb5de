"""The ``twin`` command: one Typer application, one sub-command group per module."""

from __future__ import annotations

from typing import Annotated

import typer

from twinengine import __version__
from twinengine.cli import access as access_cli
from twinengine.cli import ai as ai_cli
from twinengine.cli import events as events_cli
from twinengine.cli import functions as functions_cli
from twinengine.cli import models as models_cli
from twinengine.cli import prov as prov_cli
from twinengine.cli import run as run_cli
from twinengine.cli import runs as runs_cli
from twinengine.cli import tune as tune_cli
from twinengine.cli.errors import handle_errors

app = typer.Typer(
    name="twin",
    help="TwinEngine: compose, run and trace digital-twin workflows.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
app.add_typer(runs_cli.app, name="runs")
app.add_typer(prov_cli.app, name="prov")
app.add_typer(access_cli.users_app, name="users")
app.add_typer(access_cli.tokens_app, name="tokens")
app.add_typer(access_cli.projects_app, name="projects")
app.add_typer(functions_cli.app, name="functions")
app.add_typer(events_cli.sources_app, name="sources")
app.add_typer(events_cli.triggers_app, name="triggers")
app.add_typer(events_cli.events_app, name="events")
app.command("train")(ai_cli.train)
app.command("tune")(tune_cli.tune)
app.add_typer(models_cli.app, name="models")
app.command("serve")(access_cli.serve)
app.command(context_settings=run_cli.CONTEXT)(run_cli.run)


@app.command()
@handle_errors
def validate(
    workflow: Annotated[str, typer.Argument(help="CWL document to check.")],
) -> None:
    """Check a CWL document; errors are reported with file:line:column."""
    from twinengine.workflows import load_document

    process = load_document(workflow)
    kind = process.tool.get("class", "process")
    steps = len(getattr(process, "steps", []) or [])
    detail = f" with {steps} step(s)" if steps else ""
    print(f"{workflow} is a valid CWL {kind}{detail}.")


@app.command()
def version() -> None:
    """Print the TwinEngine version."""
    print(f"twinengine {__version__}")


@app.command()
@handle_errors
def info() -> None:
    """Show the settings in force and the registered executors."""
    from twinengine.core import get_settings
    from twinengine.workflows import available_executors
    from twinengine.workflows.containers import working_container_engine

    s = get_settings()
    print(f"home          {s.home}")
    print(f"database      {s.database_url}")
    print(f"store         {s.store}")
    print(f"executor      {s.executor}  (available: {', '.join(sorted(available_executors()))})")
    print(f"cores         {s.cores}")
    print(f"ram_mb        {s.ram_mb or 'all'}")
    print(f"containers    {working_container_engine() or 'none (DockerRequirement unsupported)'}")
    print(f"config file   {s.config_file or '-'}")
    print(f"sandbox       {_sandbox_line(s)}")


def _sandbox_line(settings: object) -> str:
    """What ``twin serve`` would confine steps with here (it starts one to know)."""
    from twinengine.workflows.sandbox import SandboxUnavailableError, server_sandbox

    try:
        return server_sandbox(settings).describe()
    except SandboxUnavailableError as exc:
        return f"none works here, twin serve refuses to start: {exc}"
