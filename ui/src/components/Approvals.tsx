// Deliveries waiting for a person: approve (the run is queued) or reject (skipped).
// The list is the one the top bar keeps live (useLive), so badge and list always agree.

import { useState } from "react";
import { api } from "../api";
import { useErrors } from "../errors";
import { ago, when } from "../format";
import { useLive } from "../live";
import { href } from "../router";

export function ApprovalsPanel({ compact = false }: { compact?: boolean }) {
  const { report } = useErrors();
  const { approvals, refreshApprovals } = useLive();
  const [busy, setBusy] = useState<string | null>(null);

  const decide = async (id: string, approve: boolean) => {
    setBusy(id);
    try {
      await api.decide(id, approve);
    } catch (err) {
      report(err);
    } finally {
      setBusy(null);
      await refreshApprovals();
      window.dispatchEvent(new Event("twin:events-changed"));
    }
  };

  if (approvals === null) return compact ? null : <p className="muted">Loading…</p>;
  if (approvals.length === 0) {
    return compact ? null : (
      <p className="muted" data-testid="approvals-empty">
        No run waits for approval.
      </p>
    );
  }
  return (
    <div className={compact ? "card approvals compact" : "approvals"} data-testid="approvals-panel">
      {compact && <h3>Waiting for approval ({approvals.length})</h3>}
      <table className="table compact" data-testid="approvals-table">
        <thead>
          <tr>
            <th>Event</th>
            <th>Trigger</th>
            <th>Project</th>
            <th>Waiting since</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {approvals.map((d) => (
            <tr key={d.id} data-testid="approval-row" data-id={d.id} data-trigger={d.trigger} data-key={d.key}>
              <td>
                <a href={href("events", d.event_id)} data-testid="approval-event-link">
                  {d.key ?? d.event_id}
                </a>
                <div className="mono muted small">{d.event_id}</div>
              </td>
              <td>
                <a href={href("triggers", d.trigger)}>{d.trigger}</a>
              </td>
              <td>{d.project ?? ""}</td>
              <td title={when(d.created_at)}>{ago(d.created_at)}</td>
              <td>
                <div className="actions">
                  <button disabled={busy !== null} onClick={() => decide(d.id, true)} data-testid="approval-approve">
                    Approve
                  </button>
                  <button
                    className="danger"
                    disabled={busy !== null}
                    onClick={() => decide(d.id, false)}
                    data-testid="approval-reject"
                  >
                    Reject
                  </button>
                </div>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
