// Events: the durable queue newest first, each event with its deliveries (one per
// trigger: state, attempts, error, the run it started); filters by source and delivery
// state (dead letters included), pagination, retry by hand; refreshed every 3 s and when
// someone here approves or retries. EventDetail: one event with its body.

import { useCallback, useEffect, useRef, useState } from "react";
import { api, DELIVERY_STATES, type Delivery, type TwinEvent, type TwinSource } from "../api";
import { useErrors } from "../errors";
import { when } from "../format";
import { useInterval } from "../live";
import { href, navigate } from "../router";
import { ApprovalsPanel } from "../components/Approvals";
import { Pager } from "../components/Pager";
import { StateBadge } from "../components/StateBadge";

const LIMIT = 25;
const REFRESH_MS = 3000;
const RETRYABLE = new Set(["dead", "retrying"]);
const SETTLED = new Set(["done", "dead", "skipped"]);

/** Reload when another component here changed events (approve, retry). */
function useEventsChanged(fn: () => void): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const on = () => ref.current();
    window.addEventListener("twin:events-changed", on);
    return () => window.removeEventListener("twin:events-changed", on);
  }, []);
}

function useRetry(onDone: () => void) {
  const { report } = useErrors();
  const [busy, setBusy] = useState<string | null>(null);
  const retry = async (id: string) => {
    setBusy(id);
    try {
      await api.retryEvent(id);
    } catch (err) {
      report(err);
    } finally {
      setBusy(null);
      onDone();
    }
  };
  return { busy, retry };
}

// ``initialProject``: the project whose source is meant (source names are per project)
export function Events({
  initialSource,
  initialState,
  initialProject = "",
}: {
  initialSource: string;
  initialState: string;
  initialProject?: string;
}) {
  const { report } = useErrors();
  const [source, setSource] = useState(initialSource);
  const [state, setState] = useState(initialState);
  const [offset, setOffset] = useState(0);
  // the list asks for one more than it shows: the API may leave "total" out
  const [page, setPage] = useState<{ items: TwinEvent[]; total?: number | null; more: boolean } | null>(null);
  const [sources, setSources] = useState<TwinSource[]>([]);
  const failures = useRef(0);

  const load = useCallback(
    (quiet = false) =>
      api
        .events({ source, state, project: initialProject || undefined, limit: LIMIT + 1, offset })
        .then((p) => {
          failures.current = 0;
          setPage({ items: p.items.slice(0, LIMIT), total: p.total, more: p.items.length > LIMIT });
        })
        .catch((err) => {
          if (!quiet || failures.current++ === 0) report(err);
        }),
    [source, state, offset, initialProject, report],
  );

  useEffect(() => {
    load();
  }, [load]);
  useEffect(() => {
    api
      .sources()
      .then((s) => setSources(s.items))
      .catch(report);
  }, [report]);
  useInterval(() => load(true), REFRESH_MS);
  useEventsChanged(() => load(true));
  const { busy, retry } = useRetry(() => load(true));

  return (
    <div data-testid="events-page">
      <div className="page-head">
        <h1>Events</h1>
        <div className="inline">
          <select
            value={source}
            onChange={(e) => {
              setOffset(0);
              setSource(e.target.value);
            }}
            data-testid="events-source-filter"
          >
            <option value="">all sources</option>
            <option value="runs">runs</option>
            {sources.map((s) => (
              <option key={s.name} value={s.name}>
                {s.name}
              </option>
            ))}
          </select>
          <select
            value={state}
            onChange={(e) => {
              setOffset(0);
              setState(e.target.value);
            }}
            data-testid="events-state-filter"
          >
            <option value="">any delivery state</option>
            {DELIVERY_STATES.map((s) => (
              <option key={s} value={s}>
                {s === "dead" ? "dead (dead letters)" : s}
              </option>
            ))}
          </select>
          <span className="live-mode live" title={`refreshed every ${REFRESH_MS / 1000} s`}>
            ⟳ auto
          </span>
        </div>
      </div>
      <ApprovalsPanel compact />
      {!page ? (
        <p className="muted">Loading…</p>
      ) : page.items.length === 0 ? (
        <p className="muted" data-testid="events-empty">
          No events{source ? ` from ${source}` : ""}
          {state ? ` with a ${state} delivery` : ""}.
        </p>
      ) : (
        <>
          <table className="table" data-testid="events-table">
            <thead>
              <tr>
                <th>Event</th>
                <th>Source</th>
                <th>Kind</th>
                <th>Received</th>
                <th>Deliveries</th>
                <th />
              </tr>
            </thead>
            <tbody>
              {page.items.map((ev) => (
                <tr key={ev.id} data-testid="event-row" data-id={ev.id} data-key={ev.key} data-source={ev.source}>
                  <td>
                    <a href={href("events", ev.id)} data-testid="event-link">
                      {ev.key || ev.id}
                    </a>
                    <div className="mono muted small">{ev.id}</div>
                  </td>
                  <td>{ev.source}</td>
                  <td>{ev.kind}</td>
                  <td>{when(ev.received_at)}</td>
                  <td>
                    <Deliveries items={ev.deliveries} />
                  </td>
                  <td>
                    {ev.deliveries.some((d) => RETRYABLE.has(d.state)) && (
                      <button
                        className="secondary small"
                        disabled={busy !== null}
                        onClick={() => retry(ev.id)}
                        data-testid="event-retry"
                      >
                        Retry
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
          <Pager
            total={page.total}
            limit={LIMIT}
            offset={offset}
            onOffset={setOffset}
            shown={page.items.length}
            hasMore={page.more}
            testId="events-pager"
          />
        </>
      )}
    </div>
  );
}

function Deliveries({ items, detailed = false }: { items: Delivery[]; detailed?: boolean }) {
  if (items.length === 0) return <span className="muted small">no trigger</span>;
  return (
    <table className="deliveries">
      <tbody>
        {items.map((d) => (
          <tr key={d.id} data-testid="delivery" data-id={d.id} data-trigger={d.trigger} data-state={d.state}>
            <td>
              <a href={href("triggers", d.trigger)}>{d.trigger}</a>
            </td>
            <td>
              <StateBadge state={d.state} testId="delivery-state" />
            </td>
            <td className="small muted" data-testid="delivery-attempts" title="attempts">
              {d.attempts} {d.attempts === 1 ? "attempt" : "attempts"}
            </td>
            <td>
              {d.run_id ? (
                <a href={href("runs", d.run_id)} data-testid="delivery-run-link" className="mono small">
                  run {d.run_id}
                </a>
              ) : d.state === "approval" ? (
                <a href={href("approvals")} className="small">
                  waiting for approval
                </a>
              ) : null}
              {d.approved_by && <div className="muted small">approved by {d.approved_by}</div>}
              {detailed && d.next_attempt_at && !SETTLED.has(d.state) && d.state !== "approval" && (
                <div className="muted small">next attempt {when(d.next_attempt_at)}</div>
              )}
            </td>
            {d.error ? (
              <td className="bad small delivery-error" data-testid="delivery-error">
                {d.error}
              </td>
            ) : (
              <td />
            )}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export function EventDetail({ id }: { id: string }) {
  const { report } = useErrors();
  const [event, setEvent] = useState<TwinEvent | null>(null);
  const [missing, setMissing] = useState(false);

  const load = useCallback(
    (quiet = false) =>
      api
        .event(id)
        .then((e) => {
          setEvent(e);
          setMissing(false);
        })
        .catch((err) => {
          if (!quiet) {
            setMissing(true);
            report(err);
          }
        }),
    [id, report],
  );
  useEffect(() => {
    setEvent(null);
    load();
  }, [load]);
  const settled = event ? event.deliveries.every((d) => SETTLED.has(d.state)) : false;
  useInterval(() => load(true), settled ? null : REFRESH_MS);
  useEventsChanged(() => load(true));
  const { busy, retry } = useRetry(() => load(true));

  if (!event) return <p className="muted">{missing ? "No such event." : "Loading…"}</p>;
  const body = event.body ?? {};
  const data = (body as { data?: unknown }).data;
  return (
    <div data-testid="event-detail" data-id={event.id}>
      <div className="page-head">
        <div>
          <a href={href("events")} className="small">
            ← Events
          </a>
          <h1 data-testid="event-key">{event.key || event.id}</h1>
          <div className="meta">
            <span className="mono">{event.id}</span> · source{" "}
            <a href={`${href("events")}?source=${encodeURIComponent(event.source)}&project=${encodeURIComponent(event.project)}`}>{event.source}</a> · {event.kind} ·
            project {event.project} · received {when(event.received_at)}
            {event.version ? (
              <>
                {" "}
                · version <span className="mono small">{event.version.slice(0, 16)}</span>
              </>
            ) : null}
          </div>
        </div>
        <div className="actions">
          <button
            className="secondary"
            disabled={busy !== null || !event.deliveries.some((d) => RETRYABLE.has(d.state))}
            onClick={() => retry(event.id)}
            data-testid="event-detail-retry"
            title="send its dead or retrying deliveries again now"
          >
            Retry
          </button>
          <button className="secondary" onClick={() => navigate(href("events"))}>
            Back
          </button>
        </div>
      </div>
      <h2>Deliveries</h2>
      <Deliveries items={event.deliveries} detailed />
      {data !== undefined && data !== null && (
        <>
          <h2>Data</h2>
          <pre className="preview-text" data-testid="event-data">
            {typeof data === "string" ? data : JSON.stringify(data, null, 2)}
          </pre>
        </>
      )}
      <h2>Body</h2>
      <pre className="preview-text" data-testid="event-body">
        {JSON.stringify(body, null, 2)}
      </pre>
    </div>
  );
}
