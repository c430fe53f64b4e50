// Small helpers shared by every view: DOM building, formatting, ring buffers.

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Set a text node only when it changed: the DOM is touched for changed values only. */
export function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

export function setAttr(node, name, value) {
  if (node.getAttribute(name) !== value) node.setAttribute(name, value);
}

const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];

export function fmtBytes(value) {
  if (value === undefined || value === null) return "–";
  let v = value;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i += 1;
  }
  return `${v.toFixed(v >= 100 || i === 0 ? 0 : 1)} ${UNITS[i]}`;
}

export function fmtRate(value) {
  return value === undefined || value === null ? "–" : `${fmtBytes(value)}/s`;
}

export function fmtPercent(value) {
  return value === undefined || value === null ? "–" : `${value.toFixed(1)} %`;
}

export function fmtNumber(value, digits = 2) {
  return value === undefined || value === null ? "–" : Number(value).toFixed(digits);
}

/** Format by unit name, as in srvmon_core.metrics. */
export function fmtByMetric(metric, value) {
  if (metric.endsWith("_percent") || metric.includes("_percent_")) return fmtPercent(value);
  if (metric.endsWith("_bytes_per_s")) return fmtRate(value);
  if (metric.endsWith("_bytes")) return fmtBytes(value);
  return fmtNumber(value);
}

/** A timestamp (ISO string, epoch seconds or Date) in the browser's local time zone. */
export function fmtLocal(value) {
  const date = toDate(value);
  if (!date) return "–";
  return date.toLocaleString(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

export function fmtLocalTime(value) {
  const date = toDate(value);
  return date ? date.toLocaleTimeString() : "–";
}

export function toDate(value) {
  if (value === undefined || value === null || value === "") return null;
  if (value instanceof Date) return value;
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Glob (`*`, `?`) when the pattern has wildcards, otherwise a case-insensitive substring. */
export function makeMatcher(pattern) {
  const p = pattern.trim().toLowerCase();
  if (!p) return () => true;
  if (!/[*?]/.test(p)) return (text) => text.toLowerCase().includes(p);
  const source = p.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  const re = new RegExp(`^${source}$`);
  return (text) => re.test(text.toLowerCase());
}

/** A fixed-size ring of numbers: pushing never grows memory. */
export class Ring {
  constructor(capacity) {
    this.values = new Float64Array(capacity);
    this.start = 0;
    this.length = 0;
  }

  push(value) {
    const cap = this.values.length;
    this.values[(this.start + this.length) % cap] = value;
    if (this.length < cap) this.length += 1;
    else this.start = (this.start + 1) % cap;
  }

  at(i) {
    return this.values[(this.start + i) % this.values.length];
  }

  last() {
    return this.length ? this.at(this.length - 1) : undefined;
  }

  clear() {
    this.start = 0;
    this.length = 0;
  }
}

export const SEVERITY_RANK = { silent: 3, critical: 2, warning: 1, ok: 0 };
