// Fleet overview: one tile per host, updated in place for changed values only.

import { drawSparkline } from "../charts.js";
import { hostStatus, hosts, silentSince } from "../store.js";
import {
  el, fmtLocal, fmtPercent, fmtRate, makeMatcher, setAttr, setText, SEVERITY_RANK,
} from "../util.js";

const SORTS = {
  name: (a, b) => a.hostname.localeCompare(b.hostname),
  status: (a, b) => SEVERITY_RANK[hostStatus(b)] - SEVERITY_RANK[hostStatus(a)]
    || a.hostname.localeCompare(b.hostname),
  cpu: (a, b) => (b.metrics.cpu_percent ?? -1) - (a.metrics.cpu_percent ?? -1),
  memory: (a, b) => (b.metrics.memory_percent ?? -1) - (a.metrics.memory_percent ?? -1),
};

const TILE_ROWS = [
  ["cpu_percent", "CPU", (m) => fmtPercent(m.cpu_percent), 100],
  ["memory_percent", "Mem", (m) => fmtPercent(m.memory_percent), 100],
  ["disk_used_percent_max", "Disk", (m) => fmtPercent(m.disk_used_percent_max), 100],
  ["net_bytes_per_s", "Net", (m) => (m.net_rx_bytes_per_s === undefined ? "–"
    : `↓${fmtRate(m.net_rx_bytes_per_s)} ↑${fmtRate(m.net_tx_bytes_per_s)}`), 0],
];

function makeTile(host) {
  const link = el("a", { class: "tile-name", href: `#/host/${encodeURIComponent(host.key)}` });
  const silent = el("div", { class: "silent-mark", hidden: true });
  const containers = el("div", { class: "tile-containers" });
  const rows = {};
  const table = el("div", { class: "tile-metrics" });
  for (const [metric, label] of TILE_ROWS) {
    const value = el("span", { class: "tile-value", "data-metric": metric });
    const canvas = el("canvas", { class: "spark", width: 120, height: 22 });
    rows[metric] = { value, canvas };
    table.append(el("span", { class: "tile-label" }, label), value, canvas);
  }
  const node = el("article", { class: "tile", "data-host": host.key }, link, silent, table, containers);
  return { node, link, silent, containers, rows };
}

export function mountOverview(root) {
  const filter = el("input", { type: "search", id: "fleet-filter", placeholder: "filter: name or host id (glob ok)" });
  const sort = el("select", { id: "fleet-sort" },
    ...Object.keys(SORTS).map((name) => el("option", { value: name }, `sort: ${name}`)));
  const summary = el("span", { class: "muted", id: "fleet-summary" });
  const grid = el("section", { class: "tiles", id: "tiles" });
  root.append(el("div", { class: "toolbar" }, filter, sort, summary), grid);
  const tiles = new Map();
  let order = [];

  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  filter.value = params.get("q") || "";
  sort.value = SORTS[params.get("sort")] ? params.get("sort") : "name";

  function updateTile(host, tile) {
    const status = hostStatus(host);
    setAttr(tile.node, "data-status", status);
    setText(tile.link, host.hostname === host.key ? host.key : `${host.hostname} (${host.key})`);
    const silent = status === "silent";
    tile.silent.hidden = !silent;
    if (silent) setText(tile.silent, `silent since ${fmtLocal(silentSince(host))}`);
    for (const [metric, , format, fixedMax] of TILE_ROWS) {
      const row = tile.rows[metric];
      setText(row.value, format(host.metrics));
      drawSparkline(row.canvas, host.rings[metric], fixedMax);
    }
    let bad = 0;
    for (const c of host.containers.values()) {
      if (c.state !== "running" || c.health === "unhealthy") bad += 1;
    }
    setText(tile.containers, `${host.containers.size} containers${bad ? `, ${bad} unhealthy/stopped` : ""}`);
    tile.containers.classList.toggle("bad", bad > 0);
  }

  function relayout() {
    const match = makeMatcher(filter.value);
    const sorted = [...hosts.values()].sort(SORTS[sort.value]);
    let shown = 0;
    for (const host of sorted) {
      const tile = tiles.get(host.key);
      const visible = match(host.hostname) || match(host.hostId);
      tile.node.hidden = !visible;
      if (visible) shown += 1;
    }
    const keys = sorted.map((h) => h.key);
    if (keys.join("\n") !== order.join("\n")) {
      order = keys;
      grid.replaceChildren(...keys.map((k) => tiles.get(k).node));
    }
    setText(summary, `${shown} of ${hosts.size} hosts`);
  }

  function update(change) {
    for (const [key, tile] of tiles) {
      if (!hosts.has(key)) {
        tile.node.remove();
        tiles.delete(key);
      }
    }
    for (const host of hosts.values()) {
      let tile = tiles.get(host.key);
      if (!tile) {
        tile = makeTile(host);
        tiles.set(host.key, tile);
      }
      if (change.all || change.alerts || change.hosts.has(host.key) || change.tick) updateTile(host, tile);
    }
    relayout();
  }

  function remember() {
    const query = new URLSearchParams({ q: filter.value, sort: sort.value });
    history.replaceState(null, "", `#/?${query}`);
    relayout();
  }
  filter.addEventListener("input", remember);
  sort.addEventListener("change", remember);
  update({ hosts: new Set(), alerts: true, all: true });
  return { update, unmount() {} };
}
