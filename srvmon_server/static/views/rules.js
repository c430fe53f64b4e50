// Rules: every rule in a compact table (edit, override for a machine, delete with
// confirmation), a new-rule button, and the rules that apply to one machine, named as
// people name it (vm, vm/db). Every change says whether it worked and refreshes the lists.

import { api, enc, listOf } from "../api.js";
import { el, setText } from "../util.js";
import { machinePreview } from "./silences.js";
import { newRule, ruleForm } from "./ruleform.js";

/** default (whole fleet), glob, or machine (one exact name), as srvmon_core.rules.Selector. */
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

/** What a rule watches, in words: "cpu_percent ≥", "silent 30 s", "container_stopped". */
function watches(rule) {
  if (rule.kind === "threshold") return `${rule.metric} ${rule.direction === "below" ? "≤" : "≥"}`;
  if (rule.kind === "silent") return `silent ${rule.silent_seconds} s`;
  return rule.kind;
}

function thresholdTitle(rule, level) {
  const recovery = rule[`${level}_recovery`];
  return recovery === null || recovery === undefined ? "" : `clears at ${recovery}`;
}

export function mountRules(root) {
  const list = el("tbody", { id: "rule-rows" });
  const editor = el("div", { id: "rule-editor" });
  const status = el("p", { class: "muted", id: "rules-status", role: "status" });
  const machineInput = el("input", { id: "applies-machine", placeholder: "vm, vm/db or a key", list: "applies-names" });
  const picks = el("small", { class: "muted", id: "applies-picks" });
  const applies = el("div", { id: "applies" });
  let shownMachine = "";

  function say(text, ok = true) {
    status.className = ok ? "ok" : "error";
    setText(status, text);
  }

  async function load() {
    let rules;
    try {
      rules = listOf(await api("/api/v1/rules"), "rules");
    } catch (error) {
      say(`error: ${error.message}`, false);
      return;
    }
    list.replaceChildren(...rules.map(row));
    if (!status.textContent || status.className === "muted") setText(status, `${rules.length} rules`);
    list.dataset.count = String(rules.length);
  }

  function row(rule) {
    const actions = el("td", { class: "row-actions" });
    const tr = el("tr", { "data-rule-id": rule.id, "data-scope": scopeOf(rule), title: `id ${rule.id}` },
      el("td", { "data-col": "name" }, rule.name || rule.id),
      el("td", { "data-col": "scope" }, scopeOf(rule)),
      el("td", { "data-col": "selector" }, describeSelector(rule.selector)),
      el("td", { "data-col": "watches" }, watches(rule)),
      el("td", { "data-col": "warn", title: thresholdTitle(rule, "warn") }, describe(rule.warn)),
      el("td", { "data-col": "crit", title: thresholdTitle(rule, "crit") }, describe(rule.crit)),
      el("td", { "data-col": "for_seconds" }, rule.for_seconds ? `${rule.for_seconds} s` : "–"),
      el("td", { "data-col": "enabled" }, rule.enabled === false ? "off" : "on"),
      actions);
    function normal() {
      actions.replaceChildren(
        el("button", { type: "button", class: "edit-rule", onclick: () => edit(rule) }, "Edit"),
        el("button", { type: "button", class: "override-rule", onclick: () => override(rule) }, "Override…"),
        el("button", { type: "button", class: "delete-rule", onclick: confirmDelete }, "Delete"));
    }
    function confirmDelete() {
      actions.replaceChildren(
        el("span", { class: "confirm" }, `Delete ${rule.id}?`),
        el("button", { type: "button", class: "confirm-delete danger", onclick: () => remove(rule) }, "Yes, delete"),
        el("button", { type: "button", class: "cancel-delete", onclick: normal }, "Cancel"));
    }
    normal();
    return tr;
  }

  async function changed(message) {
    say(message);
    await load();
    if (shownMachine) await showApplies(null, shownMachine);
  }

  async function remove(rule) {
    try {
      await api(`/api/v1/rules/${enc(rule.id)}`, { method: "DELETE" });
    } catch (error) {
      say(`error: rule ${rule.id} was not deleted: ${error.message}`, false);
      return;
    }
    if (editor.dataset.ruleId === rule.id) closeEditor();
    await changed(`rule ${rule.id} deleted`);
  }

  function closeEditor() {
    editor.replaceChildren();
    delete editor.dataset.ruleId;
  }

  function open(title, form, ruleId) {
    editor.replaceChildren(el("h2", {}, title), form);
    editor.dataset.ruleId = ruleId;
    editor.scrollIntoView({ block: "nearest" });
  }

  function saved(text) {
    editor.replaceChildren(el("p", { class: "ok", id: "rule-saved" }, text));
    delete editor.dataset.ruleId;
  }

  function edit(rule) {
    open(`Edit rule ${rule.id}`, ruleForm(rule, {
      submitLabel: "Save",
      onCancel: closeEditor,
      save: async (edited) => {
        await api(`/api/v1/rules/${enc(rule.id)}`, { method: "PUT", body: edited });
        saved(`rule ${rule.id} saved`);
        await changed(`rule ${rule.id} saved`);
      },
    }), rule.id);
  }

  function create(rule, title) {
    open(title, ruleForm(rule, {
      submitLabel: "Create",
      isNew: true,
      onCancel: closeEditor,
      save: async (created) => {
        const answer = await api("/api/v1/rules", { method: "POST", body: created });
        const id = describe(answer && answer.id);
        saved(`rule ${id} created`);
        await changed(`rule ${id} created`);
      },
    }), rule.id);
  }

  function override(rule) {
    const copy = structuredClone(rule);
    const machine = machineInput.value.trim();
    copy.id = machine ? `${rule.id}@${machine}` : `${rule.id}-override`;
    copy.name = machine ? `${rule.name || rule.id} (${machine})` : copy.name;
    copy.selector = { ...(copy.selector || {}), machine: machine || null };
    create(copy, machine ? `Override ${rule.id} for ${machine}` : `Override ${rule.id}`);
  }

  async function showApplies(event, name = machineInput.value.trim()) {
    if (event) event.preventDefault();
    if (!name) return;
    try {
      const answer = await api(`/api/v1/machines/${enc(name)}/rules`);
      shownMachine = name;
      const applied = listOf(answer, "rules");
      applies.replaceChildren(
        el("p", { class: "muted", title: answer.key }, `${applied.length} rules apply to ${name}`),
        el("ul", {}, ...applied.map((r) => el("li", { "data-rule-id": r.id },
          `${r.name || r.id} (${r.id}, ${scopeOf(r)}): ${watches(r)}`,
          r.warn !== null && r.warn !== undefined ? ` warn ${r.warn}` : "",
          r.crit !== null && r.crit !== undefined ? `, crit ${r.crit}` : ""))));
    } catch (error) {
      shownMachine = "";
      applies.replaceChildren(el("p", { class: "error" }, error.message));
    }
  }

  const preview = machinePreview(machineInput, picks);
  root.append(
    el("div", { class: "toolbar" }, el("h1", {}, "Rules"),
      el("button", { type: "button", id: "new-rule", onclick: () => create(newRule(), "New rule") }, "New rule")),
    el("form", { class: "filters", onsubmit: showApplies },
      el("label", { title: "a hostname (vm), host/container (vm/db) or a key" }, "Machine ", machineInput),
      el("datalist", { id: "applies-names" }),
      el("button", { type: "submit" }, "Show the rules that apply"),
      el("span", { class: "muted" }, "(also the target of “Override…”)")),
    picks, applies, editor, status,
    el("div", { class: "scroll-x" }, el("table", { class: "grid", id: "rules" },
      el("thead", {}, el("tr", {}, ...["Rule", "Scope", "Applies to", "Watches", "Warn", "Crit", "For", "On", ""]
        .map((h) => el("th", {}, h)))), list)));
  api("/api/v1/resolve?machine=*").then((answer) => {
    const names = [...new Set(answer.machines.map((m) => m.display))];
    root.querySelector("#applies-names").replaceChildren(...names.map((n) => el("option", { value: n })));
  }).catch(() => {});
  load();
  preview();
  return { update() {}, unmount() {} };
}
