// One run: DAG coloured by live step state (SSE /runs/{id}/events, polling as the
// fallback), steps table, timeline, per-step logs, outputs, provenance; cancel, resume
// and delete.

import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { api, FINAL_STATES, type Run, type Step, type Workflow } from "../api";
import { useErrors } from "../errors";
import { bytes, duration, seconds, when } from "../format";
import { href, navigate } from "../router";
import { openEventStream, parseData } from "../sse";
import { FlowGraph, type GNode } from "../components/FlowGraph";
import { OutputsView } from "../components/OutputsView";
import { ProvView } from "../components/ProvView";
import { StateBadge } from "../components/StateBadge";
import { Timeline } from "../components/Timeline";
import { nodeStates, stepNodeId } from "../runs/stepmap";

const TABS = [
  ["overview", "Overview"],
  ["logs", "Logs"],
  ["outputs", "Outputs"],
  ["provenance", "Provenance"],
] as const;

function mergeStep(steps: Step[], update: Partial<Step> & { id?: string; name?: string }): Step[] {
  const i = steps.findIndex((s) => (update.id ? s.id === update.id : s.name === update.name));
  if (i < 0) return [...steps, { id: update.id ?? update.name ?? "?", name: update.name ?? "?", state: "queued", ...update } as Step];
  const copy = steps.slice();
  copy[i] = { ...copy[i], ...update };
  return copy;
}

export function RunDetail({ id, tab }: { id: string; tab: string }) {
  const { report } = useErrors();
  const [run, setRun] = useState<Run | null>(null);
  const [workflow, setWorkflow] = useState<Workflow | null>(null);
  const [outputs, setOutputs] = useState<Record<string, unknown> | null>(null);
  const [mode, setMode] = useState<"connecting" | "live" | "polling" | "done">("connecting");
  const [logStep, setLogStep] = useState<string>("");
  const [busy, setBusy] = useState(false);
  const [streamKey, setStreamKey] = useState(0);
  const final = run ? FINAL_STATES.has(run.state) : false;
  const workflowId = run?.workflow_id;

  const reload = useCallback(
    (quiet = false) =>
      api
        .run(id)
        .then((r) => {
          setRun(r);
          return r;
        })
        .catch((err) => {
          if (!quiet) report(err);
          return null;
        }),
    [id, report],
  );

  useEffect(() => {
    setRun(null);
    setWorkflow(null);
    setOutputs(null);
    reload();
  }, [id, reload]);

  useEffect(() => {
    if (!workflowId) return;
    api.workflow(workflowId).then(setWorkflow).catch(report);
  }, [workflowId, report]);

  useEffect(() => {
    if (!final) return;
    api
      .runOutputs(id)
      .then((o) => setOutputs(o.outputs ?? null))
      .catch(report);
  }, [id, final, report]);

  // live state: the event stream, or polling every 3 s when it fails
  const finalRef = useRef(final);
  finalRef.current = final;
  useEffect(() => {
    const abort = new AbortController();
    let poll: number | null = null;
    let ended = false;
    const startPolling = () => {
      if (abort.signal.aborted || poll !== null) return;
      setMode("polling");
      poll = window.setInterval(() => {
        reload(true).then((r) => {
          if (r && FINAL_STATES.has(r.state) && poll !== null) {
            window.clearInterval(poll);
            poll = null;
            setMode("done");
          }
        });
      }, 3000);
    };
    setMode("connecting");
    openEventStream(
      `/api/v1/runs/${encodeURIComponent(id)}/events`,
      (ev) => {
        if (ev.event === "run") {
          const data = parseData<Partial<Run>>(ev);
          if (data) setRun((old) => (old ? { ...old, ...data, id: old.id } : old));
        } else if (ev.event === "step") {
          const data = parseData<Partial<Step>>(ev);
          if (data) setRun((old) => (old ? { ...old, steps: mergeStep(old.steps ?? [], data) } : old));
        } else if (ev.event === "end") {
          ended = true;
          const data = parseData<{ state?: string }>(ev);
          if (data?.state) setRun((old) => (old ? { ...old, state: data.state! } : old));
        }
      },
      abort.signal,
      () => setMode("live"),
    )
      .then(() => {
        if (abort.signal.aborted) return;
        if (ended || finalRef.current) {
          setMode("done");
          reload(true); // the final record: outputs, exit code, every step
        } else {
          startPolling();
        }
      })
      .catch((err) => {
        if (abort.signal.aborted) return;
        console.warn("run event stream failed; polling every 3 s", err);
        startPolling();
      });
    return () => {
      abort.abort();
      if (poll !== null) window.clearInterval(poll);
    };
  }, [id, reload, streamKey]);

  const steps = useMemo(() => run?.steps ?? [], [run]);

  const dag = useMemo(() => {
    if (!workflow?.graph || !run) return null;
    const stepIds = new Set(workflow.graph.nodes.filter((n) => n.kind === "step").map((n) => n.id));
    const states = nodeStates(steps, run, stepIds);
    const nodes: GNode[] = workflow.graph.nodes.map((n) => {
      let state: string | undefined;
      if (n.kind === "step") state = states.get(n.id) ?? (final ? undefined : "queued");
      else if (n.kind === "output" && run.state === "succeeded") state = "succeeded";
      return { id: n.id, kind: n.kind, label: n.label || n.id, state, sub: n.kind === "step" ? undefined : n.kind };
    });
    return { nodes, edges: workflow.graph.edges, stepIds };
  }, [workflow, run, steps, final]);

  if (!run) return <p className="muted">Loading…</p>;

  const act = async (what: "cancel" | "resume" | "delete") => {
    if (what === "delete" && !window.confirm(`Delete run ${run.name}?`)) return;
    setBusy(true);
    try {
      if (what === "delete") {
        await api.deleteRun(run.id);
        navigate(href("runs"));
        return;
      }
      const updated = what === "cancel" ? await api.cancelRun(run.id) : await api.resumeRun(run.id);
      setRun((old) => ({ ...updated, steps: updated.steps ?? old?.steps }));
      if (what === "resume") {
        setOutputs(null);
        setStreamKey((k) => k + 1);
      }
    } catch (err) {
      report(err);
    } finally {
      setBusy(false);
    }
  };

  const showLogs = (stepName: string) => {
    setLogStep(stepName);
    navigate(`${href("runs", run.id)}?tab=logs`);
  };

  const tabHref = (t: string) => `${href("runs", run.id)}?tab=${t}`;

  return (
    <div data-testid="run-detail" data-id={run.id} data-state={run.state}>
      <div className="page-head">
        <h1>
          <span data-testid="run-name">{run.name}</span> <StateBadge state={run.state} testId="run-detail-state" />
        </h1>
        <div className="actions">
          <span className={`live-mode ${mode}`} data-testid="run-live-mode">
            {mode === "live" ? "● live" : mode === "polling" ? "polling" : mode === "done" ? "" : "…"}
          </span>
          <button className="secondary" disabled={busy || final} onClick={() => act("cancel")} data-testid="run-cancel">
            Cancel
          </button>
          <button
            className="secondary"
            disabled={busy || !final || run.state === "succeeded"}
            onClick={() => act("resume")}
            data-testid="run-resume"
          >
            Resume
          </button>
          <button className="danger" disabled={busy || !final} onClick={() => act("delete")} data-testid="run-delete">
            Delete
          </button>
        </div>
      </div>
      <p className="meta">
        workflow{" "}
        <a href={href("workflows", run.workflow_id)} data-testid="run-workflow-link">
          {run.workflow_name ?? run.workflow_id}
          {run.workflow_version ? ` v${run.workflow_version}` : ""}
        </a>{" "}
        · project <b>{run.project}</b> · created {when(run.created_at)}
        {run.created_by ? ` by ${run.created_by}` : ""} · started {when(run.started_at)} · ended {when(run.ended_at)} ·
        duration {run.started_at ? duration(run.started_at, run.ended_at) : "—"}
        {run.attempt && run.attempt > 1 ? ` · attempt ${run.attempt}` : ""} · <span className="mono">{run.id}</span>
      </p>
      {run.error && (
        <pre className="run-error" data-testid="run-error">
          {run.error}
        </pre>
      )}
      <div className="tabs">
        {TABS.map(([t, label]) => (
          <a key={t} href={tabHref(t)} className={tab === t ? "active" : ""} data-testid={`run-tab-${t}`}>
            {label}
          </a>
        ))}
      </div>

      {tab === "overview" && (
        <>
          {dag ? (
            <FlowGraph
              nodes={dag.nodes}
              edges={dag.edges}
              testPrefix="dag"
              height={360}
              positions={workflow?.layout}
              animateRunning
              onNodeClick={(n) => {
                if (n.kind !== "step") return;
                const step = steps.find((s) => stepNodeId(s.name, run, dag.stepIds) === n.id);
                if (step) showLogs(step.name);
              }}
            />
          ) : (
            <p className="muted">{workflow ? "No graph." : "Loading the graph…"}</p>
          )}
          <h2>Steps</h2>
          <StepsTable steps={steps} onLogs={showLogs} />
          <h2>Timeline</h2>
          <Timeline steps={steps} runStart={run.started_at} runEnd={run.ended_at} />
          <h2>Inputs</h2>
          <pre className="preview-text" data-testid="run-inputs">
            {JSON.stringify(run.inputs ?? {}, null, 2)}
          </pre>
        </>
      )}
      {tab === "logs" && <Logs run={run} steps={steps} step={logStep} onStep={setLogStep} />}
      {tab === "outputs" &&
        (final ? (
          outputs === null && run.state === "succeeded" ? (
            <p className="muted">Loading…</p>
          ) : (
            <OutputsView outputs={outputs} />
          )
        ) : (
          <p className="muted">The outputs appear when the run ends.</p>
        ))}
      {tab === "provenance" &&
        (final ? (
          <ProvView runId={run.id} outputs={outputs} />
        ) : (
          <p className="muted" data-testid="prov-pending">
            Provenance is captured when the run ends.
          </p>
        ))}
    </div>
  );
}

/** "file:///…/main.cwl#echo/run" → "main.cwl#echo/run" */
function shortTool(tool?: string | null): string {
  if (!tool) return "";
  const hash = tool.indexOf("#");
  const file = (hash >= 0 ? tool.slice(0, hash) : tool).split("/").pop() ?? "";
  return hash >= 0 ? `${file}${tool.slice(hash)}` : file;
}

function StepsTable({ steps, onLogs }: { steps: Step[]; onLogs: (name: string) => void }) {
  if (steps.length === 0) return <p className="muted">No steps yet.</p>;
  return (
    <table className="table compact" data-testid="steps-table">
      <thead>
        <tr>
          <th>Step</th>
          <th>State</th>
          <th>Tool</th>
          <th>Attempt</th>
          <th>Started</th>
          <th>Wall time</th>
          <th>Exit</th>
          <th>Peak memory</th>
          <th>Note</th>
          <th />
        </tr>
      </thead>
      <tbody>
        {steps.map((s) => (
          <tr key={s.id} data-testid="step-row" data-name={s.name} data-state={s.state}>
            <td className="mono">{s.name}</td>
            <td>
              <StateBadge state={s.state} />
            </td>
            <td className="small mono" title={s.tool ?? ""}>
              {shortTool(s.tool) || s.kind || ""}
            </td>
            <td>{s.attempt ?? ""}</td>
            <td className="small">{when(s.started_at)}</td>
            <td>{s.wall_time !== null && s.wall_time !== undefined ? seconds(s.wall_time) : duration(s.started_at, s.ended_at)}</td>
            <td>{s.exit_code ?? ""}</td>
            <td>{s.peak_memory ? bytes(s.peak_memory) : ""}</td>
            <td className="small">
              {s.reused_from ? `reused from ${s.reused_from}` : ""}
              {s.message ?? ""}
            </td>
            <td>
              <button className="link" onClick={() => onLogs(s.name)} data-testid="step-logs">
                logs
              </button>
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

const WHOLE_RUN = "__whole_run__";

function Logs(props: { run: Run; steps: Step[]; step: string; onStep: (name: string) => void }) {
  const { run, steps, step, onStep } = props;
  const { report } = useErrors();
  const [stream, setStream] = useState<"stdout" | "stderr">("stdout");
  const [text, setText] = useState<string | null>(null);
  const [nonce, setNonce] = useState(0);
  const chosen = step || steps[0]?.name || WHOLE_RUN;
  const chosenState = chosen === WHOLE_RUN ? run.state : steps.find((s) => s.name === chosen)?.state;

  useEffect(() => {
    let live = true;
    setText(null);
    api
      .runLogs(run.id, chosen === WHOLE_RUN ? "" : chosen, stream)
      .then((t) => live && setText(t))
      .catch((err) => {
        if (live) setText("");
        report(err);
      });
    return () => {
      live = false;
    };
  }, [run.id, chosen, stream, nonce, chosenState, report]);

  return (
    <div data-testid="logs">
      <div className="inline wrap">
        <select value={chosen} onChange={(e) => onStep(e.target.value)} data-testid="logs-step">
          <option value={WHOLE_RUN}>the whole run (driver log)</option>
          {steps.map((s) => (
            <option key={s.id} value={s.name}>
              {s.name} ({s.state})
            </option>
          ))}
        </select>
        <label className="check">
          <input type="radio" checked={stream === "stdout"} onChange={() => setStream("stdout")} data-testid="logs-stdout" />
          stdout
        </label>
        <label className="check">
          <input type="radio" checked={stream === "stderr"} onChange={() => setStream("stderr")} data-testid="logs-stderr" />
          stderr
        </label>
        <button className="secondary" onClick={() => setNonce((n) => n + 1)} data-testid="logs-refresh">
          Refresh
        </button>
      </div>
      <pre className="log" data-testid="logs-text">
        {text === null ? "Loading…" : text || "(empty)"}
      </pre>
    </div>
  );
}
