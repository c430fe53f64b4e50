// Alerts: the active list (live from SSE, values refreshed from the engine, one-click
// silence per row) and the history search by date range and machine name or glob.

import { api } from "../api.js";
import { alerts, normalizeAlert, refreshAlertValues } from "../store.js";
import { el, fmtByMetric, fmtLocal, setText, toDate } from "../util.js";

export const SILENCE_DURATIONS = [["15m", 900], ["1h", 3600], ["4h", 14400], ["24h", 86400], ["7d", 604800]];
const VALUE_REFRESH_MS = 5000;

function valueText(a) {
  if (a.value === null && a.threshold === null) return "–";
  return `${fmtByMetric(a.metric, a.value)} vs ${fmtByMetric(a.metric, a.threshold)}`;
}

function alertCells(a) {
  return [
    a.level, a.silenced ? `${a.state} (silenced)` : a.state, a.display, a.rule, valueText(a),
    fmtLocal(a.since),
  ];
}

function transitionText(e) {
  if (e.kind === "silenced" || e.kind === "unsilenced") return `${e.state} (${e.kind})`;
  return `${e.fromState || "?"} → ${e.state}`;
}

function table(headers, id) {
  const body = el("tbody", { id });
  const node = el("div", { class: "scroll-x" }, el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), body));
  return { node, body };
}

/** A local `datetime-local` value (no zone) as epoch seconds, read in the browser's zone. */
function localInputToEpoch(value) {
  const date = toDate(value);
  return date ? Math.floor(date.getTime() / 1000) : null;
}

/** "vm picks 2 machines (vm, vm) — vm is the name of 2 machines: <key>, <key>". */
export function resolutionText(picked) {
  if (!picked) return "";
  const names = picked.machines.map((m) => m.display);
  const more = picked.count > names.length ? `, … (${picked.count} in all)` : "";
  let text = picked.count
    ? `“${picked.pattern}” picks ${picked.count} machine${picked.count === 1 ? "" : "s"}: ${names.join(", ")}${more}`
    : `“${picked.pattern}” picks no machine now (matched as a key in the history)`;
  for (const [name, keys] of Object.entries(picked.shared || {})) {
    text += ` — ${keys.length} machines share the name ${name}: ${keys.join(", ")}`;
  }
  return text;
}

/** The one-click silence of a row: its machine (by key) and its rule, for a duration. */
function silenceControls(alert, message) {
  const duration = el("select", { class: "silence-for", "aria-label": "silence for" },
    ...SILENCE_DURATIONS.map(([name, seconds]) => el("option", { value: seconds, selected: name === "1h" }, name)));
  const button = el("button", { type: "button", class: "silence-alert" }, "Silence");
  button.addEventListener("click", async (event) => {
    event.stopPropagation();
    const seconds = Number(duration.value);
    button.disabled = true;
    try {
      await api("/api/v1/silences", {
        method: "POST",
        body: {
          matchers: { machine: alert.machine, rule: alert.ruleId },
          ends_at: new Date(Date.now() + seconds * 1000).toISOString(),
          comment: `silenced from the alerts screen: ${alert.rule} on ${alert.display}`,
        },
      });
      setText(message, `silenced ${alert.rule} on ${alert.display} for ${duration.selectedOptions[0].text}`);
    } catch (error) {
      setText(message, `error: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  });
  return el("span", { class: "row-actions" }, duration, button);
}

export function mountAlerts(root) {
  const active = table(["Severity", "State", "Machine", "Rule", "Value vs threshold", "Since", ""], "active-alerts");
  const activeMessage = el("p", { class: "muted", id: "active-message" });
  root.append(el("h1", {}, "Active alerts"), activeMessage, active.node);
  const rows = new Map();

  function renderActive() {
    const list = [...alerts.values()].sort((x, y) => String(y.since).localeCompare(String(x.since)));
    for (const [fp, row] of rows) if (!alerts.has(fp)) { row.tr.remove(); rows.delete(fp); }
    list.forEach((a, index) => {
      let row = rows.get(a.fingerprint);
      if (!row) {
        const cells = alertCells(a).map(() => el("td"));
        const controls = silenceControls(a, activeMessage);
        const actions = el("td", {}, controls);
        row = { tr: el("tr", { "data-fingerprint": a.fingerprint }, ...cells, actions), cells, controls };
        rows.set(a.fingerprint, row);
      }
      alertCells(a).forEach((text, i) => setText(row.cells[i], text));
      row.cells[2].title = a.machine;
      row.tr.dataset.level = a.level || "";
      row.tr.dataset.silenced = String(a.silenced);
      row.controls.hidden = a.silenced; // already silenced: the Silences screen expires it
      if (active.body.children[index] !== row.tr) active.body.insertBefore(row.tr, active.body.children[index] || null);
    });
    if (!list.length && !active.body.querySelector(".empty")) {
      active.body.append(el("tr", { class: "empty" }, el("td", { colspan: 7 }, "no active alerts")));
    } else if (list.length) active.body.querySelector(".empty")?.remove();
  }

  const form = el("form", { class: "filters", id: "history-form" },
    el("label", {}, "From ", el("input", { type: "datetime-local", name: "from", step: 1 })),
    el("label", {}, "To ", el("input", { type: "datetime-local", name: "to", step: 1 })),
    el("label", { title: "a hostname (vm), host/container (vm/db), a key, or a glob (web-*, vm/*, */db)" },
      "Machine ", el("input", { type: "text", name: "machine", placeholder: "name or glob: vm, vm/db, web-*", list: "machine-names" })),
    el("datalist", { id: "machine-names" }),
    el("label", {}, "Rule ", el("input", { type: "text", name: "rule", placeholder: "rule id" })),
    el("label", {}, "Severity ", el("select", { name: "severity" },
      el("option", { value: "" }, "any"), el("option", { value: "warning" }, "warning"),
      el("option", { value: "critical" }, "critical"))),
    el("label", {}, "State ", el("select", { name: "state" },
      el("option", { value: "" }, "any"), el("option", { value: "pending" }, "pending"),
      el("option", { value: "firing" }, "firing"), el("option", { value: "resolved" }, "resolved"))),
    el("button", { type: "submit" }, "Search"));
  const picked = el("p", { class: "muted", id: "history-machines" });
  const info = el("p", { class: "muted", id: "history-info" });
  const byDate = el("ul", { class: "by-date", id: "history-by-date" });
  const history = table(["When", "Machine", "Rule", "Severity", "Transition", "Value vs threshold"], "history-rows");
  const more = el("button", { type: "button", id: "history-more", hidden: true }, "Older →");
  root.append(el("h1", {}, "History"), form, picked, info, byDate, history.node, more);

  let cursor = null;
  let counts = new Map();

  async function search(append) {
    const data = new FormData(form);
    const query = new URLSearchParams({ limit: "100" });
    const from = localInputToEpoch(data.get("from"));
    const to = localInputToEpoch(data.get("to"));
    if (from !== null) query.set("from", String(from));
    if (to !== null) query.set("to", String(to));
    for (const name of ["machine", "rule", "severity", "state"]) if (data.get(name)) query.set(name, data.get(name).trim());
    if (append && cursor) query.set("cursor", cursor);
    if (!append) {
      history.body.replaceChildren();
      counts = new Map();
    }
    setText(info, "loading…");
    try {
      const answer = await api(`/api/v1/alerts/history?${query}`);
      setText(picked, resolutionText(answer.machines));
      for (const raw of answer.events || []) {
        const e = normalizeAlert(raw);
        const day = toDate(e.at)?.toLocaleDateString() ?? "–";
        counts.set(day, (counts.get(day) || 0) + 1);
        history.body.append(el("tr", { "data-level": e.level, "data-machine": e.machine },
          el("td", {}, fmtLocal(e.at)), el("td", { title: e.machine }, e.display), el("td", {}, e.rule),
          el("td", {}, e.level), el("td", {}, transitionText(e)),
          el("td", {}, valueText(e))));
      }
      cursor = answer.next_cursor || null;
      more.hidden = !cursor;
      byDate.replaceChildren(...[...counts].map(([day, n]) => el("li", {}, `${day}: ${n}`)));
      setText(info, `${history.body.children.length} events${cursor ? " (more available)" : ""}`);
    } catch (error) {
      setText(info, `error: ${error.message}`);
    }
  }
  async function suggestNames() {
    try {
      const answer = await api("/api/v1/resolve?machine=*");
      const names = [...new Set(answer.machines.map((m) => m.display))];
      form.querySelector("#machine-names").replaceChildren(...names.map((n) => el("option", { value: n })));
    } catch {
      // suggestions are a convenience
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); search(false); });
  more.addEventListener("click", () => search(true));
  renderActive();
  search(false);
  suggestNames();
  const timer = setInterval(() => refreshAlertValues().catch(() => {}), VALUE_REFRESH_MS);

  return {
    update(change) { if (change.alerts || change.all) renderActive(); },
    unmount() { clearInterval(timer); },
  };
}
