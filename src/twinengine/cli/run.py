"""``twin run``: run a CWL workflow or tool, printing the output object like cwltool;
kept apart from the rest of the command tree, so that :func:`twinengine.cli.entry.main`
serves ``twin run …`` from this module alone, without importing or building the other
commands (tens of milliseconds of every run's start-up).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from twinengine.cli.errors import err_console, handle_errors

if TYPE_CHECKING:  # the workflows module is imported only when a run starts
    from twinengine.workflows import RunOptions

#: Typer settings of the command: unknown options are the workflow's inputs
CONTEXT = {"allow_extra_args": True, "ignore_unknown_options": True}


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
    sandbox: Annotated[
        str | None,
        typer.Option(help="Confine every step as twin serve does: bwrap, podman or auto."),
    ] = None,
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
        sandbox=sandbox,
    )
    raise typer.Exit(execute_run(argv, options))


def _absolute(path: str) -> str:
    if "://" in path or not os.path.exists(path.split("#", 1)[0]):
        return path
    head, sep, frag = path.partition("#")
    return str(Path(head).resolve()) + sep + frag


def run_alone(args: list[str]) -> None:
    """``twin run ARGS`` without the rest of the command tree."""
    alone = typer.Typer(pretty_exceptions_enable=False, rich_markup_mode="rich")
    alone.command(context_settings=CONTEXT)(run)
    alone(args=args, prog_name="twin run")
