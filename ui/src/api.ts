// The REST API client (docs/api.md): every call sends the bearer token; every non-2xx
// answer becomes an ApiError carrying the server's {"error": {message, hint}} body.

export interface Port {
  id: string;
  type: string;
  optional?: boolean;
  default?: unknown;
  label?: string | null;
  doc?: string | null;
}

export interface GraphNode {
  id: string;
  kind: string;
  label?: string | null;
  class?: string | null;
}

export interface GraphEdge {
  source: string;
  target: string;
  label?: string | null;
  kind?: string | null;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

export interface Workflow {
  id: string;
  name: string;
  version: number;
  project: string;
  class: string;
  label?: string | null;
  doc?: string | null;
  description?: string | null;
  main?: string | null;
  created_at: string;
  created_by?: string | null;
  inputs: Port[];
  outputs: Port[];
  graph?: Graph;
  layout?: Record<string, { x: number; y: number }> | null;
}

export interface Page<T> {
  items: T[];
  total: number;
  limit: number;
  offset: number;
}

export interface PaletteItem {
  ref: string;
  kind: "workflow" | "template" | string;
  name: string;
  version?: number | null;
  label?: string | null;
  class?: string | null;
  doc?: string | null;
  inputs: Port[];
  outputs: Port[];
}

export type RunState =
  | "queued"
  | "running"
  | "succeeded"
  | "failed"
  | "cancelled"
  | "interrupted";

export const RUN_STATES: RunState[] = [
  "queued",
  "running",
  "succeeded",
  "failed",
  "cancelled",
  "interrupted",
];

export const FINAL_STATES = new Set<string>(["succeeded", "failed", "cancelled", "interrupted"]);

export interface Step {
  id: string;
  name: string;
  state: string;
  tool?: string | null;
  kind?: string | null;
  attempt?: number | null;
  created_at?: string | null;
  started_at?: string | null;
  ended_at?: string | null;
  wall_time?: number | null;
  exit_code?: number | null;
  peak_memory?: number | null;
  message?: string | null;
  reused_from?: string | null;
}

export interface Run {
  id: string;
  name: string;
  project: string;
  workflow_id: string;
  workflow_name?: string | null;
  workflow_version?: number | null;
  state: string;
  created_at?: string | null;
  started_at?: string | null;
  ended_at?: string | null;
  created_by?: string | null;
  inputs?: Record<string, unknown> | null;
  outputs?: Record<string, unknown> | null;
  error?: string | null;
  exit_code?: number | null;
  attempt?: number | null;
  step_counts?: Record<string, number> | null;
  steps?: Step[];
}

export interface Me {
  user: { name: string; admin: boolean };
  token: { id: string; scopes: string[]; kind: string };
  projects: { name: string; role: string }[];
  /** whether this caller may open the MLflow UI (the server's mlflow_access setting) */
  mlflow: boolean;
}

export interface Upload {
  id: string;
  name: string;
  size: number;
  sha256: string;
  location: string;
}

export interface ComposeError {
  message: string;
  line?: number | null;
  column?: number | null;
  path?: string | null;
}

export interface ComposeResult {
  valid: boolean;
  errors: ComposeError[];
  cwl?: string | null;
}

export interface ProvGraph {
  nodes: { id: string; kind: string; label?: string | null }[];
  edges: { kind: string; source: string; target: string }[];
}

// -- events, triggers, sources (docs/events.md) -----------------------------------------

export const DELIVERY_STATES = [
  "pending",
  "running",
  "batched",
  "approval",
  "done",
  "retrying",
  "dead",
  "skipped",
] as const;

export interface Delivery {
  id: string;
  event_id: string;
  trigger: string;
  state: string;
  attempts: number;
  run_id?: string | null;
  batch_id?: string | null;
  error?: string | null;
  next_attempt_at?: string | null;
  approved_by?: string | null;
  created_at?: string | null;
  updated_at?: string | null;
  /** approvals only: the event's project and key */
  project?: string;
  key?: string;
}

export interface TwinEvent {
  id: string;
  source: string;
  project: string;
  key: string;
  kind: string;
  version?: string | null;
  body?: Record<string, unknown> | null;
  received_at?: string | null;
  deliveries: Delivery[];
}

export interface TwinSource {
  name: string;
  kind: string;
  project: string;
  config?: Record<string, unknown> | null;
  paused: boolean;
  status?: string | null;
  error?: string | null;
  status_at?: string | null;
  created_at?: string | null;
  created_by?: string | null;
}

export interface Trigger {
  name: string;
  project: string;
  source: string;
  definition: Record<string, unknown> & { workflow?: string; approval?: boolean; function?: string };
  paused: boolean;
  state?: Record<string, unknown> | null;
  created_at?: string | null;
  updated_at?: string | null;
  created_by?: string | null;
}

// -- notifications (docs/notify.md) --------------------------------------------------------

export interface Note {
  id: string;
  kind: string;
  title: string;
  body?: string;
  project?: string | null;
  trigger?: string | null;
  user?: string | null;
  data?: Record<string, unknown>;
  link?: string | null;
  url?: string | null;
  created_at: string;
  read?: boolean;
  read_at?: string | null;
}

export interface Subscription {
  id: string;
  user: string;
  channel: string;
  target: string | null;
  project: string | null;
  trigger: string | null;
  kinds: string[];
  active: boolean;
  created_at: string;
}

export const CHANNELS = ["ui", "webhook", "email", "apprise"] as const;

// -- functions (docs/functions.md) ---------------------------------------------------------

export interface TwinFunction {
  name: string;
  project: string;
  kind: string;
  target: string;
  min_workers: number;
  max_workers: number;
  timeout: number;
  env: string[];
  created_at?: string | null;
  created_by?: string | null;
  workers: number;
  busy: number;
  queued: number;
}

export interface FunctionCall {
  id: string;
  function: string;
  project?: string | null;
  state: string;
  input?: unknown;
  result?: unknown;
  error?: string | null;
  logs?: string;
  created_at?: string | null;
  started_at?: string | null;
  ended_at?: string | null;
  duration?: number | null;
}

export class ApiError extends Error {
  status: number;
  code: string;
  hint: string | null;
  details: unknown;
  constructor(status: number, code: string, message: string, hint: string | null, details: unknown) {
    super(message);
    this.status = status;
    this.code = code;
    this.hint = hint;
    this.details = details;
  }
}

const TOKEN_KEY = "twinengine.token";

export function getToken(): string | null {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

export function setToken(token: string | null): void {
  if (token) localStorage.setItem(TOKEN_KEY, token);
  else localStorage.removeItem(TOKEN_KEY);
}

/** Called when any request answers 401 (the app then signs out). */
let onUnauthorized: (() => void) | null = null;
export function setUnauthorizedHandler(handler: (() => void) | null): void {
  onUnauthorized = handler;
}

function authHeaders(token?: string | null): Record<string, string> {
  const t = token ?? getToken();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

async function errorFrom(response: Response): Promise<ApiError> {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText || "error"}`;
  let hint: string | null = null;
  let details: unknown = null;
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text) as {
      error?: { code?: string; message?: string; hint?: string | null; details?: unknown };
      detail?: unknown;
    };
    if (body && body.error) {
      code = body.error.code ?? code;
      message = body.error.message ?? message;
      hint = body.error.hint ?? null;
      details = body.error.details ?? null;
    } else if (body && body.detail !== undefined) {
      // a plain FastAPI error body (not the documented shape): still show it
      message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    if (text) message = `${message}: ${text.slice(0, 300)}`;
  }
  return new ApiError(response.status, code, message, hint, details);
}

export interface ModelSummary {
  name: string;
  project: string | null;
  description: string;
  latest: number | null;
  versions: number;
  aliases: Record<string, number>;
}

export interface ModelVersion {
  version: number;
  aliases: string[];
  tags: Record<string, string>;
  run_id: string | null;
  created: string | null;
  status: string | null;
  description: string;
  source: string | null;
}

export interface Promotion {
  action: string;
  alias: string;
  from: number | null;
  to: number;
  who: string;
  when: string;
}

export interface ModelDetail {
  name: string;
  project: string | null;
  description: string;
  aliases: Record<string, number>;
  versions: ModelVersion[];
  promotions: Promotion[];
}

export interface RequestOptions {
  method?: string;
  json?: unknown;
  form?: FormData;
  /** a raw text body (YAML definitions), sent with `contentType` */
  text?: string;
  contentType?: string;
  token?: string | null;
  signal?: AbortSignal;
  query?: Record<string, string | number | boolean | null | undefined>;
}

export function url(path: string, query?: RequestOptions["query"]): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") params.set(key, String(value));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function rawRequest(path: string, options: RequestOptions = {}): Promise<Response> {
  const headers: Record<string, string> = { ...authHeaders(options.token) };
  let body: BodyInit | undefined;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.json);
  } else if (options.form) {
    body = options.form;
  } else if (options.text !== undefined) {
    headers["Content-Type"] = options.contentType ?? "text/plain";
    body = options.text;
  }
  let response: Response;
  try {
    response = await fetch(url(path, options.query), {
      method: options.method ?? (body !== undefined ? "POST" : "GET"),
      headers,
      body,
      signal: options.signal,
    });
  } catch (err) {
    if (err instanceof DOMException && err.name === "AbortError") throw err;
    throw new ApiError(0, "network", `cannot reach the server (${String(err)})`, "is twin serve running?", null);
  }
  if (!response.ok) {
    const error = await errorFrom(response);
    if (response.status === 401 && options.token === undefined && onUnauthorized) onUnauthorized();
    throw error;
  }
  return response;
}

export async function request<T>(path: string, options: RequestOptions = {}): Promise<T> {
  const response = await rawRequest(path, options);
  if (response.status === 204) return undefined as T;
  const type = response.headers.get("content-type") ?? "";
  if (type.includes("json")) return (await response.json()) as T;
  return (await response.text()) as unknown as T;
}

export async function requestText(path: string, options: RequestOptions = {}): Promise<string> {
  const response = await rawRequest(path, options);
  return response.text();
}

export async function requestBlob(path: string, options: RequestOptions = {}): Promise<Blob> {
  const response = await rawRequest(path, options);
  return response.blob();
}

/** Fetch a protected file and hand it to the browser as a download. */
export async function download(path: string, filename: string): Promise<void> {
  const blob = await requestBlob(path);
  const objectUrl = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = objectUrl;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(objectUrl), 10_000);
}

const enc = encodeURIComponent;

export const api = {
  me: (token?: string) => request<Me>("/api/v1/me", { token }),
  models: () => request<ModelSummary[]>("/api/v1/models"),
  model: (name: string) => request<ModelDetail>(`/api/v1/models/${encodeURIComponent(name)}`),
  promoteModel: (name: string, version: number, alias: string) =>
    request<Promotion>(`/api/v1/models/${encodeURIComponent(name)}/promote`, { json: { version, alias } }),
  rollbackModel: (name: string) =>
    request<Promotion>(`/api/v1/models/${encodeURIComponent(name)}/rollback`, { method: "POST" }),
  workflows: (query: RequestOptions["query"]) => request<Page<Workflow>>("/api/v1/workflows", { query }),
  workflow: (id: string) => request<Workflow>(`/api/v1/workflows/${encodeURIComponent(id)}`),
  workflowContent: (id: string) => requestText(`/api/v1/workflows/${encodeURIComponent(id)}/content`),
  uploadWorkflow: (form: FormData) => request<Workflow>("/api/v1/workflows", { method: "POST", form }),
  deleteWorkflow: (id: string) =>
    request<void>(`/api/v1/workflows/${encodeURIComponent(id)}`, { method: "DELETE" }),
  compose: (body: unknown) => request<Workflow | ComposeResult>("/api/v1/workflows/compose", { json: body }),
  palette: (project?: string) => request<{ items: PaletteItem[] }>("/api/v1/palette", { query: { project } }),
  upload: (file: File, project?: string) => {
    const form = new FormData();
    form.append("file", file, file.name);
    if (project) form.append("project", project);
    return request<Upload>("/api/v1/uploads", { method: "POST", form });
  },
  startRun: (body: { workflow: string; inputs: Record<string, unknown>; name?: string; cache?: boolean }) =>
    request<Run>("/api/v1/runs", { json: body }),
  runs: (query: RequestOptions["query"]) => request<Page<Run>>("/api/v1/runs", { query }),
  run: (id: string) => request<Run>(`/api/v1/runs/${encodeURIComponent(id)}`),
  runOutputs: (id: string) =>
    request<{ outputs: Record<string, unknown> | null }>(`/api/v1/runs/${encodeURIComponent(id)}/outputs`),
  runLogs: (id: string, step: string, stream: string) =>
    requestText(`/api/v1/runs/${encodeURIComponent(id)}/logs`, { query: { step, stream } }),
  cancelRun: (id: string) => request<Run>(`/api/v1/runs/${encodeURIComponent(id)}/cancel`, { method: "POST" }),
  resumeRun: (id: string) => request<Run>(`/api/v1/runs/${encodeURIComponent(id)}/resume`, { method: "POST" }),
  deleteRun: (id: string) => request<void>(`/api/v1/runs/${encodeURIComponent(id)}`, { method: "DELETE" }),
  runProvGraph: (id: string) =>
    request<ProvGraph>(`/api/v1/runs/${encodeURIComponent(id)}/prov`, { query: { format: "graph" } }),
  lineage: (target: string, direction: string, depth?: number) =>
    request<ProvGraph>("/api/v1/prov/lineage", { query: { target, direction, depth } }),

  // events
  events: (query: RequestOptions["query"]) => request<{ items: TwinEvent[]; total?: number }>("/api/v1/events", { query }),
  event: (id: string) => request<TwinEvent>(`/api/v1/events/${enc(id)}`),
  retryEvent: (id: string) => request<{ retried: number }>(`/api/v1/events/${enc(id)}/retry`, { method: "POST" }),
  approvals: () => request<{ items: Delivery[] }>("/api/v1/events/approvals"),
  decide: (delivery: string, approve: boolean) =>
    request<Delivery>(`/api/v1/events/approvals/${enc(delivery)}`, { method: "POST", query: { approve } }),
  sources: () => request<{ items: TwinSource[] }>("/api/v1/sources"),
  addSource: (yaml: string, replace: boolean) =>
    request<TwinSource>("/api/v1/sources", { text: yaml, contentType: "application/yaml", query: { replace: replace || undefined } }),
  // sources and triggers are named per project: ``project`` says whose one is meant
  pauseSource: (name: string, pause: boolean, project?: string) =>
    request<TwinSource>(`/api/v1/sources/${enc(name)}/${pause ? "pause" : "resume"}`, { method: "POST", query: { project } }),
  deleteSource: (name: string, project?: string) =>
    request<void>(`/api/v1/sources/${enc(name)}`, { method: "DELETE", query: { project } }),
  triggers: () => request<{ items: Trigger[] }>("/api/v1/triggers"),
  trigger: (name: string, project?: string) => request<Trigger>(`/api/v1/triggers/${enc(name)}`, { query: { project } }),
  addTrigger: (yaml: string, replace: boolean) =>
    request<Trigger>("/api/v1/triggers", { text: yaml, contentType: "application/yaml", query: { replace: replace || undefined } }),
  pauseTrigger: (name: string, pause: boolean, project?: string) =>
    request<Trigger>(`/api/v1/triggers/${enc(name)}/${pause ? "pause" : "resume"}`, { method: "POST", query: { project } }),
  deleteTrigger: (name: string, project?: string) =>
    request<void>(`/api/v1/triggers/${enc(name)}`, { method: "DELETE", query: { project } }),

  // notifications
  notifications: (query: RequestOptions["query"]) =>
    request<{ items: Note[]; unread: number }>("/api/v1/notifications", { query }),
  markRead: (body: { ids: string[] } | { all: true }) =>
    request<{ marked: number }>("/api/v1/notifications/read", { json: body }),
  subscriptions: () => request<{ items: Subscription[] }>("/api/v1/subscriptions"),
  subscribe: (body: { channel: string; target?: string | null; project?: string | null; trigger?: string | null; kinds?: string[] }) =>
    request<Subscription>("/api/v1/subscriptions", { json: body }),
  unsubscribe: (id: string) => request<void>(`/api/v1/subscriptions/${enc(id)}`, { method: "DELETE" }),
  testSubscription: (id: string) =>
    request<{ ok: boolean; channel: string; target: string | null; note: string | null }>(
      `/api/v1/subscriptions/${enc(id)}/test`,
      { method: "POST" },
    ),

  // functions are named per project too: ``project`` says whose one is meant
  functions: () => request<{ items: TwinFunction[] }>("/api/v1/functions"),
  deployFunction: (body: {
    name: string;
    kind: string;
    target: string;
    project?: string;
    min_workers?: number;
    max_workers?: number;
    timeout?: number;
  }) => request<TwinFunction>("/api/v1/functions", { json: body }),
  deleteFunction: (name: string, project: string) =>
    request<void>(`/api/v1/functions/${enc(name)}`, { method: "DELETE", query: { project } }),
  invokeFunction: (name: string, project: string, input: unknown) =>
    request<FunctionCall>(`/api/v1/functions/${enc(name)}/invoke`, { json: input, query: { project } }),
  functionCalls: (name: string, project: string, limit = 20) =>
    request<{ items: FunctionCall[] }>(`/api/v1/functions/${enc(name)}/calls`, { query: { project, limit } }),
};

export function errorText(err: unknown): { message: string; hint: string | null } {
  if (err instanceof ApiError) return { message: err.message, hint: err.hint };
  if (err instanceof Error) return { message: err.message, hint: null };
  return { message: String(err), hint: null };
}
