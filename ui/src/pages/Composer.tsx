// The workflow composer: drag templates/registered workflows from the palette onto a
// React Flow canvas, add workflow inputs/outputs, connect ports, set literal parameters,
// then Validate (dry run), Save (register) or Save & run.

import { useCallback, useEffect, useMemo, useRef, useState, type DragEvent } from "react";
import {
  addEdge,
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  useEdgesState,
  useNodesState,
  useReactFlow,
  type Connection,
  type Edge,
} from "@xyflow/react";
import { api, ApiError, type ComposeResult, type PaletteItem, type Workflow } from "../api";
import { useErrors } from "../errors";
import { href, navigate } from "../router";
import { composerNodeTypes } from "../composer/nodes";
import { ProjectSelect } from "../components/ProjectSelect";
import {
  buildCompose,
  ComposeProblems,
  INPUT_TYPES,
  isArrayType,
  uniqueName,
  validId,
  type ComposerNode,
  type InputData,
  type OutputData,
  type StepData,
} from "../composer/model";

const DND_TYPE = "application/x-twin-palette";

export function Composer() {
  return (
    <ReactFlowProvider>
      <ComposerCanvas />
    </ReactFlowProvider>
  );
}

let counter = 1;
const newNodeId = () => `n${Date.now().toString(36)}${counter++}`;

function ComposerCanvas() {
  const { report } = useErrors();
  const { screenToFlowPosition } = useReactFlow();
  const [palette, setPalette] = useState<PaletteItem[] | null>(null);
  const [filter, setFilter] = useState("");
  const [nodes, setNodes, onNodesChange] = useNodesState<ComposerNode>([]);
  const [edges, setEdges, onEdgesChange] = useEdgesState<Edge>([]);
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const [name, setName] = useState("");
  const [label, setLabel] = useState("");
  const [project, setProject] = useState("");
  const [result, setResult] = useState<ComposeResult | null>(null);
  const [problems, setProblems] = useState<string[]>([]);
  const [saved, setSaved] = useState<Workflow | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const wrapper = useRef<HTMLDivElement>(null);

  useEffect(() => {
    setPalette(null);
    api
      .palette(project || undefined)
      .then((p) => setPalette(p.items))
      .catch((err) => {
        setPalette([]);
        report(err);
      });
  }, [project, report]);

  const takenNames = useCallback(() => new Set(nodes.map((n) => n.data.name)), [nodes]);

  const addStep = useCallback(
    (item: PaletteItem, position: { x: number; y: number }) => {
      setNodes((nds) => {
        const taken = new Set(nds.map((n) => n.data.name));
        const node: ComposerNode = {
          id: newNodeId(),
          type: "step",
          position,
          data: { name: uniqueName(item.name, taken), item, params: {} },
        };
        return [...nds, node];
      });
    },
    [setNodes],
  );

  const onDragOver = useCallback((e: DragEvent) => {
    e.preventDefault();
    e.dataTransfer.dropEffect = "move";
  }, []);

  const onDrop = useCallback(
    (e: DragEvent) => {
      e.preventDefault();
      const ref = e.dataTransfer.getData(DND_TYPE) || e.dataTransfer.getData("text/plain");
      const item = palette?.find((p) => p.ref === ref);
      if (!item) return;
      addStep(item, screenToFlowPosition({ x: e.clientX, y: e.clientY }));
    },
    [palette, addStep, screenToFlowPosition],
  );

  const reaches = useCallback(
    (from: string, to: string): boolean => {
      const seen = new Set<string>();
      const stack = [from];
      while (stack.length) {
        const cur = stack.pop()!;
        if (cur === to) return true;
        if (seen.has(cur)) continue;
        seen.add(cur);
        for (const e of edges) if (e.source === cur) stack.push(e.target);
      }
      return false;
    },
    [edges],
  );

  const isValidConnection = useCallback(
    (c: Connection | Edge) => c.source !== c.target && !reaches(c.target, c.source),
    [reaches],
  );

  const onConnect = useCallback(
    (c: Connection) => {
      setEdges((eds) => {
        const target = nodes.find((n) => n.id === c.target);
        let multi = false;
        if (target?.type === "step") {
          const port = (target.data as StepData).item.inputs.find((p) => p.id === c.targetHandle);
          multi = port ? isArrayType(port.type) : false;
        }
        const kept = multi ? eds : eds.filter((e) => !(e.target === c.target && e.targetHandle === c.targetHandle));
        const id = `${c.source}:${c.sourceHandle ?? ""}->${c.target}:${c.targetHandle ?? ""}`;
        return addEdge({ ...c, id }, kept);
      });
    },
    [nodes, setEdges],
  );

  const patchData = useCallback(
    (id: string, patch: Partial<StepData> | Partial<InputData> | Partial<OutputData>) => {
      setNodes((nds) =>
        nds.map((n) => (n.id === id ? ({ ...n, data: { ...n.data, ...patch } } as ComposerNode) : n)),
      );
    },
    [setNodes],
  );

  const removeNode = useCallback(
    (id: string) => {
      setNodes((nds) => nds.filter((n) => n.id !== id));
      setEdges((eds) => eds.filter((e) => e.source !== id && e.target !== id));
      setSelectedId(null);
    },
    [setNodes, setEdges],
  );

  /** A free spot in the visible part of the canvas: inputs on the left, outputs on the right. */
  const visibleSpot = (side: "left" | "right", index: number) => {
    const box = wrapper.current?.getBoundingClientRect();
    if (!box) return { x: side === "left" ? 0 : 600, y: 40 + index * 80 };
    const x = side === "left" ? box.left + 30 : box.left + box.width * 0.75;
    const y = box.top + 40 + (index % Math.max(1, Math.floor((box.height - 80) / 80))) * 80;
    return screenToFlowPosition({ x, y });
  };

  const addInput = (inputName: string, type: string, dflt: string) => {
    const position = visibleSpot("left", nodes.filter((n) => n.type === "wfinput").length);
    setNodes((nds) => [
      ...nds,
      { id: newNodeId(), type: "wfinput", position, data: { name: inputName, type, default: dflt } },
    ]);
  };

  const addOutput = (outputName: string) => {
    const position = visibleSpot("right", nodes.filter((n) => n.type === "wfoutput").length);
    setNodes((nds) => [...nds, { id: newNodeId(), type: "wfoutput", position, data: { name: outputName } }]);
  };

  const compose = async (mode: "validate" | "save" | "run") => {
    setProblems([]);
    setResult(null);
    let body;
    try {
      body = buildCompose(nodes, edges, { name, label, project: project || undefined, dryRun: mode === "validate" });
    } catch (err) {
      if (err instanceof ComposeProblems) setProblems(err.problems);
      else report(err);
      return;
    }
    setBusy(mode);
    try {
      const answer = await api.compose(body);
      if (mode === "validate") {
        setResult(answer as ComposeResult);
        return;
      }
      const wf = answer as Workflow;
      setSaved(wf);
      if (mode === "run") {
        const needsValue = wf.inputs.some(
          (i) => !i.optional && !i.type.endsWith("?") && (i.default === undefined || i.default === null),
        );
        if (needsValue) {
          navigate(href("workflows", wf.id));
          return;
        }
        const run = await api.startRun({ workflow: wf.id, inputs: {} });
        navigate(href("runs", run.id));
      }
    } catch (err) {
      if (mode === "validate" && err instanceof ApiError && (err.status === 400 || err.status === 422)) {
        // the server rejected the composition before writing CWL: that is the verdict
        const message = err.hint ? `${err.message} (${err.hint})` : err.message;
        setResult({ valid: false, errors: [{ message }], cwl: null });
      } else {
        report(err);
      }
    } finally {
      setBusy(null);
    }
  };

  const clearCanvas = () => {
    if (nodes.length && !window.confirm("Remove every node from the canvas?")) return;
    setNodes([]);
    setEdges([]);
    setSelectedId(null);
    setResult(null);
    setSaved(null);
    setProblems([]);
  };

  const shown = useMemo(() => {
    const f = filter.trim().toLowerCase();
    const items = palette ?? [];
    return f
      ? items.filter((i) => `${i.name} ${i.label ?? ""} ${i.doc ?? ""}`.toLowerCase().includes(f))
      : items;
  }, [palette, filter]);

  const selected = nodes.find((n) => n.id === selectedId) ?? null;

  return (
    <div className="composer" data-testid="composer">
      <div className="composer-bar">
        <input
          placeholder="workflow name"
          value={name}
          onChange={(e) => setName(e.target.value)}
          data-testid="composer-name"
          className={name && !validId(name) ? "invalid" : ""}
        />
        <input placeholder="label (optional)" value={label} onChange={(e) => setLabel(e.target.value)} data-testid="composer-label" />
        <ProjectSelect value={project} onChange={setProject} testId="composer-project" />
        <div className="spacer" />
        <button className="secondary" onClick={clearCanvas} data-testid="composer-clear">
          Clear
        </button>
        <button className="secondary" onClick={() => compose("validate")} disabled={busy !== null} data-testid="composer-validate">
          {busy === "validate" ? "Validating…" : "Validate"}
        </button>
        <button onClick={() => compose("save")} disabled={busy !== null} data-testid="composer-save">
          {busy === "save" ? "Saving…" : "Save"}
        </button>
        <button onClick={() => compose("run")} disabled={busy !== null} data-testid="composer-save-run">
          {busy === "run" ? "Starting…" : "Save & run"}
        </button>
      </div>
      <div className="composer-main">
        <aside className="palette" data-testid="palette">
          <h3>Palette</h3>
          <input placeholder="filter" value={filter} onChange={(e) => setFilter(e.target.value)} data-testid="palette-filter" />
          {palette === null && <p className="muted">Loading…</p>}
          {(["template", "workflow"] as const).map((kind) => {
            const items = shown.filter((i) => (kind === "template" ? i.kind === "template" : i.kind !== "template"));
            if (items.length === 0) return null;
            return (
              <div key={kind}>
                <h4>{kind === "template" ? "Templates" : "Workflows"}</h4>
                {items.map((item) => (
                  <div
                    key={item.ref}
                    className={`palette-item kind-${item.kind}`}
                    draggable
                    onDragStart={(e) => {
                      e.dataTransfer.setData(DND_TYPE, item.ref);
                      e.dataTransfer.setData("text/plain", item.ref);
                      e.dataTransfer.effectAllowed = "move";
                    }}
                    onDoubleClick={() => {
                      const box = wrapper.current?.getBoundingClientRect();
                      const at = box
                        ? screenToFlowPosition({ x: box.left + box.width / 3 + nodes.length * 20, y: box.top + 60 + nodes.length * 20 })
                        : { x: 100, y: 100 };
                      addStep(item, at);
                    }}
                    title={`${item.doc ?? ""}\n(drag onto the canvas, or double-click)`}
                    data-testid={item.kind === "template" ? `palette-template-${item.name}` : `palette-workflow-${item.name}-v${item.version ?? ""}`}
                    data-ref={item.ref}
                  >
                    <div className="palette-name">
                      {item.label || item.name}
                      {item.kind !== "template" && <span className="muted"> v{item.version}</span>}
                    </div>
                    <div className="palette-ports muted">
                      {item.inputs.map((p) => p.id).join(", ") || "—"} → {item.outputs.map((p) => p.id).join(", ") || "—"}
                    </div>
                  </div>
                ))}
              </div>
            );
          })}
          <AddInputForm taken={takenNames} onAdd={addInput} />
          <AddOutputForm taken={takenNames} onAdd={addOutput} />
        </aside>
        <div className="canvas" ref={wrapper} onDragOver={onDragOver} onDrop={onDrop} data-testid="composer-canvas">
          <ReactFlow
            nodes={nodes}
            edges={edges}
            nodeTypes={composerNodeTypes}
            onNodesChange={onNodesChange}
            onEdgesChange={onEdgesChange}
            onConnect={onConnect}
            isValidConnection={isValidConnection}
            onNodeClick={(_, node) => setSelectedId(node.id)}
            onPaneClick={() => setSelectedId(null)}
            onNodesDelete={(deleted) => {
              if (deleted.some((d) => d.id === selectedId)) setSelectedId(null);
            }}
            defaultEdgeOptions={{ type: "smoothstep" }}
            defaultViewport={{ x: 0, y: 0, zoom: 1 }}
            proOptions={{ hideAttribution: true }}
          >
            <Background gap={16} size={1} />
            <Controls />
            <MiniMap pannable zoomable />
          </ReactFlow>
          {nodes.length === 0 && (
            <div className="canvas-hint">Drag templates or workflows from the palette and drop them here.</div>
          )}
        </div>
        <aside className="inspector" data-testid="inspector">
          {selected ? (
            <Inspector
              key={selected.id}
              node={selected}
              edges={edges}
              nodes={nodes}
              onPatch={(patch) => patchData(selected.id, patch)}
              onRemove={() => removeNode(selected.id)}
            />
          ) : (
            <p className="muted">
              Click a step to set its parameters. Connect an output port (right) to an input port (left) by dragging.
              Select an edge or node and press Backspace to delete it.
            </p>
          )}
        </aside>
      </div>
      <ComposeOutcome problems={problems} result={result} saved={saved} />
    </div>
  );
}

function Inspector(props: {
  node: ComposerNode;
  nodes: ComposerNode[];
  edges: Edge[];
  onPatch: (patch: Partial<StepData> | Partial<InputData> | Partial<OutputData>) => void;
  onRemove: () => void;
}) {
  const { node, nodes, edges, onPatch, onRemove } = props;
  const nameTaken = nodes.some((n) => n.id !== node.id && n.data.name === node.data.name);
  const nameField = (
    <label>
      Id
      <input
        value={node.data.name}
        onChange={(e) => onPatch({ name: e.target.value })}
        className={!validId(node.data.name) || nameTaken ? "invalid" : ""}
        data-testid="inspector-name"
      />
      {nameTaken && <span className="form-problem">this id is taken</span>}
    </label>
  );
  const sourceLabel = (e: Edge) => {
    const from = nodes.find((n) => n.id === e.source);
    if (!from) return "?";
    return from.type === "step" ? `${from.data.name}/${e.sourceHandle}` : from.data.name;
  };

  if (node.type === "step") {
    const data = node.data;
    return (
      <div className="inspector-body" data-testid="inspector-step">
        <h3>Step</h3>
        <p className="muted">
          {data.item.kind === "template" ? `template ${data.item.name}` : `workflow ${data.item.name} v${data.item.version}`}
          {data.item.doc ? ` — ${data.item.doc}` : ""}
        </p>
        {nameField}
        <h4>Inputs</h4>
        {data.item.inputs.length === 0 && <p className="muted">none</p>}
        {data.item.inputs.map((port) => {
          const incoming = edges.filter((e) => e.target === node.id && e.targetHandle === port.id);
          return (
            <label key={port.id}>
              <span>
                <code>{port.id}</code> <span className="muted">{port.type}</span>
              </span>
              {incoming.length > 0 ? (
                <span className="connected" data-testid={`param-connected-${port.id}`}>
                  ← {incoming.map(sourceLabel).join(", ")}
                </span>
              ) : (
                <textarea
                  rows={port.id === "script" ? 6 : 1}
                  value={data.params[port.id] ?? ""}
                  placeholder={
                    port.default !== undefined && port.default !== null
                      ? `default: ${JSON.stringify(port.default)}`
                      : port.optional || port.type.endsWith("?")
                        ? "optional"
                        : "required: value or connection"
                  }
                  onChange={(e) => onPatch({ params: { ...data.params, [port.id]: e.target.value } })}
                  data-testid={`param-${port.id}`}
                />
              )}
              {port.doc && <span className="field-doc">{port.doc}</span>}
            </label>
          );
        })}
        <h4>Outputs</h4>
        <p className="muted">{data.item.outputs.map((p) => `${p.id} (${p.type})`).join(", ") || "none"}</p>
        <button className="danger" onClick={onRemove} data-testid="inspector-remove">
          Remove step
        </button>
      </div>
    );
  }
  if (node.type === "wfinput") {
    const data = node.data;
    return (
      <div className="inspector-body" data-testid="inspector-input">
        <h3>Workflow input</h3>
        {nameField}
        <label>
          Type
          <select value={data.type} onChange={(e) => onPatch({ type: e.target.value })} data-testid="inspector-type">
            {[...new Set([data.type, ...INPUT_TYPES])].map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Default
          <input value={data.default} onChange={(e) => onPatch({ default: e.target.value })} data-testid="inspector-default" />
        </label>
        <button className="danger" onClick={onRemove} data-testid="inspector-remove">
          Remove input
        </button>
      </div>
    );
  }
  return (
    <div className="inspector-body" data-testid="inspector-output">
      <h3>Workflow output</h3>
      {nameField}
      <button className="danger" onClick={onRemove} data-testid="inspector-remove">
        Remove output
      </button>
    </div>
  );
}

function AddInputForm({ taken, onAdd }: { taken: () => Set<string>; onAdd: (name: string, type: string, dflt: string) => void }) {
  const [name, setName] = useState("");
  const [type, setType] = useState("string");
  const [dflt, setDflt] = useState("");
  const clash = taken().has(name);
  return (
    <form
      className="mini-form"
      data-testid="add-input-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (!validId(name) || clash) return;
        onAdd(name, type, dflt);
        setName("");
        setDflt("");
      }}
    >
      <h4>Add workflow input</h4>
      <input placeholder="name" value={name} onChange={(e) => setName(e.target.value)} data-testid="add-input-name" />
      <select value={type} onChange={(e) => setType(e.target.value)} data-testid="add-input-type">
        {INPUT_TYPES.map((t) => (
          <option key={t}>{t}</option>
        ))}
      </select>
      <input placeholder="default (optional)" value={dflt} onChange={(e) => setDflt(e.target.value)} data-testid="add-input-default" />
      {clash && <span className="form-problem">id taken</span>}
      <button type="submit" className="secondary" disabled={!validId(name) || clash} data-testid="add-input-submit">
        Add input
      </button>
    </form>
  );
}

function AddOutputForm({ taken, onAdd }: { taken: () => Set<string>; onAdd: (name: string) => void }) {
  const [name, setName] = useState("");
  const clash = taken().has(name);
  return (
    <form
      className="mini-form"
      data-testid="add-output-form"
      onSubmit={(e) => {
        e.preventDefault();
        if (!validId(name) || clash) return;
        onAdd(name);
        setName("");
      }}
    >
      <h4>Add workflow output</h4>
      <input placeholder="name" value={name} onChange={(e) => setName(e.target.value)} data-testid="add-output-name" />
      {clash && <span className="form-problem">id taken</span>}
      <button type="submit" className="secondary" disabled={!validId(name) || clash} data-testid="add-output-submit">
        Add output
      </button>
    </form>
  );
}

function ComposeOutcome({ problems, result, saved }: { problems: string[]; result: ComposeResult | null; saved: Workflow | null }) {
  if (problems.length === 0 && !result && !saved) return null;
  return (
    <div className="card compose-outcome">
      {problems.length > 0 && (
        <div className="problems" data-testid="compose-problems">
          <b>Fix these first:</b>
          <ul>
            {problems.map((p) => (
              <li key={p}>{p}</li>
            ))}
          </ul>
        </div>
      )}
      {result && (
        <div data-testid="compose-result" data-valid={String(result.valid)}>
          <b className={result.valid ? "ok" : "bad"} data-testid="compose-valid">
            {result.valid ? "Valid workflow" : "Invalid workflow"}
          </b>
          {result.errors.length > 0 && (
            <ul data-testid="compose-errors">
              {result.errors.map((e, i) => (
                <li key={i}>
                  {e.line ? `line ${e.line}${e.column ? `:${e.column}` : ""}: ` : ""}
                  {e.message}
                </li>
              ))}
            </ul>
          )}
          {result.cwl && (
            <details open>
              <summary>Generated CWL</summary>
              <pre className="source" data-testid="compose-cwl">
                {result.cwl}
              </pre>
            </details>
          )}
        </div>
      )}
      {saved && (
        <p data-testid="compose-saved">
          Saved as{" "}
          <a href={href("workflows", saved.id)} data-testid="compose-saved-link">
            {saved.name} v{saved.version}
          </a>
          .
        </p>
      )}
    </div>
  );
}
