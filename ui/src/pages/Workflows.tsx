// Registered workflows: list, search, pagination and upload (CWL file or archive).

import { useCallback, useEffect, useState, type FormEvent } from "react";
import { api, type Page, type Workflow } from "../api";
import { useErrors } from "../errors";
import { when } from "../format";
import { href, navigate } from "../router";
import { Pager } from "../components/Pager";
import { ProjectSelect } from "../components/ProjectSelect";

const LIMIT = 25;

export function Workflows() {
  const { report } = useErrors();
  const [page, setPage] = useState<Page<Workflow> | null>(null);
  const [offset, setOffset] = useState(0);
  const [q, setQ] = useState("");
  const [query, setQuery] = useState("");

  const load = useCallback(() => {
    api
      .workflows({ q: query, limit: LIMIT, offset })
      .then(setPage)
      .catch(report);
  }, [query, offset, report]);

  useEffect(load, [load]);

  return (
    <div>
      <div className="page-head">
        <h1>Workflows</h1>
        <form
          className="inline"
          onSubmit={(e) => {
            e.preventDefault();
            setOffset(0);
            setQuery(q);
          }}
        >
          <input placeholder="search" value={q} onChange={(e) => setQ(e.target.value)} data-testid="workflow-search" />
          <button className="secondary" type="submit">
            Search
          </button>
        </form>
      </div>
      <UploadForm onUploaded={(wf) => navigate(href("workflows", wf.id))} />
      {!page ? (
        <p className="muted">Loading…</p>
      ) : page.items.length === 0 ? (
        <p className="muted" data-testid="workflows-empty">
          No workflows yet: upload a CWL file above or build one in the Composer.
        </p>
      ) : (
        <>
          <table className="table" data-testid="workflows-table">
            <thead>
              <tr>
                <th>Name</th>
                <th>Version</th>
                <th>Class</th>
                <th>Project</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {page.items.map((wf) => (
                <tr key={wf.id} data-testid="workflow-row" data-id={wf.id} data-name={wf.name}>
                  <td>
                    <a href={href("workflows", wf.id)} data-testid="workflow-link">
                      {wf.name}
                    </a>
                    {wf.label && wf.label !== wf.name && <span className="muted"> — {wf.label}</span>}
                  </td>
                  <td>{wf.version}</td>
                  <td>{wf.class}</td>
                  <td>{wf.project}</td>
                  <td>{when(wf.created_at)}</td>
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

function UploadForm({ onUploaded }: { onUploaded: (wf: Workflow) => void }) {
  const { report } = useErrors();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [main, setMain] = useState("");
  const [project, setProject] = useState("");
  const [description, setDescription] = useState("");
  const [busy, setBusy] = useState(false);
  const isArchive = file ? /\.(zip|tar\.gz|tgz|tar)$/i.test(file.name) : false;

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    if (name.trim()) form.append("name", name.trim());
    if (project) form.append("project", project);
    if (isArchive && main.trim()) form.append("main", main.trim());
    if (description.trim()) form.append("description", description.trim());
    setBusy(true);
    try {
      onUploaded(await api.uploadWorkflow(form));
    } catch (err) {
      report(err);
    } finally {
      setBusy(false);
    }
  };

  return (
    <details className="card" data-testid="upload-panel">
      <summary data-testid="upload-toggle">Upload a workflow</summary>
      <form className="grid-form" onSubmit={submit} data-testid="upload-form">
        <label>
          CWL file or archive (.cwl, .yml, .zip, .tar.gz)
          <input
            type="file"
            accept=".cwl,.yml,.yaml,.zip,.tar.gz,.tgz"
            onChange={(e) => setFile(e.target.files?.[0] ?? null)}
            data-testid="upload-file"
            required
          />
        </label>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} placeholder="from the file" data-testid="upload-name" />
        </label>
        {isArchive && (
          <label>
            Main file inside the archive
            <input value={main} onChange={(e) => setMain(e.target.value)} placeholder="workflow.cwl" data-testid="upload-main" />
          </label>
        )}
        <label>
          Project
          <ProjectSelect value={project} onChange={setProject} testId="upload-project" />
        </label>
        <label className="wide">
          Description
          <input value={description} onChange={(e) => setDescription(e.target.value)} data-testid="upload-description" />
        </label>
        <div className="wide">
          <button type="submit" disabled={!file || busy} data-testid="upload-submit">
            {busy ? "Uploading…" : "Upload"}
          </button>
        </div>
      </form>
    </details>
  );
}
