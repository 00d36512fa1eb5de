// A run's CWL output object: files previewed (text), shown (images, via blob object
// URLs since <img> cannot send the token) and downloadable; other values as JSON.

import { useEffect, useState } from "react";
import { download, requestBlob } from "../api";
import { useErrors } from "../errors";
import { bytes } from "../format";

export interface CwlFile {
  class: "File" | "Directory";
  basename?: string;
  location?: string;
  path?: string;
  size?: number;
  checksum?: string;
  download?: string;
  listing?: CwlFile[];
  [key: string]: unknown;
}

export function isFile(v: unknown): v is CwlFile {
  return typeof v === "object" && v !== null && ((v as CwlFile).class === "File" || (v as CwlFile).class === "Directory");
}

/** Every File in an output object, with the output id it belongs to. */
export function filesOf(outputs: Record<string, unknown> | null | undefined): { output: string; file: CwlFile }[] {
  const found: { output: string; file: CwlFile }[] = [];
  const walk = (output: string, v: unknown) => {
    if (Array.isArray(v)) v.forEach((x) => walk(output, x));
    else if (isFile(v)) {
      if (v.class === "File") found.push({ output, file: v });
      (v.listing ?? []).forEach((x) => walk(output, x));
      for (const sf of (v.secondaryFiles as unknown[] | undefined) ?? []) walk(output, sf);
    }
  };
  for (const [k, v] of Object.entries(outputs ?? {})) walk(k, v);
  return found;
}

export function fileName(f: CwlFile): string {
  return f.basename ?? (f.location ?? f.path ?? "file").split("/").pop() ?? "file";
}

const IMAGE = /\.(png|jpe?g|gif|svg|webp|bmp)$/i;
const TEXT = /\.(txt|csv|tsv|json|jsonl|log|md|ya?ml|cwl|py|r|sh|out|err|xml|html?|ini|cfg|toml|nc\.txt)$/i;
const PREVIEW_MAX = 2 * 1024 * 1024;

function previewKind(f: CwlFile): "image" | "text" | null {
  const name = fileName(f);
  if (IMAGE.test(name)) return "image";
  if (TEXT.test(name) || (!name.includes(".") && (f.size ?? 0) < 256 * 1024)) return "text";
  return null;
}

function FilePreview({ file, testId }: { file: CwlFile; testId: string }) {
  const { report } = useErrors();
  const kind = previewKind(file);
  const [text, setText] = useState<string | null>(null);
  const [image, setImage] = useState<string | null>(null);
  const tooBig = (file.size ?? 0) > PREVIEW_MAX;
  useEffect(() => {
    if (!file.download || !kind || tooBig) return;
    let objectUrl: string | null = null;
    let live = true;
    requestBlob(file.download)
      .then(async (blob) => {
        if (!live) return;
        if (kind === "image") {
          objectUrl = URL.createObjectURL(blob);
          setImage(objectUrl);
        } else {
          const t = await blob.text();
          if (live) setText(t.length > 20000 ? `${t.slice(0, 20000)}\n… (${bytes(blob.size)} in all)` : t);
        }
      })
      .catch(report);
    return () => {
      live = false;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
    };
  }, [file.download, kind, tooBig, report]);
  if (!kind || !file.download) return null;
  if (tooBig) return <p className="muted">too large to preview</p>;
  if (kind === "image")
    return image ? <img className="preview-image" src={image} alt={fileName(file)} data-testid={`${testId}-image`} /> : null;
  return text === null ? null : (
    <pre className="preview-text" data-testid={`${testId}-text`}>
      {text}
    </pre>
  );
}

function FileCard({ file, testId }: { file: CwlFile; testId: string }) {
  const { report } = useErrors();
  return (
    <div className="file-card" data-testid={testId}>
      <div className="file-head">
        <b>{fileName(file)}</b>
        <span className="muted">{bytes(file.size)}</span>
        {file.checksum && <span className="mono muted small">{file.checksum}</span>}
        {file.download && (
          <button
            className="secondary"
            onClick={() => download(file.download!, fileName(file)).catch(report)}
            data-testid={`${testId}-download`}
          >
            Download
          </button>
        )}
      </div>
      {file.class === "File" ? (
        <FilePreview file={file} testId={testId} />
      ) : (
        <ul>
          {(file.listing ?? []).map((f, i) => (
            <li key={i}>
              <FileCard file={f} testId={`${testId}-${i}`} />
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function Value({ value, testId }: { value: unknown; testId: string }) {
  if (isFile(value)) return <FileCard file={value} testId={testId} />;
  if (Array.isArray(value) && value.some(isFile))
    return (
      <div>
        {value.map((v, i) => (
          <Value key={i} value={v} testId={`${testId}-${i}`} />
        ))}
      </div>
    );
  return <pre className="preview-text">{JSON.stringify(value, null, 2)}</pre>;
}

export function OutputsView({ outputs }: { outputs: Record<string, unknown> | null }) {
  if (!outputs || Object.keys(outputs).length === 0) return <p className="muted">No outputs.</p>;
  return (
    <div className="outputs" data-testid="outputs">
      {Object.entries(outputs).map(([k, v]) => (
        <section key={k} className="output" data-testid={`output-${k}`}>
          <h3>
            <code>{k}</code>
          </h3>
          <Value value={v} testId={`output-${k}-file`} />
        </section>
      ))}
    </div>
  );
}
