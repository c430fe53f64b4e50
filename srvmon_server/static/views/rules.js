// Rules: list and edit thresholds (defaults, globs, per-machine overrides), create an
// override, and show which rules apply to one machine. API validation errors are shown
// next to the field the envelope names (e.g. "$.warn").

import { api, ApiError, enc, listOf } from "../api.js";
import { el } from "../util.js";

const HIDDEN_KEYS = new Set(["created_at", "updated_at"]);
const FIRST_COLUMNS = ["name", "metric", "warn", "crit", "level", "for_seconds", "selector", "kind", "enabled"];

/** default (whole fleet), glob, or machine (one exact key), as srvmon_core.rules.Selector. */
export function scopeOf(rule) {
  const sel = rule.selector || {};
  if (sel.machine && !/[*?[]/.test(sel.machine)) return "machine";
  if (sel.machine || sel.host || (sel.labels && Object.keys(sel.labels).length)) return "glob";
  return "default";
}

/** A selector in words: "containers matching web-* on host rack-1 with tier=db". */
export function describeSelector(sel) {
  if (!sel) return "every machine";
  const kinds = { host: "hosts", container: "containers", any: "every machine" };
  const parts = [kinds[sel.kind] || kinds.any];
  if (sel.machine) parts.push(/[*?[]/.test(sel.machine) ? `matching ${sel.machine}` : `= ${sel.machine}`);
  if (sel.host) parts.push(`on host ${sel.host}`);
  const labels = Object.entries(sel.labels || {}).map(([k, v]) => `${k}=${v}`);
  if (labels.length) parts.push(`with ${labels.join(", ")}`);
  return parts.join(" ");
}

function describe(value) {
  if (value === null || value === undefined) return "–";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Flat `path → value` pairs of a rule's scalar fields ("a.b" for nested objects). */
function scalarFields(obj, hidden, prefix = "") {
  const out = [];
  for (const [key, value] of Object.entries(obj)) {
    if (!prefix && hidden.has(key)) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    if (value && typeof value === "object" && !Array.isArray(value)) out.push(...scalarFields(value, hidden, path));
    else out.push([path, value]);
  }
  return out;
}

function setPath(obj, path, value) {
  const parts = path.split(".");
  let target = obj;
  for (const part of parts.slice(0, -1)) target = target[part];
  target[parts.at(-1)] = value;
}

function parseInput(original, text) {
  if (original === null && text.trim() === "") return null;
  if (typeof original === "number" || (original === null && text.trim() !== "" && !Number.isNaN(Number(text)))) {
    return text.trim() === "" ? null : Number(text);
  }
  if (typeof original === "boolean") return text === "true";
  if (Array.isArray(original)) return text.split(",").map((s) => s.trim()).filter(Boolean);
  return text;
}

/** A form editing `rule` in place; `save(rule)` is awaited, ApiError fields shown inline. */
export function ruleForm(rule, save, submitLabel, hidden = new Set([...HIDDEN_KEYS, "id"])) {
  const inputs = new Map();
  const errors = new Map();
  const general = el("p", { class: "error", hidden: true });
  const form = el("form", { class: "rule-form" });
  for (const [path, value] of scalarFields(rule, hidden)) {
    const input = typeof value === "boolean"
      ? el("select", { name: path, "data-field": path }, el("option", { value: "true" }, "true"), el("option", { value: "false" }, "false"))
      : el("input", { name: path, "data-field": path, value: Array.isArray(value) ? value.join(", ") : describe(value === null ? "" : value) });
    if (typeof value === "boolean") input.value = String(value);
    const error = el("span", { class: "field-error", "data-error-for": path, hidden: true });
    inputs.set(path, { input, original: value });
    errors.set(path, error);
    form.append(el("label", {}, el("span", {}, path), input, error));
  }
  form.append(el("button", { type: "submit" }, submitLabel), general);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const error of errors.values()) error.hidden = true;
    general.hidden = true;
    const edited = structuredClone(rule);
    for (const [path, { input, original }] of inputs) setPath(edited, path, parseInput(original, input.value));
    try {
      await save(edited);
    } catch (error) {
      const path = error instanceof ApiError && error.field ? error.field.replace(/^\$\.?/, "") : "";
      const target = errors.get(path);
      if (target) {
        target.textContent = error.message;
        target.hidden = false;
        inputs.get(path).input.focus();
      } else {
        general.textContent = error.field ? `${error.field}: ${error.message}` : error.message;
        general.hidden = false;
      }
    }
  });
  return form;
}

export function mountRules(root) {
  const list = el("tbody", { id: "rule-rows" });
  const editor = el("div", { id: "rule-editor" });
  const status = el("p", { class: "muted", id: "rules-status" });
  const machineInput = el("input", { id: "applies-machine", placeholder: "machine key, e.g. web-1 or web-1:nginx" });
  const applies = el("div", { id: "applies" });
  let rules = [];

  async function load() {
    try {
      rules = listOf(await api("/api/v1/rules"), "rules");
    } catch (error) {
      status.textContent = `error: ${error.message}`;
      return;
    }
    const seen = new Set(rules.flatMap((r) => Object.keys(r)));
    const keys = [...FIRST_COLUMNS.filter((k) => seen.has(k)),
      ...[...seen].filter((k) => k !== "id" && !FIRST_COLUMNS.includes(k)).sort()];
    list.parentElement.querySelector("thead").replaceChildren(
      el("tr", {}, el("th", {}, "id"), el("th", {}, ""), el("th", {}, "scope"), ...keys.map((k) => el("th", {}, k))));
    list.replaceChildren(...rules.map((rule) => el("tr", { "data-rule-id": rule.id, "data-scope": scopeOf(rule) },
      el("td", {}, describe(rule.id)),
      el("td", {}, el("button", { type: "button", class: "edit-rule", onclick: () => edit(rule) }, "Edit"),
        " ", el("button", { type: "button", onclick: () => override(rule) }, "Override…")),
      el("td", {}, scopeOf(rule)), ...keys.map((k) => el("td", { "data-col": k }, k === "selector" ? describeSelector(rule[k]) : describe(rule[k]))))));
    status.textContent = `${rules.length} rules`;
  }

  function edit(rule) {
    editor.replaceChildren(el("h2", {}, `Edit rule ${describe(rule.id)}`), ruleForm(rule, async (edited) => {
      await api(`/api/v1/rules/${enc(rule.id)}`, { method: "PUT", body: edited });
      editor.replaceChildren(el("p", { class: "ok", id: "rule-saved" }, `rule ${describe(rule.id)} saved`));
      await load();
    }, "Save"));
  }

  function override(rule) {
    const copy = structuredClone(rule);
    const machine = machineInput.value.trim();
    copy.id = machine ? `${rule.id}@${machine}` : `${rule.id}-override`;
    copy.selector = { ...(copy.selector || {}), machine: machine || null };
    editor.replaceChildren(el("h2", {}, "New per-machine override"), ruleForm(copy, async (created) => {
      const answer = await api("/api/v1/rules", { method: "POST", body: created });
      editor.replaceChildren(el("p", { class: "ok", id: "rule-saved" }, `rule ${describe(answer && answer.id)} created`));
      await load();
    }, "Create", HIDDEN_KEYS));
  }

  async function showApplies(event) {
    event.preventDefault();
    const key = machineInput.value.trim();
    if (!key) return;
    try {
      const applied = listOf(await api(`/api/v1/machines/${enc(key)}/rules`), "rules");
      applies.replaceChildren(el("ul", {}, ...applied.map((r) => el("li", { "data-rule-id": r.id },
        `${r.id} (${scopeOf(r)}): ${r.metric || r.kind}`,
        r.warn !== null && r.warn !== undefined ? `, warn ${r.warn}` : "",
        r.crit !== null && r.crit !== undefined ? `, crit ${r.crit}` : ""))));
    } catch (error) {
      applies.replaceChildren(el("p", { class: "error" }, error.message));
    }
  }

  root.append(el("h1", {}, "Rules"),
    el("form", { class: "filters", onsubmit: showApplies },
      el("label", {}, "Machine ", machineInput),
      el("button", { type: "submit" }, "Show the rules that apply"),
      el("span", { class: "muted" }, "(also the target of “Override…”)")),
    applies, status,
    el("div", { class: "scroll-x" }, el("table", { class: "grid", id: "rules" }, el("thead"), list)),
    editor);
  load();
  return { update() {}, unmount() {} };
}
