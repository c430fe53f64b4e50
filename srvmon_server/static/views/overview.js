// Fleet overview: one tile per host, or one small cell per host in dense mode (the whole
// room at a glance), drawn from the server's host summaries. The browser spends its time
// on what is on screen: only tiles in view are drawn (IntersectionObserver), a tile that
// changed off screen is drawn when it scrolls in, drawing never reads layout, and a
// host's colour comes from the store's per-host worst-alert index.

import { CELL_GAP, CellPainter } from "../cells.js";
import { drawSpark, makeSparkCanvas } from "../spark.js";
import { hostStatus, hosts, silentSince, worstAlert } from "../store.js";
import {
  el, fmtByMetric, fmtLocal, fmtPercent, fmtRate, makeMatcher, setAttr, setText, SEVERITY_RANK,
} from "../util.js";

const DENSE_ABOVE = 48;
/** `auto` mode switches to dense cells above this many hosts (about two screens of tiles). */
const METRIC_RESORT_MS = 2000;
const MODES = ["auto", "tiles", "dense"];
const SPARK_COLOR = "#5a9be6";

const byName = (a, b) => a.hostname.localeCompare(b.hostname) || a.key.localeCompare(b.key);
const SORTS = {
  status: (a, b) => SEVERITY_RANK[hostStatus(b)] - SEVERITY_RANK[hostStatus(a)] || byName(a, b),
  name: byName,
  cpu: (a, b) => (b.metrics.cpu_percent ?? -1) - (a.metrics.cpu_percent ?? -1) || byName(a, b),
  memory: (a, b) => (b.metrics.memory_percent ?? -1) - (a.metrics.memory_percent ?? -1) || byName(a, b),
};

const TILE_ROWS = [
  ["cpu_percent", "CPU", (m) => fmtPercent(m.cpu_percent), 100],
  ["memory_percent", "Mem", (m) => fmtPercent(m.memory_percent), 100],
  ["disk_used_percent_max", "Disk", (m) => fmtPercent(m.disk_used_percent_max), 100],
  ["net_bytes_per_s", "Net", (m) => (m.net_rx_bytes_per_s === undefined ? "–"
    // no-break spaces inside each figure: a narrow tile wraps between them, never clips one
    : `↓${fmtRate(m.net_rx_bytes_per_s)} ↑${fmtRate(m.net_tx_bytes_per_s)}`.replace(/ (?=[KMGTP]?i?B)/g, "\u00a0")), 0],
];

function hostLabel(host) {
  return host.hostname === host.key ? host.key : `${host.hostname} (${host.key})`;
}

function containersText(counts) {
  const bad = counts.problems || 0;
  return `${counts.total || 0} containers${bad ? `, ${bad} unhealthy/stopped` : ""}`;
}

function alertText(alert) {
  if (!alert) return "";
  return `${alert.level}: ${alert.rule} ${fmtByMetric(alert.metric || "", alert.value)}`
    + (alert.machine && alert.machine !== alert.hostId ? ` (${alert.machine.slice(alert.machine.lastIndexOf(":") + 1)})` : "");
}

// --- tiles --------------------------------------------------------------------------------

function makeTile(host) {
  const link = el("a", { class: "tile-name", href: `#/host/${encodeURIComponent(host.key)}` });
  const silent = el("div", { class: "silent-mark", hidden: true });
  const alert = el("div", { class: "tile-alert", hidden: true });
  const containers = el("div", { class: "tile-containers" });
  const rows = {};
  const table = el("div", { class: "tile-metrics" });
  for (const [metric, label] of TILE_ROWS) {
    const value = el("span", { class: "tile-value", "data-metric": metric });
    const canvas = makeSparkCanvas();
    rows[metric] = { value, canvas };
    table.append(el("span", { class: "tile-label" }, label), value, canvas);
  }
  const node = el("article", { class: "tile", "data-host": host.key }, link, silent, alert, table, containers);
  return { node, draw: (h, status) => drawTile(h, status, { link, silent, alert, containers, rows }) };
}

function drawTile(host, status, parts) {
  setText(parts.link, host.hostname); // the name people use; the key on hover
  setAttr(parts.link, "title", host.key);
  const silent = status === "silent";
  parts.silent.hidden = !silent;
  if (silent) setText(parts.silent, `silent since ${fmtLocal(silentSince(host))}`);
  const worst = worstAlert(host.key);
  parts.alert.hidden = !worst;
  if (worst) setText(parts.alert, alertText(worst));
  for (const [metric, , format, fixedMax] of TILE_ROWS) {
    const row = parts.rows[metric];
    setText(row.value, format(host.metrics));
    drawSpark(row.canvas, host.rings[metric], fixedMax, SPARK_COLOR);
  }
  setText(parts.containers, containersText(host.counts));
  parts.containers.classList.toggle("bad", (host.counts.problems || 0) > 0);
}

// --- dense cells --------------------------------------------------------------------------
// The pixels are on one canvas (cells.js); each host has a transparent link laid over its
// cell, for the click, the keyboard, the hover title and its data attributes.

function makeCell(host, painter) {
  const node = el("a", {
    class: "cell", "data-host": host.key, href: `#/host/${encodeURIComponent(host.key)}`,
    "aria-label": host.hostname,
  });
  const entry = { node, index: -1 };
  entry.draw = (h, status) => {
    const m = h.metrics;
    setAttr(node, "data-cpu", m.cpu_percent === undefined ? "" : m.cpu_percent.toFixed(1));
    setAttr(node, "data-mem", m.memory_percent === undefined ? "" : m.memory_percent.toFixed(1));
    if (entry.index >= 0) {
      painter.paint(entry.index, status, m.cpu_percent, m.memory_percent, h.hostname.split(".")[0]);
    }
  };
  return entry;
}

function cellTitle(host) {
  const m = host.metrics;
  const lines = [hostLabel(host), `${hostStatus(host)}`,
    `CPU ${fmtPercent(m.cpu_percent)} · memory ${fmtPercent(m.memory_percent)} · disk ${fmtPercent(m.disk_used_percent_max)}`,
    containersText(host.counts)];
  const worst = worstAlert(host.key);
  if (worst) lines.push(alertText(worst));
  if (hostStatus(host) === "silent") lines.push(`silent since ${fmtLocal(silentSince(host))}`);
  return lines.join("\n");
}

/** The largest cell (width in px) at which `count` cells fit `width` × `height`. */
export function fitCell(count, width, height, gap = CELL_GAP) {
  for (let size = 96; size > 24; size -= 1) {
    const perRow = Math.max(1, Math.floor((width + gap) / (size + gap)));
    const rows = Math.ceil(count / perRow);
    if (rows * (Math.round(size * 0.7) + gap) <= height) return size;
  }
  return 24;
}

// --- the view -----------------------------------------------------------------------------

export function mountOverview(root) {
  const filter = el("input", { type: "search", id: "fleet-filter", placeholder: "filter: name or host id (glob ok)" });
  const sort = el("select", { id: "fleet-sort" },
    ...Object.keys(SORTS).map((name) => el("option", { value: name }, `sort: ${name}`)));
  const mode = el("select", { id: "fleet-mode" },
    ...MODES.map((name) => el("option", { value: name }, `view: ${name}`)));
  const summary = el("span", { class: "muted", id: "fleet-summary" });
  const states = el("span", { class: "fleet-states", id: "fleet-states" });
  const grid = el("section", { class: "tiles", id: "tiles" });
  const canvas = el("canvas", { class: "cells-canvas", "aria-hidden": "true" });
  const links = el("div", { class: "cells-links" });
  const painter = new CellPainter(canvas);
  root.append(el("div", { class: "toolbar" }, filter, sort, mode, summary, states), grid);

  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  filter.value = params.get("q") || "";
  sort.value = SORTS[params.get("sort")] ? params.get("sort") : "status";
  mode.value = MODES.includes(params.get("mode")) ? params.get("mode") : "auto";

  let dense = false;
  let container = grid; // where the tiles, or the cells' links, are
  const nodes = new Map(); // host key -> {node, draw, laidStatus, index}
  const visible = new Set();
  const stale = new Set();
  let order = [];
  let layoutWanted = true;
  let metricsMoved = false;
  let lastResort = 0;

  // Tiles: the browser says which are on screen. Dense cells: their place on the canvas
  // says it (no observer, no wait for one: a fitted grid is drawn in the frame it is laid).
  let geometry = null; // dense: {top, cols, rowHeight}
  const observer = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const key = entry.target.dataset.host;
      if (entry.isIntersecting) {
        visible.add(key);
        if (stale.has(key)) draw(key);
      } else {
        visible.delete(key);
      }
    }
  }, { rootMargin: "200px 0px" });

  function onScreen(key) {
    if (!dense) return visible.has(key);
    const entry = nodes.get(key);
    if (!geometry || !entry || entry.index < 0) return false;
    const y = geometry.top + Math.floor(entry.index / geometry.cols) * geometry.rowHeight;
    return y + geometry.rowHeight > window.scrollY - 200 && y < window.scrollY + window.innerHeight + 200;
  }

  function drawStaleOnScreen() {
    for (const key of stale) if (onScreen(key)) draw(key);
  }

  function draw(key) {
    const host = hosts.get(key);
    const entry = nodes.get(key);
    if (!host || !entry) return;
    stale.delete(key);
    const status = hostStatus(host);
    setAttr(entry.node, "data-status", status);
    entry.draw(host, status);
  }

  function wantsDense() {
    return mode.value === "dense" || (mode.value === "auto" && hosts.size > DENSE_ABOVE);
  }

  function add(host) {
    const entry = dense ? makeCell(host, painter) : makeTile(host);
    entry.laidStatus = null;
    nodes.set(host.key, entry);
    stale.add(host.key);
    if (!dense) observer.observe(entry.node);
    layoutWanted = true;
  }

  function remove(key) {
    const entry = nodes.get(key);
    if (!entry) return;
    observer.unobserve(entry.node);
    entry.node.remove();
    nodes.delete(key);
    visible.delete(key);
    stale.delete(key);
    layoutWanted = true;
  }

  function rebuild() {
    for (const key of [...nodes.keys()]) remove(key);
    dense = wantsDense();
    grid.className = dense ? "cells" : "tiles";
    container = dense ? links : grid;
    links.replaceChildren();
    grid.replaceChildren(...(dense ? [canvas, links] : []));
    order = [];
    for (const host of hosts.values()) add(host);
  }

  function relayout() {
    layoutWanted = false;
    metricsMoved = false;
    lastResort = performance.now();
    const match = makeMatcher(filter.value);
    const sorted = [...hosts.values()].sort(SORTS[sort.value]);
    const counts = { critical: 0, warning: 0, silent: 0 };
    let shown = 0;
    for (const host of sorted) {
      const entry = nodes.get(host.key);
      const status = hostStatus(host);
      entry.laidStatus = status;
      if (status in counts) counts[status] += 1;
      const show = match(host.hostname) || match(host.hostId);
      if (entry.node.hidden === show) entry.node.hidden = !show;
      if (show) shown += 1;
    }
    const keys = sorted.map((h) => h.key);
    if (keys.length !== order.length || keys.some((k, i) => k !== order[i])) {
      order = keys;
      container.replaceChildren(...keys.map((k) => nodes.get(k).node));
    }
    setText(summary, `${shown} of ${hosts.size} hosts`);
    setText(states, ["critical", "warning", "silent"].filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(" · "));
    if (dense) fit(shown);
  }

  /** Size the cells so that `count` fit the window, lay the canvas out to match the
   *  links' grid, and repaint every shown cell on screen. */
  function fit(count) {
    // one layout read per relayout (not per cell), before this frame's writes
    const top = Math.max(0, grid.getBoundingClientRect().top + window.scrollY);
    const width = document.documentElement.clientWidth - 2 * 16;
    const size = fitCell(count, width, window.innerHeight - top - 8);
    const cols = Math.max(1, Math.floor((width + CELL_GAP) / (size + CELL_GAP)));
    geometry = { top, cols, rowHeight: Math.round(size * 0.7) + CELL_GAP };
    grid.style.setProperty("--cell", `${size}px`);
    grid.style.setProperty("--cell-h", `${Math.round(size * 0.7)}px`);
    grid.style.setProperty("--cols", String(cols));
    painter.layout(count, cols, size);
    let index = 0;
    for (const key of order) {
      const entry = nodes.get(key);
      entry.index = entry.node.hidden ? -1 : index++;
      if (entry.index >= 0) stale.add(key);
    }
    drawStaleOnScreen();
  }

  function update(change) {
    if (change.tick) {
      if (metricsMoved && (sort.value === "cpu" || sort.value === "memory")
        && performance.now() - lastResort >= METRIC_RESORT_MS) relayout();
      return;
    }
    if (change.all) {
      if (wantsDense() !== dense) rebuild();
      for (const key of [...nodes.keys()]) if (!hosts.has(key)) remove(key);
      for (const host of hosts.values()) {
        if (!nodes.has(host.key)) add(host);
        stale.add(host.key);
      }
      layoutWanted = true;
    }
    const keys = change.all ? [...nodes.keys()] : change.hosts;
    for (const key of keys) {
      const host = hosts.get(key);
      if (!host) continue;
      if (!nodes.has(key)) {
        if (wantsDense() !== dense) rebuild();
        else add(host);
      }
      const entry = nodes.get(key);
      stale.add(key);
      if (entry.laidStatus !== hostStatus(host)) layoutWanted = true; // re-sort, recount
      metricsMoved = true;
      if (onScreen(key)) draw(key);
    }
    if (layoutWanted) relayout();
  }

  grid.addEventListener("mouseover", (event) => {
    const cell = event.target.closest(".cell");
    if (cell && hosts.has(cell.dataset.host)) cell.title = cellTitle(hosts.get(cell.dataset.host));
  });

  function remember() {
    const query = new URLSearchParams({ q: filter.value, sort: sort.value, mode: mode.value });
    history.replaceState(null, "", `#/?${query}`);
    if (wantsDense() !== dense) rebuild();
    relayout();
  }
  filter.addEventListener("input", remember);
  sort.addEventListener("change", remember);
  mode.addEventListener("change", remember);
  const onResize = () => { if (dense) relayout(); };
  window.addEventListener("resize", onResize);
  let scrolled = false;
  const onScroll = () => {
    if (!dense || scrolled) return;
    scrolled = true;
    requestAnimationFrame(() => { scrolled = false; drawStaleOnScreen(); });
  };
  window.addEventListener("scroll", onScroll, { passive: true });

  rebuild();
  relayout();
  return {
    update,
    unmount() {
      observer.disconnect();
      window.removeEventListener("resize", onResize);
      window.removeEventListener("scroll", onScroll);
    },
  };
}
