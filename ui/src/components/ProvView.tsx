// The Provenance tab: the run's PROV graph (entities, activities, agents; the PROV
// relation as edge label), exports, and the lineage of a chosen file.

import { useEffect, useMemo, useState } from "react";
import { api, download, requestBlob, type ProvGraph } from "../api";
import { useErrors } from "../errors";
import { FlowGraph, type GNode } from "./FlowGraph";
import { fileName, filesOf, type CwlFile } from "./OutputsView";

function shortLabel(id: string, label?: string | null): string {
  if (label) return label.length > 40 ? `${label.slice(0, 38)}…` : label;
  if (id.startsWith("sha256:")) return `sha256:${id.slice(7, 19)}…`;
  const tail = id.split(/[/#]/).filter(Boolean).pop() ?? id;
  return tail.length > 40 ? `${tail.slice(0, 38)}…` : tail;
}

function toGraph(g: ProvGraph): { nodes: GNode[]; edges: { source: string; target: string; label: string }[] } {
  const ids = new Set(g.nodes.map((n) => n.id));
  return {
    nodes: g.nodes.map((n) => ({ id: n.id, kind: n.kind, label: shortLabel(n.id, n.label), sub: n.kind, title: n.id })),
    edges: g.edges
      .filter((e) => ids.has(e.source) && ids.has(e.target))
      .map((e) => ({ source: e.source, target: e.target, label: e.kind })),
  };
}

/** The SHA-256 a File record carries, if any (``twin:sha256``, ``sha256``, a sha256 checksum). */
export function knownSha256(f: CwlFile): string | null {
  const sha = f["twin:sha256"] ?? f.sha256;
  if (typeof sha === "string" && sha) return sha.replace(/^sha256[:$]/, "");
  if (typeof f.checksum === "string" && f.checksum.startsWith("sha256$")) return f.checksum.slice(7);
  return null;
}

async function sha256Hex(blob: Blob): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

const HASH_MAX = 256 * 1024 * 1024;

/**
 * What /prov/lineage accepts for an output File: provenance identifies files by content
 * (``sha256:<hex>``). Use the digest the record carries; else hash the file here (Web
 * Crypto, secure contexts only); else the run graph's only entity named like the file;
 * else the file's path.
 */
export async function lineageTarget(f: CwlFile, graph: ProvGraph | null): Promise<string | null> {
  const known = knownSha256(f);
  if (known) return `sha256:${known}`;
  if (f.download && globalThis.crypto?.subtle && (f.size ?? 0) <= HASH_MAX) {
    return `sha256:${await sha256Hex(await requestBlob(f.download))}`;
  }
  const named = (graph?.nodes ?? []).filter((n) => n.kind === "entity" && n.label === fileName(f));
  if (named.length === 1) return named[0].id;
  return f.path ?? f.location?.replace(/^file:\/\//, "") ?? null;
}

const EXPORTS: [string, string, string][] = [
  ["json", "PROV-JSON", "prov.json"],
  ["provn", "PROV-N", "prov.provn"],
  ["ttl", "PROV-O (Turtle)", "prov.ttl"],
  ["xml", "PROV-XML", "prov.xml"],
  ["rocrate", "RO-Crate (zip)", "ro-crate.zip"],
];

export function ProvView({ runId, outputs }: { runId: string; outputs: Record<string, unknown> | null }) {
  const { report } = useErrors();
  const [graph, setGraph] = useState<ProvGraph | null>(null);
  const [target, setTarget] = useState("");
  const [draft, setDraft] = useState("");
  const [picked, setPicked] = useState("");
  const [direction, setDirection] = useState("up");
  const [lineage, setLineage] = useState<ProvGraph | null>(null);
  const [loadingLineage, setLoadingLineage] = useState(false);
  const files = useMemo(() => filesOf(outputs), [outputs]);

  useEffect(() => {
    setGraph(null);
    api.runProvGraph(runId).then(setGraph).catch(report);
  }, [runId, report]);

  useEffect(() => setDraft(target), [target]);

  useEffect(() => {
    if (!target) {
      setLineage(null);
      return;
    }
    setLoadingLineage(true);
    setLineage(null);
    api
      .lineage(target, direction)
      .then(setLineage)
      .catch(report)
      .finally(() => setLoadingLineage(false));
  }, [target, direction, report]);

  const drawn = useMemo(() => (graph ? toGraph(graph) : null), [graph]);
  const lineageDrawn = useMemo(() => (lineage ? toGraph(lineage) : null), [lineage]);

  return (
    <div data-testid="prov-view">
      <div className="inline wrap">
        <span className="muted">Export:</span>
        {EXPORTS.map(([fmt, label, file]) => (
          <button
            key={fmt}
            className="secondary small"
            onClick={() => download(`/api/v1/runs/${encodeURIComponent(runId)}/prov?format=${fmt}`, `${runId}-${file}`).catch(report)}
            data-testid={`prov-export-${fmt}`}
          >
            {label}
          </button>
        ))}
        <span className="legend">
          <span className="gnode kind-entity">entity</span>
          <span className="gnode kind-activity">activity</span>
          <span className="gnode kind-agent">agent</span>
        </span>
      </div>
      {!drawn ? (
        <p className="muted">Loading the provenance graph…</p>
      ) : drawn.nodes.length === 0 ? (
        <p className="muted" data-testid="prov-empty">
          No provenance recorded for this run.
        </p>
      ) : (
        <>
          <p className="muted small" data-testid="prov-summary">
            {drawn.nodes.length} elements, {drawn.edges.length} relations. Click an entity to see its lineage.
          </p>
          <FlowGraph
            nodes={drawn.nodes}
            edges={drawn.edges}
            testPrefix="prov"
            height={520}
            selected={target}
            onNodeClick={(n) => {
              if (n.kind === "entity") {
                setPicked("");
                setTarget(n.id);
              }
            }}
          />
        </>
      )}
      <section className="card lineage" data-testid="lineage">
        <h3>Lineage of a file</h3>
        <div className="inline wrap">
          <select
            value={picked}
            onChange={(e) => {
              const index = e.target.value;
              setPicked(index);
              if (index === "") return;
              lineageTarget(files[Number(index)].file, graph)
                .then((t) => t && setTarget(t))
                .catch(report);
            }}
            data-testid="lineage-file"
          >
            <option value="">choose an output file…</option>
            {files.map(({ output, file }, i) => (
              <option key={i} value={String(i)}>
                {output}: {fileName(file)}
              </option>
            ))}
          </select>
          <input
            placeholder="or a sha256 / element id / path"
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            onBlur={() => {
              if (draft.trim() !== target) {
                setPicked("");
                setTarget(draft.trim());
              }
            }}
            onKeyDown={(e) => {
              if (e.key === "Enter" && draft.trim() !== target) {
                setPicked("");
                setTarget(draft.trim());
              }
            }}
            data-testid="lineage-target"
            className="grow"
          />
          <select value={direction} onChange={(e) => setDirection(e.target.value)} data-testid="lineage-direction">
            <option value="up">upstream (what it came from)</option>
            <option value="down">downstream (what used it)</option>
            <option value="both">both</option>
          </select>
        </div>
        {loadingLineage && <p className="muted">Loading…</p>}
        {lineageDrawn &&
          (lineageDrawn.nodes.length === 0 ? (
            <p className="muted">No lineage.</p>
          ) : (
            <FlowGraph nodes={lineageDrawn.nodes} edges={lineageDrawn.edges} testPrefix="lineage" height={420} selected={target} />
          ))}
      </section>
    </div>
  );
}
