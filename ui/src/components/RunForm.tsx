// The Run form of a workflow, generated from its inputs: text/number/checkbox fields,
// File inputs uploaded to /api/v1/uploads first, JSON for anything else; defaults are
// prefilled; an empty optional/defaulted field is left out so the CWL default applies.

import { useMemo, useState, type FormEvent } from "react";
import { api, ApiError, type Port, type Run, type Workflow } from "../api";
import { useErrors } from "../errors";

type Kind = "string" | "int" | "float" | "boolean" | "File" | "File[]" | "json";

interface Field {
  port: Port;
  kind: Kind;
  optional: boolean;
  hasDefault: boolean;
}

export function fieldKind(type: string): { kind: Kind; optional: boolean } {
  let t = (type || "").trim();
  let optional = false;
  if (t.endsWith("?")) {
    optional = true;
    t = t.slice(0, -1);
  }
  if (t.startsWith("null|") || t.endsWith("|null")) {
    optional = true;
    t = t.replace(/^null\|/, "").replace(/\|null$/, "");
  }
  switch (t) {
    case "string":
      return { kind: "string", optional };
    case "int":
    case "long":
      return { kind: "int", optional };
    case "float":
    case "double":
      return { kind: "float", optional };
    case "boolean":
      return { kind: "boolean", optional };
    case "File":
      return { kind: "File", optional };
    case "File[]":
      return { kind: "File[]", optional };
    default:
      return { kind: "json", optional };
  }
}

function initialText(field: Field): string {
  const d = field.port.default;
  if (d === undefined || d === null) return "";
  if (field.kind === "json") return JSON.stringify(d);
  if (field.kind === "File" || field.kind === "File[]") return "";
  return String(d);
}

function defaultLabel(value: unknown): string {
  if (value && typeof value === "object" && "class" in value) {
    const v = value as { basename?: string; location?: string; path?: string };
    return v.basename ?? v.location ?? v.path ?? "a file";
  }
  return JSON.stringify(value);
}

export function RunForm({ workflow, onStarted }: { workflow: Workflow; onStarted: (run: Run) => void }) {
  const { report } = useErrors();
  const fields: Field[] = useMemo(
    () =>
      workflow.inputs.map((port) => {
        const { kind, optional } = fieldKind(port.type);
        return {
          port,
          kind,
          optional: optional || Boolean(port.optional),
          hasDefault: port.default !== undefined && port.default !== null,
        };
      }),
    [workflow],
  );
  const [texts, setTexts] = useState<Record<string, string>>(() =>
    Object.fromEntries(fields.map((f) => [f.port.id, initialText(f)])),
  );
  const [bools, setBools] = useState<Record<string, boolean>>(() =>
    Object.fromEntries(fields.filter((f) => f.kind === "boolean").map((f) => [f.port.id, f.port.default === true])),
  );
  const [files, setFiles] = useState<Record<string, File[]>>({});
  const [runName, setRunName] = useState("");
  const [cache, setCache] = useState(false);
  const [busy, setBusy] = useState(false);
  const [problem, setProblem] = useState<string | null>(null);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setProblem(null);
    const inputs: Record<string, unknown> = {};
    try {
      for (const f of fields) {
        const id = f.port.id;
        const text = (texts[id] ?? "").trim();
        const skippable = f.optional || f.hasDefault;
        switch (f.kind) {
          case "boolean":
            inputs[id] = bools[id] ?? false;
            break;
          case "File":
          case "File[]": {
            const chosen = files[id] ?? [];
            if (chosen.length === 0) {
              if (!skippable) throw new Error(`choose a file for "${id}"`);
              break;
            }
            setBusy(true);
            const uploaded = [];
            for (const file of chosen) {
              const up = await api.upload(file, workflow.project);
              uploaded.push({ class: "File", location: up.location });
            }
            inputs[id] = f.kind === "File" ? uploaded[0] : uploaded;
            break;
          }
          default: {
            if (text === "") {
              if (!skippable && f.kind !== "string") throw new Error(`"${id}" needs a value`);
              if (!skippable) inputs[id] = "";
              break;
            }
            if (f.kind === "int") {
              const n = Number(text);
              if (!Number.isInteger(n)) throw new Error(`"${id}" must be a whole number`);
              inputs[id] = n;
            } else if (f.kind === "float") {
              const n = Number(text);
              if (Number.isNaN(n)) throw new Error(`"${id}" must be a number`);
              inputs[id] = n;
            } else if (f.kind === "json") {
              try {
                inputs[id] = JSON.parse(text);
              } catch {
                throw new Error(`"${id}" must be JSON (type ${f.port.type})`);
              }
            } else {
              inputs[id] = texts[id];
            }
          }
        }
      }
    } catch (err) {
      setBusy(false);
      if (err instanceof ApiError || !(err instanceof Error)) report(err);
      else setProblem(err.message);
      return;
    }
    setBusy(true);
    try {
      const run = await api.startRun({
        workflow: workflow.id,
        inputs,
        ...(runName.trim() ? { name: runName.trim() } : {}),
        ...(cache ? { cache: true } : {}),
      });
      onStarted(run);
    } catch (err) {
      report(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <form className="run-form" onSubmit={submit} data-testid="run-form">
      {fields.length === 0 && <p className="muted">This workflow takes no inputs.</p>}
      {fields.map((f) => {
        const id = f.port.id;
        const label = (
          <span className="field-label">
            <code>{id}</code> <span className="muted">{f.port.type}</span>
            {f.port.doc && <span className="field-doc">{f.port.doc}</span>}
          </span>
        );
        if (f.kind === "boolean") {
          return (
            <label key={id} className="check">
              <input
                type="checkbox"
                checked={bools[id] ?? false}
                onChange={(e) => setBools({ ...bools, [id]: e.target.checked })}
                data-testid={`run-input-${id}`}
              />
              {label}
            </label>
          );
        }
        if (f.kind === "File" || f.kind === "File[]") {
          return (
            <label key={id}>
              {label}
              <input
                type="file"
                multiple={f.kind === "File[]"}
                onChange={(e) => setFiles({ ...files, [id]: Array.from(e.target.files ?? []) })}
                data-testid={`run-input-${id}`}
              />
              {f.hasDefault && <span className="muted">default: {defaultLabel(f.port.default)}</span>}
            </label>
          );
        }
        return (
          <label key={id}>
            {label}
            {f.kind === "json" ? (
              <textarea
                rows={2}
                value={texts[id] ?? ""}
                onChange={(e) => setTexts({ ...texts, [id]: e.target.value })}
                placeholder="JSON value"
                data-testid={`run-input-${id}`}
              />
            ) : (
              <input
                type={f.kind === "string" ? "text" : "number"}
                step={f.kind === "float" ? "any" : f.kind === "int" ? "1" : undefined}
                value={texts[id] ?? ""}
                onChange={(e) => setTexts({ ...texts, [id]: e.target.value })}
                placeholder={f.optional ? "optional" : ""}
                data-testid={`run-input-${id}`}
              />
            )}
          </label>
        );
      })}
      <label>
        <span className="field-label">Run name (optional)</span>
        <input value={runName} onChange={(e) => setRunName(e.target.value)} data-testid="run-name" />
      </label>
      <label className="check">
        <input type="checkbox" checked={cache} onChange={(e) => setCache(e.target.checked)} data-testid="run-cache" />
        <span className="field-label">reuse cached step results</span>
      </label>
      {problem && (
        <div className="form-problem" data-testid="run-form-problem">
          {problem}
        </div>
      )}
      <button type="submit" disabled={busy} data-testid="run-submit">
        {busy ? "Starting…" : "Run"}
      </button>
    </form>
  );
}
