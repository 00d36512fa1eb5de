// Functions (serverless steps, docs/functions.md): list with their workers now, a deploy
// form, and for one function: invoke with a JSON input (result, error, logs) and its
// recent calls. Names are per project (two projects may each have a "clean"): a function
// is selected by name and project (#/functions/NAME?project=P), and every call the page
// makes for one function passes its project.

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, errorText, type FunctionCall, type TwinFunction } from "../api";
import { useErrors } from "../errors";
import { seconds, when } from "../format";
import { usePolled } from "../live";
import { href, navigate } from "../router";
import { StateBadge } from "../components/StateBadge";
import { ProjectSelect } from "../components/ProjectSelect";

/** where one function's panel is: its name and ``?project=`` */
function functionHref(f: TwinFunction): string {
  return `${href("functions", f.name)}?project=${encodeURIComponent(f.project)}`;
}

export function Functions({ selected, project }: { selected: string | null; project: string | null }) {
  const { report } = useErrors();
  const [items, load] = usePolled(api.functions, 5000);

  const remove = async (f: TwinFunction) => {
    if (!window.confirm(`Delete function ${f.name} and the records of its calls?`)) return;
    try {
      await api.deleteFunction(f.name, f.project);
      if (isSelected(f)) navigate(href("functions"));
    } catch (err) {
      report(err);
    } finally {
      load(true);
    }
  };

  // without ?project= (an old link) the name alone selects, when only one project has it
  const named = items?.filter((f) => f.name === selected && (!project || f.project === project)) ?? [];
  const current = named.length === 1 ? named[0] : null;
  const isSelected = (f: TwinFunction) => current !== null && f.name === current.name && f.project === current.project;
  return (
    <div data-testid="functions-page">
      <div className="page-head">
        <h1>Functions</h1>
      </div>
      <DeployForm
        onDeployed={(f) => {
          load(true);
          navigate(functionHref(f));
        }}
      />
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="functions-empty">
          No functions deployed.
        </p>
      ) : (
        <table className="table" data-testid="functions-table">
          <thead>
            <tr>
              <th>Function</th>
              <th>Kind</th>
              <th>Target</th>
              <th>Workers (min–max)</th>
              <th>Now</th>
              <th>Timeout</th>
              <th>Project</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((f) => (
              <tr
                key={`${f.project}/${f.name}`}
                data-testid="function-row"
                data-name={f.name}
                data-project={f.project}
                className={isSelected(f) ? "selected-row" : ""}
              >
                <td>
                  <a href={functionHref(f)} data-testid="function-link">
                    {f.name}
                  </a>
                </td>
                <td>{f.kind}</td>
                <td className="mono small">{f.target}</td>
                <td>
                  {f.min_workers}–{f.max_workers}
                </td>
                <td className="small">
                  {f.workers} workers, {f.busy} busy, {f.queued} queued
                </td>
                <td>{seconds(f.timeout)}</td>
                <td>{f.project}</td>
                <td>
                  <button className="danger small" onClick={() => remove(f)} data-testid="function-delete">
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {selected && current && <FunctionPanel key={`${current.project}/${current.name}`} fn={current} />}
      {selected && items && !current && (
        <p className="muted" data-testid="function-missing">
          {named.length > 1
            ? `Function ${selected} is in several projects (${named.map((f) => f.project).join(", ")}): pick one above.`
            : `No function ${selected}${project ? ` in project ${project}` : ""}.`}
        </p>
      )}
    </div>
  );
}

function DeployForm({ onDeployed }: { onDeployed: (f: TwinFunction) => void }) {
  const [name, setName] = useState("");
  const [kind, setKind] = useState("command");
  const [target, setTarget] = useState("");
  const [project, setProject] = useState("");
  const [minWorkers, setMin] = useState(0);
  const [maxWorkers, setMax] = useState(2);
  const [timeout, setTimeoutS] = useState(60);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<{ message: string; hint: string | null } | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      const f = await api.deployFunction({
        name: name.trim(),
        kind,
        target: target.trim(),
        project: project || undefined,
        min_workers: minWorkers,
        max_workers: maxWorkers,
        timeout,
      });
      onDeployed(f);
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="card" data-testid="deploy-panel">
      <summary data-testid="deploy-toggle">Deploy a function</summary>
      <form className="grid-form" onSubmit={submit} data-testid="deploy-form">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} required data-testid="deploy-name" />
        </label>
        <label>
          Kind
          <select value={kind} onChange={(e) => setKind(e.target.value)} data-testid="deploy-kind">
            <option value="command">command (input JSON on stdin)</option>
            <option value="python">python (module:function)</option>
          </select>
        </label>
        <label className="wide-2">
          Target
          <input
            value={target}
            onChange={(e) => setTarget(e.target.value)}
            placeholder={kind === "python" ? "mypkg.steps:normalise" : "tr a-z A-Z"}
            required
            data-testid="deploy-target"
          />
        </label>
        <label>
          Project
          <ProjectSelect value={project} onChange={setProject} testId="deploy-project" />
        </label>
        <label>
          Min workers
          <input type="number" min={0} max={64} value={minWorkers} onChange={(e) => setMin(Number(e.target.value))} data-testid="deploy-min" />
        </label>
        <label>
          Max workers
          <input type="number" min={1} max={64} value={maxWorkers} onChange={(e) => setMax(Number(e.target.value))} data-testid="deploy-max" />
        </label>
        <label>
          Timeout (s)
          <input
            type="number"
            min={0.1}
            step="any"
            value={timeout}
            onChange={(e) => setTimeoutS(Number(e.target.value))}
            data-testid="deploy-timeout"
          />
        </label>
        {problem && (
          <div className="wide form-problem" data-testid="deploy-error" role="alert">
            {problem.message}
            {problem.hint && <div className="small">Hint: {problem.hint}</div>}
          </div>
        )}
        <div className="wide">
          <button type="submit" disabled={busy || !name.trim() || !target.trim()} data-testid="deploy-submit">
            {busy ? "Deploying…" : "Deploy"}
          </button>
        </div>
      </form>
    </details>
  );
}

function FunctionPanel({ fn }: { fn: TwinFunction }) {
  const { report } = useErrors();
  const [input, setInput] = useState("{}");
  const [call, setCall] = useState<FunctionCall | null>(null);
  const [problem, setProblem] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [calls, setCalls] = useState<FunctionCall[] | null>(null);

  const loadCalls = useCallback(
    () =>
      api
        .functionCalls(fn.name, fn.project)
        .then((c) => setCalls(c.items))
        .catch(report),
    [fn.name, fn.project, report],
  );
  useEffect(() => {
    loadCalls();
  }, [loadCalls]);

  const invoke = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    let value: unknown;
    try {
      value = JSON.parse(input || "{}");
    } catch (err) {
      setProblem(`the input is not JSON: ${String(err)}`);
      return;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      setProblem("the input must be a JSON object");
      return;
    }
    setBusy(true);
    setCall(null);
    try {
      setCall(await api.invokeFunction(fn.name, fn.project, value));
    } catch (err) {
      const { message, hint } = errorText(err);
      setProblem(hint ? `${message} (${hint})` : message);
    } finally {
      setBusy(false);
      loadCalls();
    }
  };

  return (
    <div className="card" data-testid="function-panel" data-name={fn.name} data-project={fn.project}>
      <h2>
        {fn.name} <span className="muted small">{fn.kind} · project {fn.project}</span>
      </h2>
      <div className="meta">
        <span className="mono">{fn.target}</span> · created {when(fn.created_at)}
        {fn.created_by ? ` by ${fn.created_by}` : ""}
        {fn.env.length ? ` · env ${fn.env.join(", ")}` : ""}
      </div>
      <div className="columns">
        <form className="run-form" onSubmit={invoke} data-testid="invoke-form">
          <label>
            Input (a JSON object)
            <textarea
              rows={6}
              value={input}
              onChange={(e) => setInput(e.target.value)}
              spellCheck={false}
              className="mono"
              data-testid="invoke-input"
            />
          </label>
          <button type="submit" disabled={busy} data-testid="invoke-submit">
            {busy ? "Running…" : "Invoke"}
          </button>
          {problem && (
            <div className="form-problem" data-testid="invoke-error">
              {problem}
            </div>
          )}
        </form>
        <div data-testid="invoke-result">
          {call ? (
            <CallView call={call} />
          ) : (
            <p className="muted">{busy ? "Waiting for the call…" : "Invoke to see the result and the logs."}</p>
          )}
        </div>
      </div>
      <h3>Recent calls</h3>
      {!calls ? (
        <p className="muted">Loading…</p>
      ) : calls.length === 0 ? (
        <p className="muted" data-testid="calls-empty">
          No calls yet.
        </p>
      ) : (
        <table className="table compact" data-testid="calls-table">
          <thead>
            <tr>
              <th>Call</th>
              <th>State</th>
              <th>Input</th>
              <th>Result / error</th>
              <th>Started</th>
              <th>Duration</th>
            </tr>
          </thead>
          <tbody>
            {calls.map((c) => (
              <tr key={c.id} data-testid="call-row" data-id={c.id} data-state={c.state}>
                <td>
                  <button className="link mono small" onClick={() => setCall(c)} title="show this call">
                    {c.id}
                  </button>
                </td>
                <td>
                  <StateBadge state={c.state} />
                </td>
                <td className="mono small clip">{short(c.input)}</td>
                <td className={`mono small clip${c.error ? " bad" : ""}`}>{c.error ?? short(c.result)}</td>
                <td>{when(c.started_at ?? c.created_at)}</td>
                <td>{seconds(c.duration)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function short(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value);
  if (text === undefined) return "";
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

function CallView({ call }: { call: FunctionCall }) {
  return (
    <div data-testid="call-view" data-state={call.state}>
      <div className="inline">
        <StateBadge state={call.state} testId="call-state" />
        <span className="mono small">{call.id}</span>
        <span className="muted small">{seconds(call.duration)}</span>
      </div>
      {call.error && (
        <pre className="run-error" data-testid="call-error">
          {call.error}
        </pre>
      )}
      <h4>Result</h4>
      <pre className="preview-text" data-testid="call-result">
        {call.result === undefined || call.result === null
          ? "null"
          : typeof call.result === "string"
            ? call.result
            : JSON.stringify(call.result, null, 2)}
      </pre>
      <h4>Logs</h4>
      <pre className="preview-text" data-testid="call-logs">
        {call.logs || "(nothing printed)"}
      </pre>
    </div>
  );
}
