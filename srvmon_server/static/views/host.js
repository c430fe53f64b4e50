// Host detail: range-picked charts from the series API and a live, sortable container table.

import { api, enc } from "../api.js";
import { drawSeriesChart } from "../charts.js";
import { hostStatus, hosts } from "../store.js";
import { el, fmtByMetric, fmtBytes, fmtPercent, fmtRate, setText } from "../util.js";

export const RANGES = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 };
const HOST_CHARTS = [
  "cpu_percent", "memory_percent", "load_1", "disk_used_percent_max",
  "net_rx_bytes_per_s", "net_tx_bytes_per_s", "disk_read_bytes_per_s", "disk_write_bytes_per_s",
];
const CONTAINER_CHARTS = [
  "cpu_percent", "memory_working_set_bytes", "memory_percent",
  "net_rx_bytes_per_s", "net_tx_bytes_per_s", "block_read_bytes_per_s", "block_write_bytes_per_s",
];

const COLUMNS = [
  ["name", "Name", (c) => c.name, (c) => c.name],
  ["image", "Image", (c) => c.image, (c) => c.image],
  ["project", "Compose project", (c) => c.labels["com.docker.compose.project"] || "", (c) => c.labels["com.docker.compose.project"] || ""],
  ["state", "State", (c) => c.state, (c) => c.state],
  ["health", "Health", (c) => c.health || "–", (c) => c.health || ""],
  ["restarts", "Restarts", (c) => (c.restartCount === null ? "–" : String(c.restartCount)), (c) => c.restartCount ?? -1],
  ["cpu", "CPU", (c) => fmtPercent(c.metrics.cpu_percent), (c) => c.metrics.cpu_percent ?? -1],
  ["memory", "Memory / limit", memoryText, (c) => c.metrics.memory_working_set_bytes ?? -1],
  ["net", "Net rx / tx", (c) => `${fmtRate(c.metrics.net_rx_bytes_per_s)} / ${fmtRate(c.metrics.net_tx_bytes_per_s)}`,
    (c) => (c.metrics.net_rx_bytes_per_s ?? 0) + (c.metrics.net_tx_bytes_per_s ?? 0)],
  ["block", "Block r / w", (c) => `${fmtRate(c.metrics.block_read_bytes_per_s)} / ${fmtRate(c.metrics.block_write_bytes_per_s)}`,
    (c) => (c.metrics.block_read_bytes_per_s ?? 0) + (c.metrics.block_write_bytes_per_s ?? 0)],
];

function memoryText(c) {
  const used = c.metrics.memory_working_set_bytes;
  const pct = c.metrics.memory_percent;
  if (used === undefined) return "–";
  if (!pct) return fmtBytes(used);
  return `${fmtBytes(used)} / ${fmtBytes(used / (pct / 100))} (${pct.toFixed(0)} %)`;
}

function chartPanel(machineKey, metrics) {
  const picker = el("div", { class: "range-picker", role: "group" });
  const charts = el("div", { class: "charts" });
  let range = sessionStorage.getItem("srvmon.range") || "1h";
  const canvases = new Map();
  for (const metric of metrics) {
    const canvas = el("canvas", { class: "chart", "data-metric": metric, height: 140 });
    canvases.set(metric, canvas);
    charts.append(el("figure", {}, el("figcaption", {}, metric), canvas));
  }
  async function load() {
    for (const b of picker.children) b.classList.toggle("active", b.dataset.range === range);
    const to = Math.ceil(Date.now() / 1000) + 1; // include samples of the current second
    const from = to - RANGES[range];
    await Promise.all(metrics.map(async (metric) => {
      const canvas = canvases.get(metric);
      const width = Math.max(100, Math.round(canvas.clientWidth || 600));
      try {
        const data = await api(`/api/v1/machines/${enc(machineKey)}/series?metric=${enc(metric)}&from=${from}&to=${to}&max_points=${width}`);
        drawSeriesChart(canvas, data.points || [], { from, to, format: (v) => fmtByMetric(metric, v) });
        canvas.dataset.points = String((data.points || []).length);
      } catch (error) {
        canvas.dataset.error = error.message;
      }
    }));
  }
  for (const name of Object.keys(RANGES)) {
    picker.append(el("button", {
      type: "button", "data-range": name,
      onclick: () => { range = name; sessionStorage.setItem("srvmon.range", name); load(); },
    }, name));
  }
  load();
  const timer = setInterval(load, 30000);
  return { node: el("section", {}, picker, charts), stop: () => clearInterval(timer) };
}

export function mountHost(root, hostKey, containerName) {
  const host = hosts.get(hostKey);
  const hostLabel = host && host.hostname !== hostKey ? `${host.hostname} (${hostKey})` : hostKey;
  const title = el("h1", {}, containerName ? `${hostLabel} › ${containerName}` : hostLabel);
  const status = el("span", { class: "status-pill" });
  root.append(el("div", { class: "toolbar" }, el("a", { href: "#/" }, "← fleet"), title, status));
  const machineKey = containerName ? `${hostKey}:${containerName}` : hostKey;
  if (containerName) root.firstElementChild.append(el("a", { href: `#/host/${enc(hostKey)}` }, `← ${hostKey}`));
  const panel = chartPanel(machineKey, containerName ? CONTAINER_CHARTS : HOST_CHARTS);
  root.append(panel.node);

  let sortKey = "name";
  let ascending = true;
  const head = el("tr", {}, ...COLUMNS.map(([key, label]) => el("th", {
    "data-sort": key,
    onclick: () => {
      ascending = sortKey === key ? !ascending : true;
      sortKey = key;
      renderTable();
    },
  }, label)));
  const body = el("tbody", { id: "container-rows" });
  const rows = new Map();
  if (!containerName) {
    root.append(el("h2", {}, "Containers"),
      el("div", { class: "scroll-x" }, el("table", { class: "grid", id: "containers" }, el("thead", {}, head), body)));
  }

  function renderTable() {
    const current = hosts.get(hostKey);
    if (!current || containerName) return;
    const [, , , sortValue] = COLUMNS.find(([key]) => key === sortKey);
    const list = [...current.containers.values()].sort((a, b) => {
      const x = sortValue(a);
      const y = sortValue(b);
      const cmp = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return ascending ? cmp : -cmp;
    });
    for (const th of head.children) {
      th.className = th.dataset.sort === sortKey ? (ascending ? "sorted-asc" : "sorted-desc") : "";
    }
    for (const [key, row] of rows) if (!current.containers.has(key)) { row.tr.remove(); rows.delete(key); }
    list.forEach((c, index) => {
      let row = rows.get(c.key);
      if (!row) {
        const cells = COLUMNS.map(() => el("td"));
        const tr = el("tr", { "data-key": c.key, onclick: () => { location.hash = `#/host/${enc(hostKey)}/container/${enc(c.name)}`; } }, ...cells);
        row = { tr, cells };
        rows.set(c.key, row);
      }
      COLUMNS.forEach(([, , text], i) => setText(row.cells[i], text(c)));
      row.tr.classList.toggle("bad", c.state !== "running" || c.health === "unhealthy");
      if (body.children[index] !== row.tr) body.insertBefore(row.tr, body.children[index] || null);
    });
  }

  function update(change) {
    const current = hosts.get(hostKey);
    if (!current) return;
    if (change.all || change.alerts || change.tick || change.hosts.has(hostKey)) {
      const s = hostStatus(current);
      setText(status, s);
      status.dataset.status = s;
      renderTable();
    }
  }
  if (host) update({ hosts: new Set([hostKey]), all: true });
  return { update, unmount: panel.stop };
}
