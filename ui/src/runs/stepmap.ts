// Map engine step names ("main/generate", "generate/3", "hello-twin/clean/2") onto the
// workflow graph's step node ids, and fold the states of a node's jobs into one.

import type { Run, Step } from "../api";

export function stepNodeId(stepName: string, run: Pick<Run, "name" | "workflow_name">, nodeIds: Set<string>): string | null {
  let segs = stepName
    .split("/")
    .map((s) => s.replace(/^#/, ""))
    .filter(Boolean);
  if (segs.length === 0) return null;
  const topNames = new Set(["main", run.name, run.workflow_name ?? ""].filter(Boolean));
  // drop a leading workflow-name segment ("main/generate"), unless it is itself a step
  if (segs.length > 1 && !nodeIds.has(segs[0]) && (topNames.has(segs[0]) || nodeIds.has(segs[1]))) {
    segs = segs.slice(1);
  }
  if (nodeIds.has(segs[0])) return segs[0];
  for (const s of segs) if (nodeIds.has(s)) return s;
  return null;
}

const PRIORITY = ["failed", "running", "interrupted", "cancelled", "queued", "succeeded"];

export function foldStates(states: string[]): string | undefined {
  if (states.length === 0) return undefined;
  for (const p of PRIORITY) if (states.includes(p)) return p;
  return states[0];
}

export function nodeStates(steps: Step[], run: Pick<Run, "name" | "workflow_name">, nodeIds: Set<string>): Map<string, string> {
  const byNode = new Map<string, string[]>();
  for (const step of steps) {
    const id = stepNodeId(step.name, run, nodeIds);
    if (!id) continue;
    const list = byNode.get(id) ?? [];
    list.push(step.state);
    byNode.set(id, list);
  }
  const out = new Map<string, string>();
  for (const [id, states] of byNode) {
    const s = foldStates(states);
    if (s) out.set(id, s);
  }
  return out;
}
