// Event sources: kind, project, status (ok / retrying / down / paused / passive) with the
// last error, pause/resume/delete, and a YAML form to add one (docs/events-sources.md).

import { useState } from "react";
import { api } from "../api";
import { ago, when } from "../format";
import { usePolled } from "../live";
import { href } from "../router";
import { toYaml } from "../yaml";
import { StateBadge } from "../components/StateBadge";
import { YamlForm } from "../components/YamlForm";
import { PauseDeleteButtons, usePauseDelete } from "../components/PauseDelete";

export const SOURCE_EXAMPLE = `# An event source watches one peer and turns what is new into events
# (docs/events-sources.md): a name, a kind and the kind's settings.
name: incoming
kind: webhook           # folder, s3, dcache, webdav, webhook, cron, nats, mqtt, redis, kafka
# webhook: events are POSTed to /api/v1/events/<name> (a JSON object or a list)
# key_field: key        # which field of a JSON item is the event's key
# secret: ...           # optional: require X-Twin-Signature
#
# kind: folder
# path: /data/incoming  # required
# pattern: "*.csv"
# mode: auto            # auto | inotify | poll
#
# kind: cron
# every: 300            # seconds (or schedule: "0 2 * * *")
`;

const SECRET = /secret|password|token|access_key|credentials/i;

/** Settings as shown: secrets (passwords, tokens, keys) masked. */
function masked(config: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).map(([k, v]) => [k, SECRET.test(k) && v ? "***" : v]));
}

export function Sources() {
  const [open, setOpen] = useState<string | null>(null);
  const [items, load] = usePolled(api.sources, 5000);
  const { busy, act } = usePauseDelete("source", api.pauseSource, api.deleteSource, () => load(true));


  return (
    <div data-testid="sources-page">
      <div className="page-head">
        <h1>Sources</h1>
        <a href={href("triggers")}>Triggers →</a>
      </div>
      <YamlForm
        title="New source"
        example={SOURCE_EXAMPLE}
        testId="source-form"
        submitLabel="Add source"
        onSubmit={async (yaml, replace) => {
          await api.addSource(yaml, replace);
          await load(true);
        }}
      />
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="sources-empty">
          No sources yet: add one above.
        </p>
      ) : (
        <table className="table" data-testid="sources-table">
          <thead>
            <tr>
              <th>Source</th>
              <th>Kind</th>
              <th>Project</th>
              <th>Status</th>
              <th>Last error</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((s) => {
              const status = s.paused ? "paused" : s.status || "new";
              return (
                <tr key={`${s.project}/${s.name}`} data-testid="source-row" data-name={s.name} data-status={status}>
                  <td>
                    <button className="link" onClick={() => setOpen(open === s.name ? null : s.name)} data-testid="source-link">
                      {s.name}
                    </button>
                    {s.kind === "webhook" && (
                      <div className="muted small mono">POST /api/v1/events/{s.name}?project={s.project}</div>
                    )}
                    {open === s.name && (
                      <pre className="preview-text small" data-testid="source-config">
                        {toYaml({ name: s.name, kind: s.kind, ...masked(s.config ?? {}) })}
                      </pre>
                    )}
                  </td>
                  <td>{s.kind}</td>
                  <td>{s.project}</td>
                  <td title={s.status_at ? `since ${when(s.status_at)}` : undefined}>
                    <StateBadge state={status} testId="source-status" />
                    {s.status_at && <div className="muted small">{ago(s.status_at)}</div>}
                  </td>
                  <td className="bad small" data-testid="source-error">
                    {s.error ?? ""}
                  </td>
                  <td>
                    <div className="actions">
                      <a href={`${href("events")}?source=${encodeURIComponent(s.name)}&project=${encodeURIComponent(s.project)}`} className="small">
                        events
                      </a>
                      <PauseDeleteButtons
                        paused={s.paused}
                        disabled={busy !== null}
                        onToggle={() => act(s.name, s.paused ? "resume" : "pause", s.project)}
                        onDelete={() => act(s.name, "delete", s.project)}
                        toggleTestId={s.paused ? "source-resume" : "source-pause"}
                        deleteTestId="source-delete"
                      />
                    </div>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </div>
  );
}
