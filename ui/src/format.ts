// Small display helpers.

// a timestamp without a zone (some API rows) is UTC, as everything the server writes
const NAIVE = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/;

export function parseTime(value: string): Date {
  return new Date(NAIVE.test(value) ? `${value.replace(" ", "T")}Z` : value);
}

export function when(value: string | null | undefined): string {
  if (!value) return "—";
  const d = parseTime(value);
  if (Number.isNaN(d.getTime())) return value;
  return d.toLocaleString();
}

/** "12 s ago", "5 min ago", … (the full time is for a title attribute). */
export function ago(value: string | null | undefined): string {
  if (!value) return "—";
  const d = parseTime(value);
  if (Number.isNaN(d.getTime())) return value;
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return d.toLocaleDateString();
}

export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  if (value < 1) return `${(value * 1000).toFixed(0)} ms`;
  if (value < 120) return `${value.toFixed(2)} s`;
  return `${(value / 60).toFixed(1)} min`;
}

export function bytes(value: number | null | undefined): string {
  if (value === null || value === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = value;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

export function duration(start?: string | null, end?: string | null): string {
  if (!start) return "—";
  const s = new Date(start).getTime();
  const e = end ? new Date(end).getTime() : Date.now();
  if (Number.isNaN(s) || Number.isNaN(e)) return "—";
  return seconds(Math.max(0, (e - s) / 1000));
}
