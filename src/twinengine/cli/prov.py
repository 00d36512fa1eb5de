"""``twin prov``: show, export, trace, import and compare provenance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from twinengine.cli.errors import LazyConsole, handle_errors
from twinengine.core.errors import InvalidInputError

app = typer.Typer(
    help="W3C PROV of runs: show, export, lineage, graph, import, diff.", no_args_is_help=True
)
console = LazyConsole(highlight=False)
RunId = Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")]


def _store() -> Any:
    from twinengine.provenance import ProvStore

    return ProvStore()


def _summary(graph: Any, title: str) -> None:
    from rich.table import Table

    kinds: dict[str, int] = {}
    for element in graph.elements.values():
        kinds[element.kind] = kinds.get(element.kind, 0) + 1
    relations: dict[str, int] = {}
    for rel in graph.relations:
        relations[rel.kind] = relations.get(rel.kind, 0) + 1
    console.print(f"[bold]{title}[/]")
    plural = {"entity": "entities", "activity": "activities", "agent": "agents"}
    console.print(
        "  " + ", ".join(f"{n} {k if n == 1 else plural[k]}" for k, n in sorted(kinds.items()))
    )
    console.print("  " + ", ".join(f"{n} {k}" for k, n in sorted(relations.items())))
    table = Table(box=None, header_style="bold")
    for column in ("kind", "id", "label", "details"):
        table.add_column(column)
    order = {"agent": 0, "activity": 1, "entity": 2}
    shown = sorted(graph.elements.values(), key=lambda e: (order.get(e.kind, 3), e.label or ""))
    for element in shown[:200]:
        details = ", ".join(
            f"{k}={v}" for k, v in element.attributes.items() if k not in ("twin:commandLine",)
        )
        table.add_row(element.kind, element.id, element.label or "", details[:80])
    console.print(table)
    if len(shown) > 200:
        console.print(f"[dim]… and {len(shown) - 200} more (twin prov export for all)[/]")


@app.command()
@handle_errors
def show(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
) -> None:
    """Summarise the PROV document of a run: agents, activities, entities, relations."""
    from twinengine.provenance import run_id_of

    store = _store()
    rid = run_id_of(run_id, store)
    document = store.document_of_run(rid)
    _summary(store.load(document), f"provenance of run {rid} (document {document})")


@app.command()
@handle_errors
def export(
    run_id: Annotated[str, typer.Argument(help="Run id (a unique prefix is enough).")],
    format: Annotated[
        str, typer.Option("--format", "-f", help="json, provn, xml or ttl.")
    ] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="File to write.")] = None,
) -> None:
    """Export a run's PROV document, or the run as a Workflow Run RO-Crate
    (-f rocrate -o FOLDER, or -o crate.zip)."""
    from twinengine.provenance import export_crate, export_run

    if format == "rocrate":
        if output is None:
            raise InvalidInputError("an RO-Crate needs -o FOLDER or -o FILE.zip")
        console.print(f"wrote {export_crate(run_id, output, _store())} (RO-Crate)")
        return
    text = export_run(run_id, format, _store())
    if output is None:
        print(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {output} ({format})")


@app.command()
@handle_errors
def lineage(
    target: Annotated[str, typer.Argument(help="A file path, a sha256 or an element id.")],
    direction: Annotated[str, typer.Option(help="up (where it came from), down, both.")] = "up",
    depth: Annotated[int | None, typer.Option(min=0, help="Relation hops (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print PROV-JSON.")] = False,
) -> None:
    """Trace what a file or element came from, or what was made from it."""
    from twinengine.provenance import serialize

    store = _store()
    element = store.resolve(target)  # once: a file target is hashed to find its entity
    graph = store.lineage(element, direction, depth)
    if as_json:
        print(serialize(graph, "json"))
        return
    _summary(graph, f"lineage of {element} ({direction})")
    runs = store.runs_using(element) if direction in ("down", "both") else []
    if runs:
        console.print("runs that used it: " + ", ".join(runs))


@app.command("import")
@handle_errors
def import_(
    file: Annotated[Path, typer.Argument(help="PROV-JSON, PROV-XML, Turtle or PROV-N file.")],
    format: Annotated[
        str | None, typer.Option("--format", "-f", help="json, xml, ttl, provn.")
    ] = None,
) -> None:
    """Import a PROV document from any producer (one transaction)."""
    from twinengine.provenance import import_file

    document = import_file(file, format, _store())
    console.print(f"imported {file} as document {document}")


@app.command()
@handle_errors
def diff(
    run_a: Annotated[str, typer.Argument(help="First run.")],
    run_b: Annotated[str, typer.Argument(help="Second run.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Which inputs, parameters and tool versions differ between two runs."""
    from twinengine.provenance import diff_runs

    result = diff_runs(run_a, run_b, _store())
    if as_json:
        print(json.dumps(result, indent=2))
        return
    if not any(result.values()):
        console.print("same inputs, parameters and tools")
        return
    for section, rows in result.items():
        for name, a, b in rows:
            console.print(f"{section[:-1]} [bold]{name}[/]: {a or '-'}  →  {b or '-'}")


@app.command()
@handle_errors
def graph(
    run_id: RunId,
    output: Annotated[Path, typer.Option("--output", "-o", help="graph.svg (or .dot).")] = Path(
        "graph.svg"
    ),
) -> None:
    """Draw a run's PROV graph (Graphviz when installed, else a built-in layout)."""
    from twinengine.provenance import run_id_of
    from twinengine.provenance.draw import draw

    store = _store()
    document = store.document_of_run(run_id_of(run_id, store))
    how = draw(store.load(document), output)
    console.print(f"wrote {output} ({how})")


@app.command()
@handle_errors
def capture(run_id: Annotated[str, typer.Argument(help="Run id.")]) -> None:
    """Make a run's PROV document again from its records."""
    from twinengine.provenance import capture as capture_run

    console.print(f"recorded document {capture_run(run_id, _store())}")
