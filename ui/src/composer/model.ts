// The composer's canvas model and its translation into the composer JSON of
// POST /api/v1/workflows/compose (docs/api.md).

import type { Edge, Node } from "@xyflow/react";
import type { PaletteItem } from "../api";
import { fieldKind } from "../components/RunForm";

export interface StepData extends Record<string, unknown> {
  name: string;
  item: PaletteItem;
  params: Record<string, string>;
}

export interface InputData extends Record<string, unknown> {
  name: string;
  type: string;
  default: string;
}

export interface OutputData extends Record<string, unknown> {
  name: string;
}

export type StepNode = Node<StepData, "step">;
export type InputNode = Node<InputData, "wfinput">;
export type OutputNode = Node<OutputData, "wfoutput">;
export type ComposerNode = StepNode | InputNode | OutputNode;

export const INPUT_TYPES = ["string", "int", "float", "boolean", "File", "string[]", "int[]", "File[]", "string?", "int?", "File?"];

const ID_RE = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export function validId(name: string): boolean {
  return ID_RE.test(name);
}

/** A CWL identifier from any text ("My Tool 2" → "My_Tool_2"). */
export function slug(text: string): string {
  let s = text.replace(/[^A-Za-z0-9_-]+/g, "_").replace(/^_+|_+$/g, "");
  if (!s || !/^[A-Za-z_]/.test(s)) s = `s_${s}`;
  return s;
}

export function uniqueName(base: string, taken: Set<string>): string {
  const b = slug(base);
  if (!taken.has(b)) return b;
  for (let i = 2; ; i++) if (!taken.has(`${b}_${i}`)) return `${b}_${i}`;
}

/** A typed literal from what the user typed for a port of CWL type `type`. */
export function literal(type: string, text: string): unknown {
  const { kind } = fieldKind(type);
  const t = text.trim();
  switch (kind) {
    case "int": {
      const n = Number(t);
      if (!Number.isInteger(n)) throw new Error(`"${text}" is not a whole number (type ${type})`);
      return n;
    }
    case "float": {
      const n = Number(t);
      if (Number.isNaN(n)) throw new Error(`"${text}" is not a number (type ${type})`);
      return n;
    }
    case "boolean":
      if (t === "true") return true;
      if (t === "false") return false;
      throw new Error(`"${text}" is not true/false`);
    case "string":
      return text;
    default:
      try {
        return JSON.parse(t);
      } catch {
        if (kind === "File") return { class: "File", location: t };
        throw new Error(`"${text}" is not JSON (type ${type})`);
      }
  }
}

export function isArrayType(type: string): boolean {
  return type.replace(/\?$/, "").endsWith("[]");
}

export interface ComposeBody {
  name: string;
  project?: string;
  label?: string;
  dry_run: boolean;
  inputs: { id: string; type: string; default?: unknown }[];
  steps: { id: string; run: string; in: Record<string, { source: string | string[] } | { default: unknown }> }[];
  outputs: { id: string; source: string }[];
  layout: Record<string, { x: number; y: number }>;
}

/** The composer JSON for the canvas; throws an Error naming the first problem found. */
export function buildCompose(
  nodes: ComposerNode[],
  edges: Edge[],
  meta: { name: string; project?: string; label?: string; dryRun: boolean },
): ComposeBody {
  const problems: string[] = [];
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const names = new Map<string, number>();
  for (const n of nodes) names.set(n.data.name, (names.get(n.data.name) ?? 0) + 1);
  for (const [name, count] of names) {
    if (count > 1) problems.push(`the id "${name}" is used ${count} times (inputs, steps and outputs share one namespace)`);
    if (!validId(name)) problems.push(`"${name}" is not a valid id (letters, digits, _ and -; not starting with a digit)`);
  }
  if (!meta.name.trim()) problems.push("give the workflow a name");

  const sourceOf = (edge: Edge): string | null => {
    const from = byId.get(edge.source);
    if (!from) return null;
    if (from.type === "wfinput") return from.data.name;
    if (from.type === "step") return `${from.data.name}/${edge.sourceHandle ?? ""}`;
    return null;
  };

  const inputs: ComposeBody["inputs"] = [];
  const steps: ComposeBody["steps"] = [];
  const outputs: ComposeBody["outputs"] = [];
  const layout: ComposeBody["layout"] = {};

  for (const n of nodes) {
    layout[n.data.name] = { x: Math.round(n.position.x), y: Math.round(n.position.y) };
    if (n.type === "wfinput") {
      const entry: ComposeBody["inputs"][number] = { id: n.data.name, type: n.data.type };
      if (n.data.default.trim() !== "") {
        try {
          entry.default = literal(n.data.type, n.data.default);
        } catch (err) {
          problems.push(`input ${n.data.name}: ${(err as Error).message}`);
        }
      }
      inputs.push(entry);
    } else if (n.type === "step") {
      const ins: ComposeBody["steps"][number]["in"] = {};
      for (const port of n.data.item.inputs) {
        const incoming = edges.filter((e) => e.target === n.id && e.targetHandle === port.id);
        const sources = incoming.map(sourceOf).filter((s): s is string => Boolean(s));
        if (sources.length > 0) {
          ins[port.id] = { source: sources.length === 1 ? sources[0] : sources };
          continue;
        }
        const text = n.data.params[port.id];
        if (text !== undefined && text.trim() !== "") {
          try {
            ins[port.id] = { default: literal(port.type, text) };
          } catch (err) {
            problems.push(`step ${n.data.name}, ${port.id}: ${(err as Error).message}`);
          }
        }
      }
      steps.push({ id: n.data.name, run: n.data.item.ref, in: ins });
    } else {
      const incoming = edges.filter((e) => e.target === n.id);
      const source = incoming.length > 0 ? sourceOf(incoming[0]) : null;
      if (!source) problems.push(`connect the workflow output "${n.data.name}" to a step output`);
      else outputs.push({ id: n.data.name, source });
    }
  }
  if (steps.length === 0) problems.push("drag at least one step from the palette onto the canvas");
  if (problems.length > 0) throw new ComposeProblems(problems);
  const body: ComposeBody = { name: meta.name.trim(), dry_run: meta.dryRun, inputs, steps, outputs, layout };
  if (meta.project) body.project = meta.project;
  if (meta.label?.trim()) body.label = meta.label.trim();
  return body;
}

export class ComposeProblems extends Error {
  problems: string[];
  constructor(problems: string[]) {
    super(problems.join("; "));
    this.problems = problems;
  }
}
