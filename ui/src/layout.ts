// Automatic left-to-right layout of a directed graph with dagre.

import * as dagre from "@dagrejs/dagre";

export interface Sized {
  id: string;
  width: number;
  height: number;
}

export function autoLayout(
  nodes: Sized[],
  edges: { source: string; target: string; label?: string | null }[],
  direction: "LR" | "TB" = "LR",
): Record<string, { x: number; y: number }> {
  const g = new dagre.graphlib.Graph({ multigraph: true });
  g.setGraph({ rankdir: direction, nodesep: 30, ranksep: 70, marginx: 10, marginy: 10 });
  g.setDefaultEdgeLabel(() => ({}));
  const ids = new Set(nodes.map((n) => n.id));
  for (const n of nodes) g.setNode(n.id, { width: n.width, height: n.height });
  edges.forEach((e, i) => {
    if (!ids.has(e.source) || !ids.has(e.target)) return;
    // reserve room for the edge label so that it does not sit on a node
    const label = e.label ? { width: 12 + e.label.length * 6.5, height: 16, labelpos: "c" } : {};
    g.setEdge(e.source, e.target, label, String(i));
  });
  dagre.layout(g);
  const positions: Record<string, { x: number; y: number }> = {};
  for (const n of nodes) {
    const p = g.node(n.id);
    // dagre gives centres; React Flow wants the top-left corner
    positions[n.id] = p ? { x: p.x - n.width / 2, y: p.y - n.height / 2 } : { x: 0, y: 0 };
  }
  return positions;
}

export function labelWidth(label: string, min = 90, max = 260): number {
  return Math.max(min, Math.min(max, 24 + label.length * 7.2));
}
