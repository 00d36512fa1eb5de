// Runs waiting for a person: the triggers with `approval: true` (docs/events.md).

import { useLive } from "../live";
import { ApprovalsPanel } from "../components/Approvals";

export function Approvals() {
  const { approvals } = useLive();
  return (
    <div data-testid="approvals-page">
      <div className="page-head">
        <h1>Approvals</h1>
        <span className="muted">{approvals ? `${approvals.length} waiting` : ""}</span>
      </div>
      <p className="muted small">
        A trigger with <code>approval: true</code> waits here before each run: approve queues the run, reject skips
        the event.
      </p>
      <ApprovalsPanel />
    </div>
  );
}
