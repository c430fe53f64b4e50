// Alerts: the active list (live from SSE) and the history search with date range and paging.

import { api, enc } from "../api.js";
import { alerts, normalizeAlert } from "../store.js";
import { el, fmtByMetric, fmtLocal, setText, toDate } from "../util.js";

function valueText(a) {
  if (a.value === null && a.threshold === null) return "–";
  return `${fmtByMetric(a.metric, a.value)} vs ${fmtByMetric(a.metric, a.threshold)}`;
}

function alertCells(a) {
  return [
    a.level, a.silenced ? `${a.state} (silenced)` : a.state, a.machine, a.rule, valueText(a),
    fmtLocal(a.since),
  ];
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

export function mountAlerts(root) {
  const active = table(["Severity", "State", "Machine", "Rule", "Value vs threshold", "Since"], "active-alerts");
  root.append(el("h1", {}, "Active alerts"), active.node);
  const rows = new Map();

  function renderActive() {
    const list = [...alerts.values()].sort((x, y) => String(y.since).localeCompare(String(x.since)));
    for (const [fp, row] of rows) if (!alerts.has(fp)) { row.tr.remove(); rows.delete(fp); }
    list.forEach((a, index) => {
      let row = rows.get(a.fingerprint);
      if (!row) {
        const cells = alertCells(a).map(() => el("td"));
        row = { tr: el("tr", { "data-fingerprint": a.fingerprint }, ...cells), cells };
        rows.set(a.fingerprint, row);
      }
      alertCells(a).forEach((text, i) => setText(row.cells[i], text));
      row.tr.dataset.level = a.level || "";
      if (active.body.children[index] !== row.tr) active.body.insertBefore(row.tr, active.body.children[index] || null);
    });
    if (!list.length && !active.body.querySelector(".empty")) {
      active.body.append(el("tr", { class: "empty" }, el("td", { colspan: 6 }, "no active alerts")));
    } else if (list.length) active.body.querySelector(".empty")?.remove();
  }

  const form = el("form", { class: "filters", id: "history-form" },
    el("label", {}, "From ", el("input", { type: "datetime-local", name: "from", step: 1 })),
    el("label", {}, "To ", el("input", { type: "datetime-local", name: "to", step: 1 })),
    el("label", {}, "Machine ", el("input", { type: "text", name: "machine", placeholder: "key or glob" })),
    el("label", {}, "Rule ", el("input", { type: "text", name: "rule", placeholder: "rule id" })),
    el("label", {}, "Severity ", el("select", { name: "severity" },
      el("option", { value: "" }, "any"), el("option", { value: "warning" }, "warning"),
      el("option", { value: "critical" }, "critical"))),
    el("label", {}, "State ", el("select", { name: "state" },
      el("option", { value: "" }, "any"), el("option", { value: "pending" }, "pending"),
      el("option", { value: "firing" }, "firing"), el("option", { value: "resolved" }, "resolved"))),
    el("button", { type: "submit" }, "Search"));
  const info = el("p", { class: "muted", id: "history-info" });
  const byDate = el("ul", { class: "by-date", id: "history-by-date" });
  const history = table(["When", "Machine", "Rule", "Severity", "Transition", "Value vs threshold"], "history-rows");
  const more = el("button", { type: "button", id: "history-more", hidden: true }, "Older →");
  root.append(el("h1", {}, "History"), form, info, byDate, history.node, more);

  let cursor = null;
  let counts = new Map();

  async function search(append) {
    const data = new FormData(form);
    const query = new URLSearchParams({ limit: "100" });
    const from = localInputToEpoch(data.get("from"));
    const to = localInputToEpoch(data.get("to"));
    if (from !== null) query.set("from", String(from));
    if (to !== null) query.set("to", String(to));
    for (const name of ["machine", "rule", "severity", "state"]) if (data.get(name)) query.set(name, data.get(name));
    if (append && cursor) query.set("cursor", cursor);
    if (!append) {
      history.body.replaceChildren();
      counts = new Map();
    }
    setText(info, "loading…");
    try {
      const answer = await api(`/api/v1/alerts/history?${query}`);
      for (const raw of answer.events || []) {
        const e = normalizeAlert(raw);
        const day = toDate(e.at)?.toLocaleDateString() ?? "–";
        counts.set(day, (counts.get(day) || 0) + 1);
        history.body.append(el("tr", { "data-level": e.level },
          el("td", {}, fmtLocal(e.at)), el("td", {}, e.machine), el("td", {}, e.rule),
          el("td", {}, e.level), el("td", {}, `${e.fromState || "?"} → ${e.state}`),
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
  form.addEventListener("submit", (event) => { event.preventDefault(); search(false); });
  more.addEventListener("click", () => search(true));
  renderActive();
  search(false);

  return {
    update(change) { if (change.alerts || change.all) renderActive(); },
    unmount() {},
  };
}
