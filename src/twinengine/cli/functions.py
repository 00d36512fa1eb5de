"""``twin functions``: deploy, list, show, invoke, read the logs of and delete functions.

The commands work on this machine's metadata database. Names are per project: a command
that names a function takes ``--project``, or finds the name in the one project that has
it (and asks for ``--project`` when several do). ``invoke`` runs the call here,
in a :class:`~twinengine.events.function_service.FunctionService` of its own (its
workers live as long as the command), records it like the server does and prints the
call as JSON; it exits 1 when the function failed.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors
from twinengine.core import InvalidInputError

app = typer.Typer(
    help="Functions: serverless steps (a Python callable or a command) in worker pools.",
    no_args_is_help=True,
)
console = LazyConsole(highlight=False, markup=False)  # names and logs may hold [brackets]


def _service() -> Any:
    from twinengine.events.function_service import FunctionService

    return FunctionService()


Project = Annotated[
    str | None, typer.Option(help="Its project (needed when several projects have the name).")
]


def _json(value: Any) -> str:
    def default(item: Any) -> str:
        if isinstance(item, dt.datetime):
            return item.isoformat().replace("+00:00", "Z")
        return str(item)

    return json.dumps(value, default=default, indent=2)


def _parse_env(items: list[str] | None) -> dict[str, str]:
    env = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidInputError(f"--env {item!r} is not KEY=VALUE")
        env[key] = value
    return env


def _read_input(text: str | None, path: Path | None) -> Any:
    if text is not None and path is not None:
        raise InvalidInputError("give --input or --input-file, not both")
    if path is not None:
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror}") from None
    if text is None:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise InvalidInputError(
            f"the input is not valid JSON: {exc}", hint='e.g. --input \'{"text": "hello"}\''
        ) from None


@app.command()
@handle_errors
def deploy(
    name: Annotated[str, typer.Argument(help="Function name (unique within its project).")],
    python: Annotated[str | None, typer.Option(help="A callable: module:function.")] = None,
    command: Annotated[
        str | None, typer.Option(help='A command line, e.g. "tr a-z A-Z" (run once per call).')
    ] = None,
    project: Annotated[str, typer.Option(help="The project it belongs to.")] = "default",
    min_workers: Annotated[int, typer.Option("--min", min=0, help="Workers kept warm.")] = 0,
    max_workers: Annotated[int, typer.Option("--max", min=1, help="Most workers at once.")] = 2,
    timeout: Annotated[float, typer.Option(min=0.001, help="Seconds a call may take.")] = 60,
    env: Annotated[
        list[str] | None, typer.Option(help="KEY=VALUE for the workers (repeat).")
    ] = None,
    network: Annotated[
        bool, typer.Option(help="Let the workers use the network (when sandboxed).")
    ] = False,
) -> None:
    """Deploy a function (or replace the one of the same name in its project)."""
    if (python is None) == (command is None):
        raise InvalidInputError("give exactly one of --python module:function or --command")
    kind, target = ("python", python) if python is not None else ("command", command)
    definition = _service().registry.deploy(
        name,
        kind,
        target,
        project,
        min_workers=min_workers,
        max_workers=max_workers,
        timeout=timeout,
        env=_parse_env(env),
        network=network,
    )
    console.print(
        f"function {definition['name']} deployed ({kind}: {definition['target']}, "
        f"project {definition['project']}, workers {min_workers}-{max_workers})"
    )


@app.command("list")
@handle_errors
def list_functions(
    project: Annotated[str | None, typer.Option(help="Only this project's.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List deployed functions."""
    items = _service().registry.list([project] if project else None)
    if as_json:  # the variables' names, never their values (they may hold secrets)
        print(_json([{**item, "env": sorted(item["env"])} for item in items]))
        return
    if not items:
        console.print("no functions (deploy one with `twin functions deploy`)")
    for item in items:
        console.print(
            f"{item['name']:<20} {item['project']:<12} {item['kind']:<8} "
            f"{item['min_workers']}-{item['max_workers']} workers  {item['target']}"
        )


@app.command()
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Function name.")],
    project: Project = None,
) -> None:
    """Print a function's definition as JSON (its env: the variables' names only)."""
    definition = _service().get(name, project)
    print(_json({**definition, "env": sorted(definition["env"])}))


@app.command()
@handle_errors
def invoke(
    name: Annotated[str, typer.Argument(help="Function name.")],
    input_text: Annotated[
        str | None, typer.Option("--input", help="The input object, as JSON.")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input-file", help="A JSON file with the input (- : stdin).")
    ] = None,
    run_async: Annotated[
        bool, typer.Option("--async", help="Print the call id at once, then wait quietly.")
    ] = False,
    timeout: Annotated[
        float | None, typer.Option(min=0.001, help="Seconds (default: the function's).")
    ] = None,
    project: Project = None,
) -> None:
    """Call a function here and print the call (result, error, logs) as JSON."""
    value = _read_input(input_text, input_file)
    service = _service()
    try:
        if run_async:
            call_id, done = service.enqueue(name, value, timeout, project)
            print(_json({"id": call_id, "state": "queued"}), flush=True)
            done.result()  # the call runs in this process: resolved once its row is final
            state = service.call(call_id)["state"]
        else:
            call = service.invoke(name, value, timeout, project)
            print(_json(call))
            state = call["state"]
    finally:
        service.shutdown()
    if state != "succeeded":
        raise typer.Exit(1)


@app.command()
@handle_errors
def logs(
    name: Annotated[str, typer.Argument(help="Function name.")],
    limit: Annotated[int, typer.Option(min=1, help="How many of the latest calls.")] = 20,
    project: Project = None,
) -> None:
    """What the latest calls printed, oldest first."""
    for entry in reversed(_service().logs(name, limit, project)):
        when = entry["created_at"].isoformat(timespec="seconds") if entry["created_at"] else ""
        error = f"  {entry['error']}" if entry["error"] else ""
        console.print(f"── call {entry['id']} {when} {entry['state']}{error}", style="bold")
        if entry["logs"]:
            print(entry["logs"], end="" if entry["logs"].endswith("\n") else "\n")


@app.command()
@handle_errors
def delete(
    name: Annotated[str, typer.Argument(help="Function name.")], project: Project = None
) -> None:
    """Delete a function and the records of its calls."""
    project = _service().delete(name, project)
    console.print(f"function {name} of project {project} deleted")
