"""``twin models``: the model registry — register trained runs, promote, roll back, export."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors
from twinengine.core.errors import InvalidInputError

app = typer.Typer(help="Registered models: versions, aliases, promotion.", no_args_is_help=True)
console = LazyConsole(highlight=False)

ModelArg = Annotated[str, typer.Argument(help="NAME@ALIAS, NAME/VERSION, NAME or a .onnx file.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
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
    project: Annotated[
        str, typer.Option(help="The project the model belongs to (a new model's tag).")
    ] = "default",
    as_json: AsJson = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Register a run's model (native and ONNX files) as a new version of a project's model."""
    version = _registry(tracking_uri).register(
        run_id, name, description, _tags(tag), project=project
    )
    if as_json:
        print(json.dumps({"name": name, "version": version, "run_id": run_id, "project": project}))
        return
    console.print(f"{name} version {version} registered from run {run_id} in project {project}")


@app.command("list")
@handle_errors
def list_models(tracking_uri: TrackingUri = None) -> None:
    """List registered models with their latest version and aliases."""
    rows = _registry(tracking_uri).list()
    if not rows:
        console.print("no registered models")
    for row in rows:
        aliases = " ".join(f"{k}=v{v}" for k, v in row["aliases"].items()) or "-"
        project = row["project"] or "(no project)"
        console.print(
            f"{row['name']:<24} {project:<16} latest v{row['latest']}  {aliases}  "
            f"{row['description']}"
        )


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
    project = info["project"] or "(no project: admins only on twin serve)"
    console.print(f"[bold]{info['name']}[/]  project {project}  {info['description']}")
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
    as_json: AsJson = False,
    tracking_uri: TrackingUri = None,
) -> None:
    """Point an alias at a version (the old production version becomes `previous`)."""
    entry = _registry(tracking_uri).promote(name, version, alias, require_quality)
    if as_json:
        print(json.dumps({"name": name, **entry}))
        return
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


@app.command("serve")
@handle_errors
def serve(
    model: ModelArg,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8080,
    replicas: Annotated[int, typer.Option(help="Processes sharing the port.")] = 1,
    max_batch: Annotated[int, typer.Option(help="Most rows in one model call.")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="Longest wait to fill a batch.")] = 2.0,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads per replica.")] = 1,
    poll: Annotated[float, typer.Option(help="Seconds between alias checks.")] = 2.0,
    threshold: Annotated[
        list[str] | None,
        typer.Option(help='Alert threshold, e.g. "p99_latency_ms>10" (repeat).'),
    ] = None,
    alert_webhook: Annotated[
        list[str] | None, typer.Option(help="POST alerts as JSON to this URL (repeat).")
    ] = None,
    alert_secret: Annotated[
        str | None,
        typer.Option(envvar="TWIN_ALERT_SECRET", help="Sign alert webhooks (X-Twin-Signature)."),
    ] = None,
    alert_token: Annotated[
        str | None, typer.Option(envvar="TWIN_ALERT_TOKEN", help="Bearer token for webhooks.")
    ] = None,
    notify: Annotated[
        str | None, typer.Option(help="Publish alerts as notifications to this project.")
    ] = None,
    server: Annotated[str, typer.Option(help="builtin (fastest) or uvicorn.")] = "builtin",
    duration: Annotated[
        float, typer.Option(help="Stop after this many seconds (0: until interrupted).")
    ] = 0.0,
    tracking_uri: TrackingUri = None,
) -> None:
    """Serve a model over HTTP; an alias is followed and swapped hot when it moves."""
    from twinengine.ai.serving import serve as run_server
    from twinengine.ai.serving.deploy import AlertSink, make_app, source_of
    from twinengine.ai.serving.metrics import Threshold

    source: Any = source_of(model, tracking_uri)
    thresholds = [Threshold.parse(t) for t in threshold or []]
    sink = None
    if alert_webhook or notify:
        sink = AlertSink(list(alert_webhook or []), alert_secret, alert_token, notify)
    if replicas < 1:
        raise InvalidInputError(f"--replicas must be at least 1, got {replicas}")
    from twinengine.ai.serving.server import check_address

    check_address(host, port, replicas > 1)
    options: dict[str, Any] = {
        "max_batch": max_batch,
        "max_wait_ms": max_wait_ms,
        "threads": threads,
        "threshold": thresholds,
        "on_alert": sink,
        "poll_s": poll,
    }
    if replicas == 1:  # loaded once, here: an unknown model or alias fails before listening
        source = make_app(source, options)
    elif not isinstance(source, str):
        source.open()  # each replica loads its own; fail here rather than in each of them
    console.print(f"serving {model} on http://{host}:{port} ({replicas} replica(s))")
    if duration > 0:  # a graceful stop, as on SIGTERM
        import os
        import signal
        import threading

        timer = threading.Timer(duration, os.kill, (os.getpid(), signal.SIGTERM))
        timer.daemon = True
        timer.start()
    run_server(source, host, port, replicas, server, **options)


@app.command("predict")
@handle_errors
def predict(
    model: ModelArg,
    input_file: Annotated[str, typer.Argument(help="CSV, NPY, NPZ, NetCDF or HDF5 rows.")],
    output_file: Annotated[str, typer.Argument(help="Predictions: .npy, .npz or .csv.")],
    features: Annotated[
        str | None, typer.Option(help="Comma-separated input columns (default: as trained).")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Rows per model call.")] = 4096,
    tracking_uri: TrackingUri = None,
) -> None:
    """Batch inference over a file (usable as a CWL step)."""
    from twinengine.ai.serving.batch import predict_file

    names = [f.strip() for f in features.split(",") if f.strip()] if features else None
    summary = predict_file(
        model,
        input_file,
        output_file,
        features=names,
        batch_size=batch_size,
        tracking_uri=tracking_uri,
    )
    print(json.dumps(summary))


@app.command("stream")
@handle_errors
def stream(
    model: ModelArg,
    source: Annotated[str, typer.Option(help="nats://, mqtt:// or kafka://HOST:PORT/SUBJECT.")],
    sink: Annotated[str, typer.Option(help="Where predictions go (same broker kind).")],
    max_batch: Annotated[int, typer.Option(help="Most messages in one model call.")] = 256,
    max_wait_ms: Annotated[float, typer.Option(help="Longest wait to fill a batch.")] = 5.0,
    poll: Annotated[float, typer.Option(help="Seconds between alias checks.")] = 2.0,
    tracking_uri: TrackingUri = None,
) -> None:
    """Predict every message of a subject and publish the answers to another."""
    import signal

    from twinengine.ai.serving.deploy import open_source, source_of
    from twinengine.ai.serving.stream import StreamPredictor

    bundle, watch = open_source(source_of(model, tracking_uri))
    predictor = StreamPredictor(
        bundle, source, sink, watch=watch, poll_s=poll, max_batch=max_batch, max_wait_ms=max_wait_ms
    )
    predictor.connect()
    signal.signal(signal.SIGTERM, lambda *_: predictor.stop())
    console.print(f"predicting {source} -> {sink} with {model} (version {bundle.version})")
    try:
        stats = predictor.run()
    except KeyboardInterrupt:
        stats = predictor.stats
    console.print(
        f"{stats.messages} message(s), {stats.errors} error(s), {stats.batches} batch(es), "
        f"{stats.swaps} swap(s)"
    )


@app.command("tools")
@handle_errors
def tools(
    target: Annotated[
        str | None, typer.Argument(help="Copy the tools into this folder (default: list).")
    ] = None,
) -> None:
    """The CWL tool descriptions of train, tune, register, promote, predict and serve."""
    from twinengine.ai.cwltools import TOOLS, copy_tools, tool_path

    if target is None:
        for name in TOOLS:
            print(tool_path(name))
        return
    for path in copy_tools(target):
        print(path)
