"""``twin tune``: hyper-parameter search over a training config with Optuna and MLflow.

Wired into the ``twin`` application as one command: ``app.command("tune")(tune)``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors

console = LazyConsole(highlight=False)


@handle_errors
def tune(
    config: Annotated[Path, typer.Argument(help="Training config (YAML) with a search section.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="KEY=VALUE overrides on dotted paths, e.g. search.trials=4."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Also write the best config (YAML) to this file."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as one JSON object.")
    ] = False,
) -> None:
    """Search the space in CONFIG's search section; print the best config and run id."""
    from twinengine.ai.tune import load_search
    from twinengine.ai.tune import tune as run_search

    loaded, search = load_search(config, overrides or [])
    result = run_search(loaded, search)
    text = result.best_yaml
    if output is not None:
        output.write_text(text)
    if as_json:
        print(json.dumps(_as_dict(result), default=str))
        return
    console.print(f"# study {result.study}: {result.trials} trials ({result.pruned} pruned)")
    console.print(f"# best {search['metric']} = {result.best_value:.6g}")
    console.print(f"# best params: {result.best_params}", markup=False)
    console.print(text.rstrip(), markup=False)
    console.print(f"best run {result.best_run_id} (parent run {result.parent_run_id})")
    if result.registered is not None:
        console.print(f"registered: {result.registered}")


def _as_dict(result: Any) -> dict[str, Any]:
    return {
        "study": result.study,
        "parent_run_id": result.parent_run_id,
        "tracking_uri": result.tracking_uri,
        "best_run_id": result.best_run_id,
        "best_value": result.best_value,
        "best_params": result.best_params,
        "trials": result.trials,
        "pruned": result.pruned,
        "registered": result.registered,
    }
