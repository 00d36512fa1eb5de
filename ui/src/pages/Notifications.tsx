// Notifications: the inbox (live, from the top bar's stream; older notes and the unread
// filter fetched here), mark read, and the caller's subscriptions (docs/notify.md):
// list, add (ui / webhook / email / apprise), delete, send a test.

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, CHANNELS, errorText, type Note, type Subscription } from "../api";
import { useSession } from "../auth";
import { useErrors } from "../errors";
import { when } from "../format";
import { useLive } from "../live";
import { NoteItem } from "../components/NoteItem";

const PAGE = 50;

export function Notifications() {
  const { report } = useErrors();
  const live = useLive();
  const [unreadOnly, setUnreadOnly] = useState(false);
  const [limit, setLimit] = useState(PAGE);
  const [items, setItems] = useState<Note[] | null>(null);

  const load = useCallback(
    () =>
      api
        .notifications({ unread: unreadOnly || undefined, limit })
        .then((p) => setItems(p.items))
        .catch(report),
    [unreadOnly, limit, report],
  );
  // reload whenever the live inbox changes (a new note, a read mark)
  useEffect(() => {
    load();
  }, [load, live.notes, live.unread]);

  return (
    <div data-testid="notifications-page">
      <div className="page-head">
        <h1>Notifications</h1>
        <div className="inline">
          <span className={`live-mode ${live.mode}`} data-testid="notif-live-mode">
            {live.mode === "live" ? "● live" : live.mode}
          </span>
          <span className="muted" data-testid="notif-unread-total">
            {live.unread} unread
          </span>
          <label className="check">
            <input
              type="checkbox"
              checked={unreadOnly}
              onChange={(e) => setUnreadOnly(e.target.checked)}
              data-testid="notif-unread-only"
            />
            unread only
          </label>
          <button
            className="secondary"
            disabled={live.unread === 0}
            onClick={() => void live.markRead("all")}
            data-testid="notif-page-mark-all"
          >
            Mark all read
          </button>
        </div>
      </div>
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="inbox-empty">
          {unreadOnly ? "Nothing unread." : "No notifications yet."}
        </p>
      ) : (
        <div className="inbox card" data-testid="inbox">
          {items.map((n) => (
            <NoteItem key={n.id} note={n} />
          ))}
          {items.length >= limit && (
            <button className="link" onClick={() => setLimit((l) => l + PAGE)} data-testid="inbox-more">
              Older notifications…
            </button>
          )}
        </div>
      )}
      <Subscriptions />
    </div>
  );
}

function Subscriptions() {
  const { report } = useErrors();
  const [items, setItems] = useState<Subscription[] | null>(null);
  const [tests, setTests] = useState<Record<string, { ok: boolean; text: string }>>({});
  const [busy, setBusy] = useState<string | null>(null);

  const load = useCallback(
    () =>
      api
        .subscriptions()
        .then((s) => setItems(s.items))
        .catch(report),
    [report],
  );
  useEffect(() => {
    load();
  }, [load]);

  const test = async (s: Subscription) => {
    setBusy(s.id);
    try {
      const result = await api.testSubscription(s.id);
      setTests((t) => ({ ...t, [s.id]: { ok: true, text: `sent (${result.channel}${result.target ? ` → ${result.target}` : ""})` } }));
    } catch (err) {
      const { message, hint } = errorText(err);
      setTests((t) => ({ ...t, [s.id]: { ok: false, text: hint ? `${message} (${hint})` : message } }));
    } finally {
      setBusy(null);
    }
  };

  const remove = async (s: Subscription) => {
    if (!window.confirm(`Delete the ${s.channel} subscription${s.target ? ` to ${s.target}` : ""}?`)) return;
    setBusy(s.id);
    try {
      await api.unsubscribe(s.id);
    } catch (err) {
      report(err);
    } finally {
      setBusy(null);
      load();
    }
  };

  return (
    <section data-testid="subscriptions">
      <h2>Subscriptions</h2>
      <p className="muted small">
        Where your notifications go besides this inbox. A subscription without a project covers all of yours, without
        a trigger any trigger, without kinds every kind.
      </p>
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="subscriptions-empty">
          No subscriptions.
        </p>
      ) : (
        <table className="table" data-testid="subscriptions-table">
          <thead>
            <tr>
              <th>Channel</th>
              <th>Target</th>
              <th>Project</th>
              <th>Trigger</th>
              <th>Kinds</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((s) => (
              <tr key={s.id} data-testid="subscription-row" data-id={s.id} data-channel={s.channel}>
                <td>
                  {s.channel}
                  {!s.active && <span className="muted small"> (inactive)</span>}
                </td>
                <td className="mono small">{s.target ?? "—"}</td>
                <td>{s.project ?? "all"}</td>
                <td>{s.trigger ?? "any"}</td>
                <td className="small">{s.kinds.length ? s.kinds.join(", ") : "all"}</td>
                <td>{when(s.created_at)}</td>
                <td>
                  <div className="actions">
                    <button
                      className="secondary small"
                      disabled={busy !== null}
                      onClick={() => test(s)}
                      data-testid="subscription-test"
                    >
                      {busy === s.id ? "…" : "Send test"}
                    </button>
                    <button
                      className="danger small"
                      disabled={busy !== null}
                      onClick={() => remove(s)}
                      data-testid="subscription-delete"
                    >
                      Delete
                    </button>
                  </div>
                  {tests[s.id] && (
                    <div
                      className={`small ${tests[s.id].ok ? "ok" : "bad"}`}
                      data-testid="subscription-test-result"
                      data-ok={tests[s.id].ok ? "true" : "false"}
                    >
                      {tests[s.id].ok ? "✓ " : "✗ "}
                      {tests[s.id].text}
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <SubscribeForm onAdded={load} />
    </section>
  );
}

const TARGET_HINT: Record<string, string> = {
  ui: "no target: the notes stay in this inbox",
  webhook: "https://hooks.example.org/twin#secret=…",
  email: "alice@example.org",
  apprise: "mmost://chat.example.org/HOOK-TOKEN",
};

function SubscribeForm({ onAdded }: { onAdded: () => void }) {
  const { me } = useSession();
  const [channel, setChannel] = useState<string>("webhook");
  const [target, setTarget] = useState("");
  const [project, setProject] = useState("");
  const [trigger, setTrigger] = useState("");
  const [kinds, setKinds] = useState("");
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<{ message: string; hint: string | null } | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setProblem(null);
    try {
      await api.subscribe({
        channel,
        target: channel === "ui" ? null : target.trim() || null,
        project: project || null,
        trigger: trigger.trim() || null,
        kinds: kinds
          .split(/[\s,]+/)
          .map((k) => k.trim())
          .filter(Boolean),
      });
      setTarget("");
      setTrigger("");
      setKinds("");
      onAdded();
    } catch (err) {
      setProblem(errorText(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="card" data-testid="subscribe-panel">
      <summary data-testid="subscribe-toggle">Add a subscription</summary>
      <form className="grid-form" onSubmit={submit} data-testid="subscribe-form">
        <label>
          Channel
          <select value={channel} onChange={(e) => setChannel(e.target.value)} data-testid="subscribe-channel">
            {CHANNELS.map((c) => (
              <option key={c} value={c}>
                {c}
              </option>
            ))}
          </select>
        </label>
        <label className="wide-2">
          Target
          <input
            value={channel === "ui" ? "" : target}
            onChange={(e) => setTarget(e.target.value)}
            disabled={channel === "ui"}
            placeholder={TARGET_HINT[channel] ?? ""}
            data-testid="subscribe-target"
          />
        </label>
        <label>
          Project
          <select value={project} onChange={(e) => setProject(e.target.value)} data-testid="subscribe-project">
            <option value="">all of mine</option>
            {me.projects.map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Trigger (optional)
          <input value={trigger} onChange={(e) => setTrigger(e.target.value)} placeholder="any" data-testid="subscribe-trigger" />
        </label>
        <label>
          Kinds (optional, comma-separated)
          <input
            value={kinds}
            onChange={(e) => setKinds(e.target.value)}
            placeholder="run_failed, approval_needed, drift …"
            data-testid="subscribe-kinds"
          />
        </label>
        {problem && (
          <div className="wide form-problem" data-testid="subscribe-error" role="alert">
            {problem.message}
            {problem.hint && <div className="small">Hint: {problem.hint}</div>}
          </div>
        )}
        <div className="wide">
          <button type="submit" disabled={busy} data-testid="subscribe-submit">
            {busy ? "Subscribing…" : "Subscribe"}
          </button>
        </div>
      </form>
    </details>
  );
}
