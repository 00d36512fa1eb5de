"""``twin runs``: list, show, logs, cancel, resume and delete stored runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors

app = typer.Typer(help="Inspect and manage stored workflow runs.", no_args_is_help=True)
console = LazyConsole(highlight=False)

_COLOURS = {
    "succeeded": "green",
    "failed": "red",
    "running": "cyan",
    "queued": "white",
    "cancelled": "yellow",
    "interrupted": "magenta",
    "skipped": "dim",
}


def _store() -> Any:
    from twinengine.workflows import RunStore

    return RunStore()


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "-"
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _duration(start: dt.datetime | None, end: dt.datetime | None) -> str:
    if start is None:
        return "-"
    if start.tzinfo is None:
        start = start.replace(tzinfo=dt.UTC)
    if end is not None and end.tzinfo is None:
        end = end.replace(tzinfo=dt.UTC)
    seconds = ((end or dt.datetime.now(dt.UTC)) - start).total_seconds()
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _state(state: str) -> str:
    return f"[{_COLOURS.get(state, 'white')}]{state}[/]"


@app.command("list")
@handle_errors
def list_runs(
    state: Annotated[str | None, typer.Option(help="Only runs in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="How many runs to show.")] = 20,
    offset: Annotated[int, typer.Option(min=0, help="Skip this many of the newest runs.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List runs, newest first."""
    items = _store().list(state=state, limit=limit, offset=offset)
    if as_json:
        print(json.dumps(items, default=str, indent=2))
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for col in ("run", "name", "state", "steps", "started", "took"):
        table.add_column(col)
    for item in items:
        counts = item["steps"]
        steps = " ".join(f"{k}:{v}" for k, v in sorted(counts.items())) or "-"
        table.add_row(
            item["id"],
            item["name"],
            _state(item["state"]),
            steps,
            _when(item["started_at"]),
            _duration(item["started_at"], item["ended_at"]),
        )
    if not items:
        console.print("[dim]no runs yet — start one with `twin run WORKFLOW JOB`[/]")
        return
    console.print(table)


@app.command()
@handle_errors
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a run: its state, inputs, outputs and steps."""
    store = _store()
    run = store.get(run_id)
    steps = store.steps(run["id"])
    if as_json:
        print(json.dumps({**run, "step_list": steps}, default=str, indent=2))
        return
    console.print(f"[bold]run {run['id']}[/]  {run['name']}  {_state(run['state'])}")
    console.print(f"  workflow  {run['workflow']}")
    console.print(f"  executor  {run['executor']}   attempt {run['attempt']}")
    console.print(
        f"  started   {_when(run['started_at'])}   took "
        f"{_duration(run['started_at'], run['ended_at'])}"
    )
    if run["outdir"]:
        console.print(f"  outdir    {run['outdir']}")
    console.print(f"  work dir  {run['work_dir']}")
    if run["error"]:
        console.print(f"  [red]error[/]     {run['error']}")
    from rich.table import Table

    table = Table(box=None, header_style="bold", title="steps", title_justify="left")
    for col in ("step", "state", "try", "exit", "time", "peak mem", "note"):
        table.add_column(col)
    for step in steps:
        mem = step["peak_memory"]
        table.add_row(
            step["name"],
            _state(step["state"]),
            str(step["attempt"]),
            "-" if step["exit_code"] is None else str(step["exit_code"]),
            "-" if step["wall_time"] is None else f"{step['wall_time']:.2f}s",
            "-" if not mem else f"{mem / 2**20:.1f} MiB",
            (step["message"] or "")[:60],
        )
    console.print(table)
    if run["outputs"] is not None:
        console.print("[bold]outputs[/]")
        console.print_json(json.dumps(run["outputs"]))


@app.command()
@handle_errors
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    step: Annotated[str | None, typer.Argument(help="Step name or id (default: all).")] = None,
    stdout: Annotated[
        bool, typer.Option("--stdout", help="Show stdout instead of stderr.")
    ] = False,
) -> None:
    """Print the stderr (or stdout) of a run's steps."""
    text = _store().logs(run_id, step, "stdout" if stdout else "stderr")
    sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")


@app.command()
@handle_errors
def cancel(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]) -> None:
    """Cancel a running run: its running steps are stopped."""
    run = _store().cancel(run_id)
    console.print(f"cancelling run {run['id']}")


@app.command()
@handle_errors
def resume(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
) -> None:
    """Continue an interrupted, failed or cancelled run, reusing its succeeded steps."""
    from twinengine.cli.run import execute_run
    from twinengine.workflows import RunOptions

    argv, cwd, options = RunOptions.for_resume(_store().reopen(run_id))
    if os.path.isdir(cwd):
        os.chdir(cwd)  # relative paths in the stored command line
    raise typer.Exit(execute_run(argv, options))


@app.command()
@handle_errors
def delete(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")]) -> None:
    """Delete a finished run's records (its output folder is left alone)."""
    store = _store()
    run = store.get(run_id)
    store.delete(run["id"])
    console.print(f"deleted run {run['id']}")
