// The model registry (docs/api.md#models): the registered models of the caller's projects
// with their aliases; a model's versions, promotion to production or staging, rollback
// (the editor role in the model's project), and the history.

import { useCallback, useEffect, useState } from "react";
import { api, type ModelDetail, type ModelSummary } from "../api";
import { useErrors } from "../errors";
import { ago, when } from "../format";
import { href } from "../router";
import { useAction } from "../components/PauseDelete";
import { useSession } from "../auth";

const EDITORS = new Set(["editor", "owner"]);

function Aliases({ aliases }: { aliases: Record<string, number> | string[] }) {
  const names = Array.isArray(aliases) ? aliases : Object.entries(aliases).map(([a, v]) => `${a}=v${v}`);
  if (names.length === 0) return <span className="muted">—</span>;
  return (
    <>
      {names.map((name) => (
        <span key={name} className={`badge alias-${name.split("=")[0]}`} data-testid="alias">
          {name}
        </span>
      ))}
    </>
  );
}

export function Models({ selected }: { selected: string | null }) {
  return selected ? <ModelPage name={selected} /> : <ModelList />;
}

function ModelList() {
  const { report } = useErrors();
  const [items, setItems] = useState<ModelSummary[] | null>(null);

  useEffect(() => {
    api.models().then(setItems).catch(report);
  }, [report]);

  return (
    <div data-testid="models-page">
      <div className="page-head">
        <h1>Models</h1>
        <span className="muted small">
          train with <code>twin train</code>, register with <code>twin models register</code> or the ai-register
          step
        </span>
      </div>
      {!items ? (
        <p className="muted">Loading…</p>
      ) : items.length === 0 ? (
        <p className="muted" data-testid="models-empty">
          No registered models yet.
        </p>
      ) : (
        <table className="table" data-testid="models-table">
          <thead>
            <tr>
              <th>Model</th>
              <th>Project</th>
              <th>Versions</th>
              <th>Aliases</th>
              <th>Description</th>
            </tr>
          </thead>
          <tbody>
            {items.map((m) => (
              <tr key={m.name} data-testid="model-row" data-name={m.name} data-project={m.project ?? ""}>
                <td>
                  <a href={href("models", m.name)} data-testid="model-link">
                    {m.name}
                  </a>
                </td>
                <td data-testid="model-project">{m.project ?? <span className="muted">(none: admins only)</span>}</td>
                <td>
                  {m.versions} (latest v{m.latest ?? "—"})
                </td>
                <td>
                  <Aliases aliases={m.aliases} />
                </td>
                <td className="muted">{m.description}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function ModelPage({ name }: { name: string }) {
  const { report } = useErrors();
  const { me } = useSession();
  const [model, setModel] = useState<ModelDetail | null>(null);
  const load = useCallback(() => api.model(name).then(setModel).catch(report), [name, report]);
  useEffect(() => {
    load();
  }, [load]);
  const { busy: acting, run } = useAction(load);
  const busy = acting !== null;
  const act = (what: () => Promise<unknown>) => run(name, what);

  if (!model) return <p className="muted">Loading…</p>;
  const history = [...model.promotions].reverse();
  // promoting and rolling back need the editor role in the model's project (admins: any)
  const role = me.projects.find((p) => p.name === model.project)?.role;
  const mayChange = (me.user.admin && me.token.scopes.includes("admin")) || EDITORS.has(role ?? "");
  const locked = busy || !mayChange;
  return (
    <div data-testid="model-page" data-name={model.name}>
      <div className="page-head">
        <h1>{model.name}</h1>
        <span className="muted" data-testid="model-project">
          project {model.project ?? "(none: admins only)"}
        </span>
        <a href={href("models")}>← Models</a>
        <button
          disabled={locked || model.aliases.previous === undefined}
          onClick={() => act(() => api.rollbackModel(model.name))}
          data-testid="rollback"
          title="Make the previous version production again"
        >
          Roll back production
        </button>
      </div>
      {model.description && <p>{model.description}</p>}
      <table className="table" data-testid="versions-table">
        <thead>
          <tr>
            <th>Version</th>
            <th>Aliases</th>
            <th>Training run</th>
            <th>Registered</th>
            <th>Tags</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {[...model.versions].reverse().map((v) => (
            <tr key={v.version} data-testid="version-row" data-version={v.version}>
              <td>v{v.version}</td>
              <td>
                <Aliases aliases={v.aliases} />
              </td>
              <td className="mono small">{v.run_id ?? "—"}</td>
              <td title={when(v.created)}>{ago(v.created)}</td>
              <td className="small">
                {Object.entries(v.tags)
                  .map(([k, val]) => `${k}=${val}`)
                  .join(" ")}
              </td>
              <td>
                <button
                  disabled={locked || v.aliases.includes("production")}
                  onClick={() => act(() => api.promoteModel(model.name, v.version, "production"))}
                  data-testid="promote-production"
                >
                  Production
                </button>{" "}
                <button
                  disabled={locked || v.aliases.includes("staging")}
                  onClick={() => act(() => api.promoteModel(model.name, v.version, "staging"))}
                  data-testid="promote-staging"
                >
                  Staging
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <h2>Promotion history</h2>
      {history.length === 0 ? (
        <p className="muted">Never promoted.</p>
      ) : (
        <ul data-testid="promotions">
          {history.map((h, i) => (
            <li key={i} data-testid="promotion">
              <span title={when(h.when)}>{ago(h.when)}</span> — {h.who}: {h.action} {h.alias}{" "}
              {h.from === null ? "" : `v${h.from} → `}v{h.to}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}
