// A small YAML writer for showing definitions the way they are written (block style;
// strings quoted as JSON when YAML would read them differently).

const PLAIN = /^[A-Za-z_/$.][A-Za-z0-9_ ./$*:@+-]*$/;
const WORDS = new Set(["true", "false", "null", "yes", "no", "on", "off", "~"]);

function scalar(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") {
    const plain = PLAIN.test(value) && !WORDS.has(value.toLowerCase()) && !/: |\s$/.test(value);
    return plain ? value : JSON.stringify(value);
  }
  return String(value);
}

function isEmpty(value: unknown): boolean {
  return typeof value === "object" && value !== null && Object.keys(value).length === 0;
}

export function toYaml(value: unknown, indent = ""): string {
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return value
      .map((item) => {
        if (typeof item === "object" && item !== null && !isEmpty(item)) {
          const inner = toYaml(item, `${indent}  `);
          return `${indent}- ${inner.trimStart()}`;
        }
        return `${indent}- ${isEmpty(item) ? (Array.isArray(item) ? "[]" : "{}") : scalar(item)}`;
      })
      .join("\n");
  }
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return "{}";
    return entries
      .map(([key, v]) => {
        const k = scalar(key);
        if (typeof v === "object" && v !== null && !isEmpty(v)) {
          return `${indent}${k}:\n${toYaml(v, `${indent}  `)}`;
        }
        return `${indent}${k}: ${isEmpty(v) ? (Array.isArray(v) ? "[]" : "{}") : scalar(v)}`;
      })
      .join("\n");
  }
  return `${indent}${scalar(value)}`;
}
