"""``twin models``: the model registry — register trained runs, promote, roll back, export."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors
from twinengine.core.errors import InvalidInputError

app = typer.Typer(help="Registered models: versions, aliases, promotion.", no_args_is_help=True)
console = LazyConsole(highlight=False)

TrackingUri = Annotated[
    str | None,
    typer.Option("--tracking-uri", help="MLflow tracking URI (default: $TWIN_HOME/mlflow.db)."),
]


def _registry(uri: str | None) -> Any:
    from twinengine.ai.registry import ModelRegistry

    return ModelRegistry(tracking_uri=uri)


def _tags(items: list[str] | None) -> dict[str, str]:
    tags = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"--tag {item!r}: write KEY=VALUE")
        tags[key] = value
    return tags


@app.command("register")
@handle_errors
def register(
    run_id: Annotated[str, typer.Argument(help="MLflow run id of a `twin train` run.")],
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    description: Annotated[str | None, typer.Option(help="What this version is.")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="KEY=VALUE version tag (repeat).")] = None,
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a run's model (native and ONNX files) as a new version."""
    version = _registry(tracking_uri).register(run_id, name, description, _tags(tag))
    console.print(f"{name} version {version} registered from run {run_id}")


@app.command("list")
@handle_errors
def list_models(tracking_uri: TrackingUri = None) -> None:
    """List registered models with their latest version and aliases."""
    rows = _registry(tracking_uri).list()
    if not rows:
        console.print("no registered models")
    for row in rows:
        aliases = " ".join(f"{k}=v{v}" for k, v in row["aliases"].items()) or "-"
        console.print(f"{row['name']:<24} latest v{row['latest']}  {aliases}  {row['description']}")


@app.command("show")
@handle_errors
def show(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Show a model's versions (aliases, tags, run, creation time) and promotion history."""
    info = _registry(tracking_uri).show(name)
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(f"[bold]{info['name']}[/]  {info['description']}")
    for v in info["versions"]:
        aliases = ",".join(v["aliases"]) or "-"
        tags = " ".join(f"{k}={val}" for k, val in sorted(v["tags"].items()))
        console.print(
            f"  v{v['version']:<4} {aliases:<28} run {v['run_id']}  {v['created']}  {tags}"
        )
    for h in info["promotions"]:
        console.print(
            f"  {h['when']}  {h['who']}: {h['action']} {h['alias']} v{h['from']} -> v{h['to']}"
        )


@app.command("promote")
@handle_errors
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[int, typer.Argument(help="Version to promote.")],
    alias: Annotated[str, typer.Option(help="production or staging.")] = "production",
    require_quality: Annotated[
        bool, typer.Option("--require-quality", help="Refuse unless twin.quality=passed.")
    ] = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Point an alias at a version (the old production version becomes `previous`)."""
    entry = _registry(tracking_uri).promote(name, version, alias, require_quality)
    was = f" (was v{entry['from']})" if entry["from"] is not None else ""
    console.print(f"{name} {alias} -> v{entry['to']}{was}")


@app.command("rollback")
@handle_errors
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Make the `previous` version production again."""
    entry = _registry(tracking_uri).rollback(name)
    console.print(f"{name} production -> v{entry['to']} (rolled back from v{entry['from']})")


@app.command("export")
@handle_errors
def export(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME.")],
    target: Annotated[str, typer.Argument(help="Directory to copy the files into.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Copy a version's ONNX and native model files into a directory."""
    for path in _registry(tracking_uri).export(ref, target):
        console.print(str(path))


@app.command("resolve")
@handle_errors
def resolve(
    ref: Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION or NAME.")],
    tracking_uri: TrackingUri = None,
) -> None:
    """Print the local path of a version's ONNX file."""
    print(_registry(tracking_uri).resolve(ref))
