// One workflow: its DAG, inputs/outputs, CWL source and the Run form.

import { useEffect, useMemo, useState } from "react";
import { api, type Workflow } from "../api";
import { useErrors } from "../errors";
import { when } from "../format";
import { href, navigate } from "../router";
import { FlowGraph, type GNode } from "../components/FlowGraph";
import { PortsTable } from "../components/PortsTable";
import { RunForm } from "../components/RunForm";

export function WorkflowDetail({ id, tab }: { id: string; tab: string }) {
  const { report } = useErrors();
  const [wf, setWf] = useState<Workflow | null>(null);
  const [source, setSource] = useState<string | null>(null);

  useEffect(() => {
    setWf(null);
    setSource(null);
    api.workflow(id).then(setWf).catch(report);
  }, [id, report]);

  useEffect(() => {
    if (tab === "source" && source === null) api.workflowContent(id).then(setSource).catch(report);
  }, [tab, id, source, report]);

  const graph = useMemo(() => {
    const nodes: GNode[] = (wf?.graph?.nodes ?? []).map((n) => ({
      id: n.id,
      kind: n.kind,
      label: n.label || n.id,
      sub: n.kind === "step" ? (n.class ?? undefined) : n.kind,
    }));
    return { nodes, edges: wf?.graph?.edges ?? [] };
  }, [wf]);

  if (!wf) return <p className="muted">Loading…</p>;

  const remove = async () => {
    if (!window.confirm(`Delete workflow ${wf.name} v${wf.version}?`)) return;
    try {
      await api.deleteWorkflow(wf.id);
      navigate(href("workflows"));
    } catch (err) {
      report(err);
    }
  };

  return (
    <div data-testid="workflow-detail" data-id={wf.id}>
      <div className="page-head">
        <h1>
          <span data-testid="workflow-name">{wf.name}</span> <span className="muted">v{wf.version}</span>
        </h1>
        <div className="actions">
          <button className="danger" onClick={remove} data-testid="workflow-delete">
            Delete
          </button>
        </div>
      </div>
      <p className="meta">
        {wf.class} · project <b>{wf.project}</b> · created {when(wf.created_at)}
        {wf.created_by ? ` by ${wf.created_by}` : ""} · main <code>{wf.main ?? "—"}</code> ·{" "}
        <span className="mono">{wf.id}</span>
      </p>
      {(wf.label || wf.doc || wf.description) && (
        <div className="doc">
          {wf.label && <b>{wf.label}</b>}
          {wf.description && <p>{wf.description}</p>}
          {wf.doc && <p className="pre-line">{wf.doc}</p>}
        </div>
      )}
      <div className="tabs">
        <a href={`${href("workflows", wf.id)}?tab=graph`} className={tab !== "source" ? "active" : ""} data-testid="tab-graph">
          Graph &amp; run
        </a>
        <a href={`${href("workflows", wf.id)}?tab=source`} className={tab === "source" ? "active" : ""} data-testid="tab-source">
          CWL source
        </a>
      </div>
      {tab === "source" ? (
        <pre className="source" data-testid="workflow-source">
          {source ?? "Loading…"}
        </pre>
      ) : (
        <>
          {graph.nodes.length > 0 ? (
            <FlowGraph nodes={graph.nodes} edges={graph.edges} testPrefix="wf" height={360} positions={wf.layout} />
          ) : (
            <p className="muted">No graph (a single tool).</p>
          )}
          <div className="columns">
            <section className="card">
              <h2>Run</h2>
              <RunForm workflow={wf} onStarted={(run) => navigate(href("runs", run.id))} />
            </section>
            <section className="card">
              <h2>Inputs</h2>
              <PortsTable ports={wf.inputs} testId="workflow-inputs" withDefault />
              <h2>Outputs</h2>
              <PortsTable ports={wf.outputs} testId="workflow-outputs" />
            </section>
          </div>
        </>
      )}
    </div>
  );
}
