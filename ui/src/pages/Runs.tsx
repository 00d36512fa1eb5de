// Runs: list with a state filter and pagination, kept live by the SSE stream
// /api/v1/stream/runs (fetch + ReadableStream), or by polling every 3 s when it fails.

import { useCallback, useEffect, useRef, useState } from "react";
import { api, RUN_STATES, type Page, type Run } from "../api";
import { useErrors } from "../errors";
import { duration, when } from "../format";
import { href } from "../router";
import { openEventStream, parseData } from "../sse";
import { Pager } from "../components/Pager";
import { StateBadge } from "../components/StateBadge";

const LIMIT = 20;

export function Runs() {
  const { report } = useErrors();
  const [state, setState] = useState("");
  const [q, setQ] = useState("");
  const [offset, setOffset] = useState(0);
  const [page, setPage] = useState<Page<Run> | null>(null);
  const [mode, setMode] = useState<"connecting" | "live" | "polling">("connecting");
  const reloadTimer = useRef<number | null>(null);
  const failures = useRef(0);

  const load = useCallback(
    (quiet = false) =>
      api
        .runs({ state, q, limit: LIMIT, offset })
        .then((p) => {
          failures.current = 0;
          setPage(p);
        })
        .catch((err) => {
          // while polling, report only the first of a series of failures
          if (!quiet || failures.current++ === 0) report(err);
        }),
    [state, q, offset, report],
  );

  const loadRef = useRef(load);
  loadRef.current = load;
  const pageRef = useRef(page);
  pageRef.current = page;

  useEffect(() => {
    load();
  }, [load]);

  // live updates: the stream, or polling when it fails
  useEffect(() => {
    const abort = new AbortController();
    let poll: number | null = null;
    const startPolling = () => {
      if (abort.signal.aborted || poll !== null) return;
      setMode("polling");
      poll = window.setInterval(() => loadRef.current(true), 3000);
    };
    const scheduleReload = () => {
      if (reloadTimer.current !== null) return;
      reloadTimer.current = window.setTimeout(() => {
        reloadTimer.current = null;
        loadRef.current(true);
      }, 300);
    };
    openEventStream(
      "/api/v1/stream/runs",
      (ev) => {
        if (ev.event !== "run") return;
        const data = parseData<Partial<Run> & { id: string }>(ev);
        if (!data || !data.id) return;
        const known = pageRef.current?.items.some((r) => r.id === data.id) ?? false;
        if (known) {
          setPage((old) =>
            old ? { ...old, items: old.items.map((r) => (r.id === data.id ? { ...r, ...data } : r)) } : old,
          );
        }
        // reload soon (debounced): new runs, step counts, runs leaving the filtered list
        scheduleReload();
      },
      abort.signal,
      () => setMode("live"),
    )
      .then(() => startPolling())
      .catch((err) => {
        if (abort.signal.aborted) return;
        console.warn("run events stream failed; polling every 3 s", err);
        startPolling();
      });
    return () => {
      abort.abort();
      if (poll !== null) window.clearInterval(poll);
      if (reloadTimer.current !== null) {
        window.clearTimeout(reloadTimer.current);
        reloadTimer.current = null;
      }
    };
  }, []);

  return (
    <div>
      <div className="page-head">
        <h1>Runs</h1>
        <div className="inline">
          <select
            value={state}
            onChange={(e) => {
              setOffset(0);
              setState(e.target.value);
            }}
            data-testid="runs-state-filter"
          >
            <option value="">all states</option>
            {RUN_STATES.map((s) => (
              <option key={s} value={s}>
                {s}
              </option>
            ))}
          </select>
          <input
            placeholder="search"
            defaultValue={q}
            onKeyDown={(e) => {
              if (e.key === "Enter") {
                setOffset(0);
                setQ((e.target as HTMLInputElement).value);
              }
            }}
            data-testid="runs-search"
          />
          <span className={`live-mode ${mode}`} data-testid="runs-live-mode" title="how the list is kept up to date">
            {mode === "live" ? "● live" : mode === "polling" ? "polling" : "…"}
          </span>
        </div>
      </div>
      {!page ? (
        <p className="muted">Loading…</p>
      ) : page.items.length === 0 ? (
        <p className="muted" data-testid="runs-empty">
          No runs{state ? ` in state ${state}` : ""}.
        </p>
      ) : (
        <>
          <table className="table" data-testid="runs-table">
            <thead>
              <tr>
                <th>Run</th>
                <th>Workflow</th>
                <th>State</th>
                <th>Steps</th>
                <th>Created</th>
                <th>Duration</th>
                <th>By</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((run) => (
                <tr key={run.id} data-testid="run-row" data-id={run.id} data-state={run.state}>
                  <td>
                    <a href={href("runs", run.id)} data-testid="run-link">
                      {run.name}
                    </a>
                    <div className="mono muted small">{run.id}</div>
                  </td>
                  <td>
                    <a href={href("workflows", run.workflow_id)}>
                      {run.workflow_name ?? run.workflow_id}
                      {run.workflow_version ? ` v${run.workflow_version}` : ""}
                    </a>
                  </td>
                  <td>
                    <StateBadge state={run.state} testId="run-state" />
                  </td>
                  <td className="small">
                    {run.step_counts
                      ? Object.entries(run.step_counts)
                          .map(([k, v]) => `${v} ${k}`)
                          .join(", ")
                      : ""}
                  </td>
                  <td>{when(run.created_at)}</td>
                  <td>{run.started_at ? duration(run.started_at, run.ended_at) : "—"}</td>
                  <td>{run.created_by ?? ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager total={page.total} limit={page.limit || LIMIT} offset={page.offset} onOffset={setOffset} />
        </>
      )}
    </div>
  );
}
