"""Drawing a PROV graph: Graphviz when ``dot`` is installed, else a pure-Python SVG.

Both follow the PROV drawing conventions: entities are yellow ellipses, activities blue
rectangles, agents orange pentagons, and every arrow points from the element that
depends to the one it depends on (backwards in time). The built-in layout puts each
element one layer below everything it depends on (longest path), so a run reads from
its inputs at the bottom to its outputs at the top.
"""

from __future__ import annotations

import shutil
import subprocess
from html import escape
from pathlib import Path

from twinengine.provenance.graph import ProvGraph

_STYLE = {
    "entity": ("#FFFC87", "ellipse"),
    "activity": ("#9FB1FC", "box"),
    "agent": ("#FED37F", "house"),
}


def _name(graph: ProvGraph, element_id: str) -> str:
    element = graph.elements.get(element_id)
    label = (element.label if element else None) or element_id
    return label if len(label) <= 32 else label[:29] + "…"


def to_dot(graph: ProvGraph) -> str:
    lines = ["digraph prov {", "  rankdir=BT; node [fontsize=10]; edge [fontsize=8];"]
    ids = {element_id: f"n{i}" for i, element_id in enumerate(graph.elements)}
    for element_id, element in graph.elements.items():
        colour, shape = _STYLE.get(element.kind, ("#DDDDDD", "ellipse"))
        label = _name(graph, element_id).replace('"', "'")
        lines.append(
            f'  {ids[element_id]} [label="{label}", shape={shape}, style=filled, '
            f'fillcolor="{colour}", tooltip="{element_id}"];'
        )
    for rel in graph.relations:
        if rel.subject in ids and rel.object in ids:
            lines.append(f'  {ids[rel.subject]} -> {ids[rel.object]} [label="{rel.kind}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _layers(graph: ProvGraph) -> dict[str, int]:
    depends: dict[str, set[str]] = {e: set() for e in graph.elements}
    for rel in graph.relations:
        if rel.subject in depends and rel.object in depends and rel.subject != rel.object:
            depends[rel.subject].add(rel.object)
    layer: dict[str, int] = {}
    visiting: set[str] = set()
    for start in depends:
        stack = [(start, False)]
        while stack:  # iterative depth-first: long chains would overflow recursion
            node, expanded = stack.pop()
            if node in layer:
                continue
            if expanded:  # every dependency is placed (or on a cycle: counted as 0)
                visiting.discard(node)
                layer[node] = 1 + max((layer.get(d, 0) for d in depends[node]), default=-1)
                continue
            visiting.add(node)
            stack.append((node, True))
            stack.extend((d, False) for d in depends[node] if d not in layer and d not in visiting)
    return layer


def to_svg(graph: ProvGraph) -> str:
    """A self-contained SVG of the graph with the built-in layered layout."""
    layers = _layers(graph)
    rows: dict[int, list[str]] = {}
    for element_id in graph.elements:
        rows.setdefault(layers.get(element_id, 0), []).append(element_id)
    width_cells = max((len(r) for r in rows.values()), default=1)
    cell_w, cell_h, top = 190, 90, max(rows, default=0)
    width, height = cell_w * width_cells + 40, cell_h * (top + 1) + 40
    where: dict[str, tuple[float, float]] = {}
    for level, members in rows.items():
        offset = (width - cell_w * len(members)) / 2
        for i, element_id in enumerate(sorted(members, key=lambda e: _name(graph, e))):
            where[element_id] = (offset + cell_w * (i + 0.5), 20 + cell_h * (top - level + 0.5))
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" '
        'markerHeight="6" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/>'
        "</marker></defs>",
    ]
    for rel in graph.relations:
        if rel.subject in where and rel.object in where:
            (x1, y1), (x2, y2) = where[rel.subject], where[rel.object]
            out.append(
                f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2 - 18:.0f}" '
                f'stroke="#888" marker-end="url(#arrow)"><title>{escape(rel.kind)}</title></line>'
            )
    for element_id, (x, y) in where.items():
        kind = graph.elements[element_id].kind
        colour = _STYLE.get(kind, ("#DDDDDD", ""))[0]
        title = f"<title>{escape(element_id)}</title>"
        if kind == "activity":
            shape = (
                f'<rect x="{x - 80:.0f}" y="{y - 18:.0f}" width="160" height="36" '
                f'fill="{colour}" stroke="#333"/>'
            )
        elif kind == "agent":
            shape = (
                f'<polygon points="{x - 70:.0f},{y + 18:.0f} {x + 70:.0f},{y + 18:.0f} '
                f'{x + 70:.0f},{y - 8:.0f} {x:.0f},{y - 22:.0f} {x - 70:.0f},{y - 8:.0f}" '
                f'fill="{colour}" stroke="#333"/>'
            )
        else:
            shape = (
                f'<ellipse cx="{x:.0f}" cy="{y:.0f}" rx="82" ry="20" '
                f'fill="{colour}" stroke="#333"/>'
            )
        label = escape(_name(graph, element_id))
        text = f'<text x="{x:.0f}" y="{y + 4:.0f}" text-anchor="middle">{label}</text>'
        out.append(f"<g>{title}{shape}{text}</g>")
    out.append("</svg>")
    return "\n".join(out) + "\n"


def draw(graph: ProvGraph, target: Path, engine: str = "auto") -> str:
    """Write ``target`` (``.svg``, or ``.dot`` for the Graphviz source); returns what drew it."""
    if target.suffix == ".dot":
        target.write_text(to_dot(graph), encoding="utf-8")
        return "dot source"
    dot = shutil.which("dot") if engine in ("auto", "graphviz") else None
    if dot:
        svg = subprocess.run(
            [dot, "-Tsvg"], input=to_dot(graph), capture_output=True, text=True, check=True
        ).stdout
        target.write_text(svg, encoding="utf-8")
        return "graphviz"
    target.write_text(to_svg(graph), encoding="utf-8")
    return "built-in layout"
