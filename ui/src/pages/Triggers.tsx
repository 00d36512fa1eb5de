// Triggers: source → workflow, paused or active, pause/resume/delete, and a YAML form to
// add one (docs/events.md); TriggerDetail: the stored definition and condition state.

import { useCallback, useEffect, useState } from "react";
import { api, type Trigger } from "../api";
import { useErrors } from "../errors";
import { when } from "../format";
import { useInterval, usePolled } from "../live";
import { href, navigate } from "../router";
import { toYaml } from "../yaml";
import { YamlForm } from "../components/YamlForm";
import { PauseDeleteButtons, usePauseDelete } from "../components/PauseDelete";

export const TRIGGER_EXAMPLE = `# A trigger starts a registered workflow for each event of a source (docs/events.md).
name: new-gauge-file
source: incoming              # a source's name, or "runs" (an event per run that ends)
workflow: hello-twin          # registered workflow: name (latest version) or id
inputs:                       # workflow input -> value; "$…" is taken from the event
  data: $file                 # the object as a CWL File
  label: $key                 # also $kind $version $size $source $location $time,
                              # $data.a.b (message payload), $metadata.x, $result.x …
filter:                       # all optional; every given test must pass
  key: "*.csv"                # glob on the event key (or key_regex: …)
  # kinds: [created]
  # min_size: 1
  # metadata: {station: "A*"}
approval: false               # true: a person approves each run (Approvals page)
# function: clean-csv         # optional pre-processing function; its result is $result
# concurrency: 2              # at most 2 of its runs at once (0: no limit)
# batch: {size: 10, seconds: 30}   # one run per 10 events or 30 s: $files $events $keys
# retries: {attempts: 5, backoff: 2.0, max_delay: 300}
# condition:
#   threshold: {value: $data.level, above: 4.5}
#   drift: {value: $data.level, test: ks, reference: 200, window: 100, p_value: 0.01}
`;

function useTriggerActions(reload: () => void) {
  return usePauseDelete("trigger", api.pauseTrigger, api.deleteTrigger, reload);
}

export function Triggers() {
  const [items, load] = usePolled(api.triggers, 10_000);
  const { busy, act } = useTriggerActions(() => load(true));

  return (
    <div data-testid="triggers-page">
      <div className="page-head">
        <h1>Triggers</h1>
        <a href={href("sources")}>Sources →</a>
      </div>
      <YamlForm
        title="New trigger"
        example={TRIGGER_EXAMPLE}
        testId="trigger-form"
        submitLabel="Add trigger"
        onSubmit={async (yaml, replace) => {
          await api.addTrigger(yaml, replace);
          await load(true);
        }}
      />
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="triggers-empty">
          No triggers yet: add one above (a source must exist first).
        </p>
      ) : (
        <table className="table" data-testid="triggers-table">
          <thead>
            <tr>
              <th>Trigger</th>
              <th>Source → workflow</th>
              <th>Options</th>
              <th>State</th>
              <th>Project</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {items.map((t) => (
              <tr key={`${t.project}/${t.name}`} data-testid="trigger-row" data-name={t.name} data-paused={t.paused ? "true" : "false"}>
                <td>
                  <a href={`${href("triggers", t.name)}?project=${encodeURIComponent(t.project)}`} data-testid="trigger-link">
                    {t.name}
                  </a>
                </td>
                <td>
                  <a href={`${href("events")}?source=${encodeURIComponent(t.source)}`}>{t.source}</a> →{" "}
                  <strong>{String(t.definition.workflow ?? "?")}</strong>
                </td>
                <td className="small">{options(t).join(" · ")}</td>
                <td>
                  <span className={`badge state-${t.paused ? "paused" : "active"}`} data-testid="trigger-state">
                    {t.paused ? "paused" : "active"}
                  </span>
                </td>
                <td>{t.project}</td>
                <td>
                  <div className="actions">
                    <PauseDeleteButtons
                      paused={t.paused}
                      disabled={busy !== null}
                      onToggle={() => act(t.name, t.paused ? "resume" : "pause", t.project)}
                      onDelete={() => act(t.name, "delete", t.project)}
                      toggleTestId={t.paused ? "trigger-resume" : "trigger-pause"}
                      deleteTestId="trigger-delete"
                    />
                  </div>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** The condition state with long windows summarised (drift keeps hundreds of values). */
function stateText(state: Record<string, unknown>): string {
  return JSON.stringify(
    state,
    (_key, value: unknown) => {
      if (!Array.isArray(value) || value.length <= 12) return value;
      const nums = value.filter((v): v is number => typeof v === "number");
      const stats =
        nums.length === value.length && nums.length
          ? `, min ${Math.min(...nums)}, max ${Math.max(...nums)}, mean ${(nums.reduce((a, b) => a + b, 0) / nums.length).toPrecision(4)}`
          : "";
      return `${value.length} values${stats}; last: ${value.slice(-5).map((v) => JSON.stringify(v)).join(", ")}`;
    },
    2,
  );
}

function options(t: Trigger): string[] {
  const d = t.definition as Record<string, unknown>;
  const out: string[] = [];
  if (d.approval) out.push("approval");
  if (d.function) out.push(`function ${String(d.function)}`);
  if (d.batch) out.push("batch");
  if (d.condition) out.push(`condition: ${Object.keys(d.condition as object).join(", ")}`);
  if (typeof d.concurrency === "number" && d.concurrency > 0) out.push(`≤ ${d.concurrency} at once`);
  const filter = d.filter as Record<string, unknown> | undefined;
  if (filter && Object.keys(filter).length) out.push(`filter: ${Object.keys(filter).join(", ")}`);
  return out;
}

export function TriggerDetail({ name, project }: { name: string; project?: string }) {
  const { report } = useErrors();
  const [trigger, setTrigger] = useState<Trigger | null>(null);
  const [missing, setMissing] = useState(false);
  const load = useCallback(
    (quiet = false) =>
      api
        .trigger(name, project)
        .then(setTrigger)
        .catch((err) => {
          if (!quiet) {
            setMissing(true);
            report(err);
          }
        }),
    [name, project, report],
  );
  useEffect(() => {
    setTrigger(null);
    load();
  }, [load]);
  useInterval(() => load(true), 5000);
  const { busy, act } = useTriggerActions(() => load(true));

  if (!trigger) return <p className="muted">{missing ? "No such trigger." : "Loading…"}</p>;
  const state = trigger.state ?? {};
  return (
    <div data-testid="trigger-detail" data-name={trigger.name}>
      <div className="page-head">
        <div>
          <a href={href("triggers")} className="small">
            ← Triggers
          </a>
          <h1 data-testid="trigger-name">{trigger.name}</h1>
          <div className="meta">
            {trigger.source} → {String(trigger.definition.workflow ?? "?")} · project {trigger.project} ·{" "}
            <span className={`badge state-${trigger.paused ? "paused" : "active"}`} data-testid="trigger-detail-state">
              {trigger.paused ? "paused" : "active"}
            </span>{" "}
            · created {when(trigger.created_at)}
            {trigger.created_by ? ` by ${trigger.created_by}` : ""} · updated {when(trigger.updated_at)}
          </div>
        </div>
        <div className="actions">
          <a href={`${href("events")}?source=${encodeURIComponent(trigger.source)}`}>Events of {trigger.source}</a>
          <PauseDeleteButtons
            paused={trigger.paused}
            disabled={busy !== null}
            onToggle={() => act(trigger.name, trigger.paused ? "resume" : "pause", trigger.project)}
            onDelete={async () => {
              if (await act(trigger.name, "delete", trigger.project)) navigate(href("triggers"));
            }}
            toggleTestId="trigger-detail-toggle"
            deleteTestId="trigger-detail-delete"
            small={false}
          />
        </div>
      </div>
      <div className="columns">
        <div>
          <h2>Definition</h2>
          <pre className="preview-text" data-testid="trigger-definition">
            {toYaml(trigger.definition)}
          </pre>
        </div>
        <div>
          <h2>Condition state</h2>
          {Object.keys(state).length === 0 ? (
            <p className="muted" data-testid="trigger-condition-state">
              {trigger.definition.condition ? "No values seen yet." : "No condition: every event that passes the filter fires."}
            </p>
          ) : (
            <pre className="preview-text" data-testid="trigger-condition-state">
              {stateText(state)}
            </pre>
          )}
        </div>
      </div>
    </div>
  );
}
