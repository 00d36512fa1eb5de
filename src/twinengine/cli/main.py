"""The ``twin`` command: one Typer application, one sub-command group per module."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twinengine import __version__
from twinengine.cli import access as access_cli
from twinengine.cli import ai as ai_cli
from twinengine.cli import events as events_cli
from twinengine.cli import functions as functions_cli
from twinengine.cli import models as models_cli
from twinengine.cli import prov as prov_cli
from twinengine.cli import runs as runs_cli
from twinengine.cli import tune as tune_cli
from twinengine.cli.errors import err_console, handle_errors

if TYPE_CHECKING:  # the workflows module (cwltool) is imported only by commands that run
    from twinengine.workflows import RunOptions

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


def execute_run(argv: list[str], options: RunOptions) -> int:
    """Run cwltool-style ``argv`` with live progress when stderr is a terminal."""
    from twinengine.workflows import run_cwl

    if sys.stderr.isatty() and "--quiet" not in argv:
        from twinengine.cli.progress import LiveProgress

        stdout = sys.stdout  # the CWL output object goes here, never into the live panel
        with LiveProgress(err_console.real) as progress:
            options.listeners.append(progress)

            def told(run_id: str) -> None:
                progress.run_id = run_id

            options.on_run = told
            return run_cwl(["--quiet", *argv], options, stdout=stdout)
    return run_cwl(argv, options)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
@handle_errors
def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="CWL document (tool or workflow).")],
    job: Annotated[
        str | None, typer.Argument(help="Input object (YAML/JSON); or pass --name value inputs.")
    ] = None,
    outdir: Annotated[
        Path | None,
        typer.Option(help="Where final outputs go (default: TWIN_HOME/runs/RUN/outputs)."),
    ] = None,
    executor: Annotated[str | None, typer.Option(help="Executor: local (default) or dask.")] = None,
    parallel: Annotated[
        int | None, typer.Option(min=1, help="Cores to use at once (default: all).")
    ] = None,
    ram_mb: Annotated[int | None, typer.Option(min=0, help="RAM to use at once, MiB.")] = None,
    cache: Annotated[
        bool, typer.Option(help="Reuse identical step executions of any run.")
    ] = False,
    retries: Annotated[int, typer.Option(min=1, help="Default attempts per step.")] = 1,
    name: Annotated[str | None, typer.Option(help="A name for the run.")] = None,
    dask_address: Annotated[
        str | None, typer.Option(help="Existing Dask scheduler (default: start a local one).")
    ] = None,
    quiet: Annotated[bool, typer.Option(help="Only print warnings and errors.")] = False,
    native: Annotated[
        bool, typer.Option(help="Let plain documents run without cwltool (--no-native: never).")
    ] = True,
) -> None:
    """Run a CWL workflow or tool; prints the output object like cwltool."""
    from twinengine.core import get_settings, new_id
    from twinengine.workflows import RunOptions

    run_id = new_id()
    if outdir is None:
        outdir = get_settings().runs_dir / run_id / "outputs"
    document = workflow.split("#", 1)[0]
    if "://" not in workflow and not os.path.isfile(document):
        from twinengine.core.errors import NotFoundError

        raise NotFoundError(
            f"no CWL document at {document}",
            hint="give the path of a .cwl file (or a URL)",
        )
    try:  # one clear message for both paths, before anything runs
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        from twinengine.core.errors import InvalidInputError

        raise InvalidInputError(
            f"cannot use {outdir} as the output folder: {exc.strerror or exc}",
            hint="give --outdir a folder you can write to",
        ) from None
    argv = [f"--outdir={outdir.resolve()}"]
    if quiet:
        argv.append("--quiet")
    extra = list(ctx.args)
    argv.append(_absolute(workflow))
    if job is not None:
        if job.startswith("-"):
            extra.insert(0, job)
        else:
            argv.append(_absolute(job))
    argv.extend(extra)
    options = RunOptions(
        executor=executor,
        cores=parallel,
        ram_mb=ram_mb,
        cache=cache,
        retries=retries,
        run_id=run_id,
        name=name,
        dask_address=dask_address,
        native=native,
    )
    raise typer.Exit(execute_run(argv, options))


def _absolute(path: str) -> str:
    if "://" in path or not os.path.exists(path.split("#", 1)[0]):
        return path
    head, sep, frag = path.partition("#")
    return str(Path(head).resolve()) + sep + frag


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


def main() -> None:
    """Console-script entry point."""
    from twinengine.core.programs import own_bin_on_path

    own_bin_on_path()  # steps calling `twin` find it (see twinengine.core.programs)
    app()
