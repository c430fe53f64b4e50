// The rule editor form: fields in the order an operator thinks (what, where, when), selects
// for every choice, each recovery beside its threshold, inline help, and only the fields
// the chosen kind uses. Fields a future server adds appear under "Other fields".
// API validation errors are shown next to the field the envelope names (e.g. "$.warn").

import { ApiError, enc, api } from "../api.js";
import { el, setText } from "../util.js";

// The choices of srvmon_core.rules (a test keeps these lists equal to the Python ones).
export const RULE_KINDS = ["threshold", "silent", "container_stopped", "container_restarted", "container_unhealthy"];
export const SELECTOR_KINDS = ["host", "container", "any"];
export const DIRECTIONS = ["above", "below"];
export const LEVELS = ["warning", "critical"];
export const WINDOW_AGGS = ["avg", "max"];
// The flat metrics of srvmon_core.metrics (docs/metrics.md).
export const HOST_METRICS = [
  "cpu_percent", "cpu_iowait_percent", "cpu_steal_percent", "load_1", "load_5", "load_15",
  "memory_used_bytes", "memory_available_bytes", "memory_percent", "swap_percent",
  "disk_used_percent_max", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
  "disk_read_ops_per_s", "disk_write_ops_per_s", "net_rx_bytes_per_s", "net_tx_bytes_per_s",
  "net_errors_per_s", "net_drops_per_s", "temperature_max_celsius", "uptime_seconds", "process_count",
];
export const CONTAINER_METRICS = [
  "cpu_percent", "cpu_throttled_percent", "memory_working_set_bytes", "memory_percent",
  "net_rx_bytes_per_s", "net_tx_bytes_per_s", "block_read_bytes_per_s", "block_write_bytes_per_s",
  "pids", "restart_count",
];

const HELP = {
  kind: "threshold: a metric against warn/crit; silent: no batch for a while; container_*: a container's state",
  "selector.kind": "hosts, containers, or both",
  "selector.machine": "a name (vm, vm/db), a key, or a glob (web-*, vm/*); empty: every machine of the kind",
  "selector.host": "containers of hosts matching this glob (host id or hostname)",
  "selector.labels": "one label=value per line; values may be globs",
  direction: "above: fires when the value is at or over the threshold; below: at or under",
  warn_recovery: "hysteresis: the warning clears only past this value (empty: the warn value). Keeps an alert from flapping around the threshold",
  crit_recovery: "hysteresis for critical: below it (above, for 'below' rules) the alert drops to warning or clears",
  for_seconds: "the condition must hold this long before the alert fires; meanwhile it is pending. 0 fires at once",
  window_seconds: "compare the average (or max) of the last N seconds of samples, not each sample. 0: each sample",
  repeat_seconds: "while firing, announce it again every N seconds (empty: never)",
  silent_seconds: "fire when no batch came from the machine for this long",
  hold_seconds: "how long the alert stays firing after the last restart (default 300)",
  level: "severity of this kind of rule (thresholds take theirs from warn/crit)",
};

/** Which kinds use a field (absent: every kind). */
const KINDS_OF = {
  metric: ["threshold"], direction: ["threshold"], warn: ["threshold"], crit: ["threshold"],
  warn_recovery: ["threshold"], crit_recovery: ["threshold"], window_seconds: ["threshold"],
  window_agg: ["threshold"], silent_seconds: ["silent"], hold_seconds: ["container_restarted"],
  level: ["silent", "container_stopped", "container_restarted", "container_unhealthy"],
  for_seconds: ["threshold", "silent", "container_stopped", "container_unhealthy"],
  "selector.host": ["threshold", "silent", "container_stopped", "container_restarted", "container_unhealthy"],
};

/** What a field holds when its kind does not use it (the API's defaults). */
const UNUSED = {
  metric: null, direction: "above", warn: null, crit: null, warn_recovery: null, crit_recovery: null,
  window_seconds: 0, window_agg: "avg", silent_seconds: null, hold_seconds: null, level: "warning",
  for_seconds: 0,
};

const NUMBERS = new Set([
  "warn", "crit", "warn_recovery", "crit_recovery", "for_seconds", "window_seconds",
  "repeat_seconds", "silent_seconds", "hold_seconds",
]);
const NOT_NULL = new Set(["for_seconds", "window_seconds"]);
const KNOWN = new Set([
  "id", "name", "kind", "selector", "metric", "direction", "warn", "crit", "warn_recovery",
  "crit_recovery", "for_seconds", "window_seconds", "window_agg", "repeat_seconds", "enabled",
  "silent_seconds", "hold_seconds", "level", "created_at", "updated_at",
]);

/** A rule that validates, to start a new one from. */
export function newRule() {
  return {
    id: "", name: "", kind: "threshold",
    selector: { kind: "host", machine: null, host: null, labels: {} },
    metric: "cpu_percent", direction: "above", warn: 80, crit: 95, warn_recovery: null,
    crit_recovery: null, for_seconds: 60, window_seconds: 0, window_agg: "avg",
    repeat_seconds: null, enabled: true, silent_seconds: null, hold_seconds: null, level: "warning",
  };
}

function get(rule, path) {
  return path.split(".").reduce((v, k) => (v === null || v === undefined ? v : v[k]), rule);
}

function set(rule, path, value) {
  const parts = path.split(".");
  let target = rule;
  for (const part of parts.slice(0, -1)) {
    if (target[part] === null || typeof target[part] !== "object") target[part] = {};
    target = target[part];
  }
  target[parts.at(-1)] = value;
}

function select(path, choices, value) {
  return el("select", { name: path, "data-field": path },
    ...choices.map((c) => el("option", { value: c, selected: c === value }, c)));
}

function metricSelect(value, selectorKind) {
  const groups = [];
  if (selectorKind !== "container") groups.push(["host metrics", HOST_METRICS]);
  if (selectorKind !== "host") groups.push(["container metrics", CONTAINER_METRICS]);
  const node = el("select", { name: "metric", "data-field": "metric" });
  const seen = new Set();
  for (const [label, names] of groups) {
    const group = el("optgroup", { label });
    for (const name of names) {
      if (seen.has(name)) continue;
      seen.add(name);
      group.append(el("option", { value: name, selected: name === value }, name));
    }
    node.append(group);
  }
  if (value && !seen.has(value)) node.append(el("option", { value, selected: true }, value));
  return node;
}

function labelsText(labels) {
  return Object.entries(labels || {}).map(([k, v]) => `${k}=${v}`).join("\n");
}

function parseLabels(text) {
  const out = {};
  for (const line of text.split("\n")) {
    const [key, ...rest] = line.split("=");
    if (key.trim()) out[key.trim()] = rest.join("=").trim();
  }
  return out;
}

/**
 * A form editing a copy of `rule`. `save(rule)` is awaited; an ApiError naming a field is
 * shown beside that field. `isNew`: the id may be typed (a new rule or an override).
 */
export function ruleForm(rule, { save, submitLabel, isNew = false, onCancel = null }) {
  const form = el("form", { class: "rule-form", novalidate: true });
  const fields = new Map(); // path → {input, wrap, error}
  const general = el("p", { class: "error", hidden: true, id: "rule-form-error" });

  function field(path, input, { label = path, control = input } = {}) {
    const error = el("span", { class: "field-error", "data-error-for": path, hidden: true });
    const help = HELP[path] ? el("small", { class: "help" }, HELP[path]) : null;
    const wrap = el("label", { class: "field", "data-for": path },
      el("span", { class: "field-name" }, label), control, help, error);
    fields.set(path, { input, wrap, error });
    return wrap;
  }
  function number(path, value, attrs = {}) {
    return el("input", { name: path, "data-field": path, type: "number", step: "any", inputmode: "decimal",
      value: value === null || value === undefined ? "" : String(value), ...attrs });
  }
  function text(path, value, attrs = {}) {
    return el("input", { name: path, "data-field": path, value: value ?? "", ...attrs });
  }

  const idInput = text("id", rule.id, { readonly: !isNew, required: true });
  const enabled = el("input", { type: "checkbox", name: "enabled", "data-field": "enabled", checked: rule.enabled !== false });
  const kind = select("kind", RULE_KINDS, rule.kind || "threshold");
  const selectorKind = select("selector.kind", SELECTOR_KINDS, get(rule, "selector.kind") || "any");
  const machine = text("selector.machine", get(rule, "selector.machine"), { list: "rule-machine-names", placeholder: "every machine" });
  const picks = el("small", { class: "muted picks", id: "rule-machine-picks" });
  let metric = metricSelect(rule.metric, selectorKind.value);

  const sections = [
    el("fieldset", {}, el("legend", {}, "Rule"),
      field("id", idInput), field("name", text("name", rule.name)), field("kind", kind),
      field("enabled", enabled, { label: "enabled" })),
    el("fieldset", {}, el("legend", {}, "Applies to"),
      field("selector.kind", selectorKind, { label: "machines" }),
      field("selector.machine", machine, { label: "machine", control: el("span", { class: "stack" }, machine, picks) }),
      field("selector.host", text("selector.host", get(rule, "selector.host"), { placeholder: "any host" }), { label: "on host" }),
      field("selector.labels", el("textarea", { name: "selector.labels", "data-field": "selector.labels", rows: 2 },
        labelsText(get(rule, "selector.labels"))), { label: "labels" })),
    el("fieldset", {}, el("legend", {}, "When"),
      field("metric", metric), field("direction", select("direction", DIRECTIONS, rule.direction || "above")),
      el("div", { class: "pair" }, field("warn", number("warn", rule.warn)), field("warn_recovery", number("warn_recovery", rule.warn_recovery), { label: "warn clears at" })),
      el("div", { class: "pair" }, field("crit", number("crit", rule.crit)), field("crit_recovery", number("crit_recovery", rule.crit_recovery), { label: "crit clears at" })),
      field("level", select("level", LEVELS, rule.level || "warning")),
      field("silent_seconds", number("silent_seconds", rule.silent_seconds, { min: 0 }), { label: "silent for (s)" }),
      field("hold_seconds", number("hold_seconds", rule.hold_seconds, { min: 0 }), { label: "hold (s)" })),
    el("fieldset", {}, el("legend", {}, "Timing"),
      field("for_seconds", number("for_seconds", rule.for_seconds ?? 0, { min: 0 }), { label: "for (s)" }),
      el("div", { class: "pair" },
        field("window_seconds", number("window_seconds", rule.window_seconds ?? 0, { min: 0 }), { label: "window (s)" }),
        field("window_agg", select("window_agg", WINDOW_AGGS, rule.window_agg || "avg"), { label: "window aggregate" })),
      field("repeat_seconds", number("repeat_seconds", rule.repeat_seconds, { min: 0 }), { label: "repeat every (s)" })),
  ];
  const extras = Object.keys(rule).filter((k) => !KNOWN.has(k));
  if (extras.length) {
    sections.push(el("fieldset", {}, el("legend", {}, "Other fields"),
      ...extras.map((k) => field(k, text(k, typeof rule[k] === "object" ? JSON.stringify(rule[k]) : rule[k])))));
  }
  const buttons = el("div", { class: "form-buttons" }, el("button", { type: "submit" }, submitLabel));
  if (onCancel) buttons.append(el("button", { type: "button", onclick: onCancel }, "Cancel"));
  form.append(...sections, el("datalist", { id: "rule-machine-names" }), buttons, general);

  // --- kind-dependent fields, metrics per selector kind ---------------------------------
  function applyKind() {
    for (const [path, { wrap }] of fields) {
      const kinds = KINDS_OF[path];
      wrap.hidden = Boolean(kinds) && !kinds.includes(kind.value);
    }
  }
  kind.addEventListener("change", applyKind);
  selectorKind.addEventListener("change", () => {
    const replacement = metricSelect(metric.value, selectorKind.value);
    metric.replaceWith(replacement);
    metric = replacement;
    fields.get("metric").input = replacement;
  });
  applyKind();

  // --- each recovery follows its threshold until the operator sets it -------------------
  for (const level of ["warn", "crit"]) {
    const threshold = fields.get(level).input;
    const recovery = fields.get(`${level}_recovery`).input;
    let gap = rule[level] !== null && rule[`${level}_recovery`] !== null && rule[level] !== undefined
      ? rule[level] - rule[`${level}_recovery`] : null;
    recovery.addEventListener("input", () => {
      const t = Number(threshold.value);
      gap = recovery.value === "" || threshold.value === "" ? null : t - Number(recovery.value);
    });
    threshold.addEventListener("input", () => {
      if (gap === null || threshold.value === "" || recovery.value === "") return;
      recovery.value = String(Number((Number(threshold.value) - gap).toPrecision(12)));
    });
  }

  // --- which machines the selector picks ------------------------------------------------
  let asked = "";
  async function showPicks() {
    const pattern = machine.value.trim();
    asked = pattern;
    if (!pattern) {
      setText(picks, "every machine of the kind");
      return;
    }
    try {
      const answer = await api(`/api/v1/resolve?machine=${enc(pattern)}`);
      if (asked !== pattern) return;
      const shared = Object.entries(answer.shared || {})
        .map(([name, keys]) => ` — ${keys.length} machines share the name ${name}: ${keys.join(", ")}`).join("");
      setText(picks, `picks ${answer.count} machine${answer.count === 1 ? "" : "s"}`
        + `${answer.count ? `: ${answer.machines.slice(0, 8).map((m) => m.display).join(", ")}${answer.count > 8 ? ", …" : ""}` : ""}${shared}`);
    } catch (error) {
      if (asked === pattern) setText(picks, `error: ${error.message}`);
    }
  }
  let pickTimer = null;
  machine.addEventListener("input", () => { clearTimeout(pickTimer); pickTimer = setTimeout(showPicks, 250); });
  showPicks();
  api("/api/v1/resolve?machine=*").then((answer) => {
    const names = [...new Set(answer.machines.map((m) => m.display))];
    form.querySelector("#rule-machine-names").replaceChildren(...names.map((n) => el("option", { value: n })));
  }).catch(() => {});

  // --- reading the form back -------------------------------------------------------------
  function read() {
    const out = structuredClone(rule);
    delete out.created_at;
    delete out.updated_at;
    for (const [path, { input }] of fields) {
      let value;
      if (path === "enabled") value = input.checked;
      else if (path === "selector.labels") value = parseLabels(input.value);
      else if (NUMBERS.has(path)) {
        value = input.value.trim() === "" ? (NOT_NULL.has(path) ? 0 : null) : Number(input.value);
      } else if (extras.includes(path)) {
        try { value = JSON.parse(input.value); } catch { value = input.value; }
      } else {
        value = input.value.trim() === "" && path !== "name" ? null : input.value.trim();
      }
      const kinds = KINDS_OF[path];
      if (kinds && !kinds.includes(kind.value) && path in UNUSED) value = UNUSED[path];
      set(out, path, value);
    }
    if (!out.name) out.name = out.id;
    if (out.selector && out.selector.machine === "") out.selector.machine = null;
    return out;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const { error } of fields.values()) error.hidden = true;
    general.hidden = true;
    const edited = read();
    if (!edited.id) {
      const { error, input } = fields.get("id");
      error.textContent = "give the rule an id";
      error.hidden = false;
      input.focus();
      return;
    }
    try {
      await save(edited);
    } catch (error) {
      const path = error instanceof ApiError && error.field ? error.field.replace(/^\$\.?/, "") : "";
      const target = fields.get(path) || fields.get(path.split(".").slice(0, 2).join("."));
      if (target && !target.wrap.hidden) {
        target.error.textContent = error.message;
        target.error.hidden = false;
        target.input.focus();
      } else {
        general.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
        general.hidden = false;
      }
    }
  });
  return form;
}
