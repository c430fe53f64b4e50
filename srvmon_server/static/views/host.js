// Host detail: range-picked charts from the series API and a live, sortable container table.

import { api, enc } from "../api.js";
import { drawSeriesChart } from "../charts.js";
import { alerts, hostStatus, hosts, isSilent } from "../store.js";
import { el, fmtBytes, fmtPercent, fmtRate, setText, SEVERITY_RANK } from "../util.js";

export const RANGES = { "15m": 900, "1h": 3600, "24h": 86400, "7d": 604800 };
const LIVE_RANGES = new Set(["15m", "1h"]);
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

/** The charts of one machine: a range picker, one canvas per metric. Points come from the
 * series API; at 15m and 1h each live sample is appended as it arrives (`live`). */
function chartPanel(machineKey, metrics) {
  const picker = el("div", { class: "range-picker", role: "group" });
  const charts = el("div", { class: "charts" });
  let range = sessionStorage.getItem("srvmon.range") || "1h";
  const canvases = new Map();
  const series = new Map();
  let loaded = 0;
  for (const metric of metrics) {
    const canvas = el("canvas", { class: "chart", "data-metric": metric, height: 140 });
    canvases.set(metric, canvas);
    charts.append(el("figure", {}, el("figcaption", {}, metric),
      el("div", { class: "chart-box" }, canvas, el("div", { class: "chart-labels", "aria-hidden": "true" }))));
  }
  function draw(metric, to = Math.ceil(Date.now() / 1000) + 1) {
    const canvas = canvases.get(metric);
    const points = series.get(metric) || [];
    const from = to - RANGES[range];
    while (points.length && points[0][0] < from) points.shift();
    drawSeriesChart(canvas, points, { from, to, metric });
    canvas.dataset.points = String(points.length);
  }
  async function load() {
    for (const b of picker.children) b.classList.toggle("active", b.dataset.range === range);
    const to = Math.ceil(Date.now() / 1000) + 1; // include samples of the current second
    const from = to - RANGES[range];
    const generation = (loaded += 1);
    await Promise.all(metrics.map(async (metric) => {
      const canvas = canvases.get(metric);
      const width = Math.max(100, Math.round(canvas.clientWidth || 600));
      try {
        const data = await api(`/api/v1/machines/${enc(machineKey)}/series?metric=${enc(metric)}&from=${from}&to=${to}&max_points=${width}`);
        if (generation !== loaded) return; // a newer range was picked meanwhile
        series.set(metric, (data.points || []).slice());
        draw(metric, to);
        delete canvas.dataset.error;
      } catch (error) {
        canvas.dataset.error = error.message;
      }
    }));
  }
  /** A live sample of this machine (flat metrics at `timestamp`): append and redraw. */
  function live(metricsNow, timestamp) {
    if (!LIVE_RANGES.has(range) || !metricsNow || !timestamp) return;
    const ts = Date.parse(timestamp) / 1000;
    for (const metric of metrics) {
      const points = series.get(metric);
      const value = metricsNow[metric];
      if (!points || value === undefined || value === null) continue;
      if (points.length && points[points.length - 1][0] >= ts) continue;
      points.push([ts, value, value, value]);
      draw(metric, Math.max(ts + 1, Math.ceil(Date.now() / 1000) + 1));
    }
  }
  for (const name of Object.keys(RANGES)) {
    picker.append(el("button", {
      type: "button", "data-range": name,
      onclick: () => { range = name; sessionStorage.setItem("srvmon.range", name); load(); },
    }, name));
  }
  load();
  // the live ranges move with the samples; the long ones are re-read now and then
  const timer = setInterval(() => { if (!LIVE_RANGES.has(range)) load(); }, 60000);
  let resized = null;
  const observer = new ResizeObserver(() => {
    clearTimeout(resized);
    resized = setTimeout(() => { for (const metric of metrics) if (series.has(metric)) draw(metric); }, 100);
  });
  observer.observe(charts);
  return {
    node: el("section", {}, picker, charts),
    live,
    stop: () => { clearInterval(timer); observer.disconnect(); },
  };
}

/** The container's own state for its pill: its worst firing alert, else its Docker state. */
function containerStatus(host, key) {
  const box = host.containers.get(key);
  if (!box) return { status: "silent", text: "not reported" };
  const text = box.health ? `${box.state} · ${box.health}` : box.state;
  let status = "ok";
  for (const alert of alerts.values()) {
    if (alert.machine !== key || alert.state !== "firing" || alert.silenced) continue;
    if (SEVERITY_RANK[alert.level] > SEVERITY_RANK[status]) status = alert.level;
  }
  if (status === "ok" && (box.state !== "running" || box.health === "unhealthy")) status = "warning";
  if (isSilent(host)) status = "silent";
  return { status, text };
}

export function mountHost(root, hostKey, containerName) {
  const host = hosts.get(hostKey);
  const hostname = host ? host.hostname : hostKey;
  const title = el("h1", { title: containerName ? `${hostKey}:${containerName}` : hostKey },
    containerName ? `${hostname}/${containerName}` : hostname);
  const status = el("span", { class: "status-pill", id: "machine-status" });
  const toolbar = el("div", { class: "toolbar" }, el("a", { href: "#/" }, "← fleet"), title, status);
  root.append(toolbar);
  const machineKey = containerName ? `${hostKey}:${containerName}` : hostKey;
  const back = containerName ? el("a", { href: `#/host/${enc(hostKey)}`, title: hostKey }, `← ${hostname}`) : null;
  if (back) toolbar.append(back);
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
        const tr = el("tr", { "data-key": c.key, title: c.key, onclick: () => { location.hash = `#/host/${enc(hostKey)}/container/${enc(c.name)}`; } }, ...cells);
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
      setText(title, containerName ? `${current.hostname}/${containerName}` : current.hostname);
      if (back) setText(back, `← ${current.hostname}`);
      if (containerName) {
        const { status: s, text } = containerStatus(current, machineKey);
        setText(status, text);
        status.dataset.status = s;
      } else {
        const s = hostStatus(current);
        setText(status, s);
        status.dataset.status = s;
      }
      renderTable();
    }
    if (change.hosts.has(hostKey)) {
      const box = containerName ? current.containers.get(machineKey) : current;
      if (box) panel.live(box.metrics, box.lastSeen);
    }
  }
  if (host) update({ hosts: new Set(), all: true });
  return { update, unmount: panel.stop };
}
