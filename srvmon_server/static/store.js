// In-memory state of the room, fed by REST snapshots and SSE events. Bounded in size:
// one entry per host (its server-computed summary and sparkline rings), the containers of
// the host being looked at, a map of active alerts and a per-host worst-alert index.

import { api, enc, listOf } from "./api.js";
import { Ring, SEVERITY_RANK } from "./util.js";

export const SPARK_POINTS = 120;
export const TILE_METRICS = ["cpu_percent", "memory_percent", "disk_used_percent_max", "net_bytes_per_s"];
const MACHINES_PAGE = 500;
const LAG_SAMPLES = 4096;

export const hosts = new Map();
export const alerts = new Map();
const alertsByHost = new Map(); // host key -> Map(fingerprint -> alert)
const worstByHost = new Map(); // host key -> the worst firing alert that is not silenced

const dirtyHosts = new Set();
let alertsDirty = false;
let everything = false;
let scheduled = false;
const subscribers = new Set();

// Freshness: how old the newest data is, and how late each host's newest sample was shown.
let serverOffsetMs = 0;
let newestSampleMs = 0;
const lags = new Float64Array(LAG_SAMPLES);
let lagCount = 0;

/** `fn({hosts: Set<key>, alerts: bool, all: bool})` is called once per animation frame at most. */
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

/**
 * Redraws happen at most every FLUSH_GAP_MS (then at the next animation frame): what a
 * frame costs the browser is mostly fixed (style, paint, commit), so 4 frames a second
 * that each draw 125 hosts cost far less than 60 that each draw 8.
 */
const FLUSH_GAP_MS = 250;
let lastFlush = 0;
let gapTimer = null;

function schedule() {
  if (everything && gapTimer !== null) { // a full (re)load is drawn at once
    clearTimeout(gapTimer);
    gapTimer = null;
    requestAnimationFrame(flush);
    return;
  }
  if (scheduled) return;
  scheduled = true;
  const wait = everything ? 0 : lastFlush + FLUSH_GAP_MS - performance.now();
  if (wait > 0) {
    gapTimer = setTimeout(() => { gapTimer = null; requestAnimationFrame(flush); }, wait);
  } else {
    requestAnimationFrame(flush);
  }
}

function flush() {
  scheduled = false;
  lastFlush = performance.now();
  const change = { hosts: new Set(dirtyHosts), alerts: alertsDirty, all: everything };
  dirtyHosts.clear();
  alertsDirty = false;
  everything = false;
  const now = serverNow();
  for (const key of change.hosts) {
    const host = hosts.get(key);
    if (host && host.freshMs) {
      lags[lagCount % LAG_SAMPLES] = now - host.freshMs;
      lagCount += 1;
      host.freshMs = 0;
    }
  }
  for (const fn of subscribers) fn(change);
}

function markHost(key) {
  dirtyHosts.add(key);
  schedule();
}

function markAll() {
  everything = true;
  alertsDirty = true;
  schedule();
}

function ensureHost(key, hostId = key) {
  let host = hosts.get(key);
  if (!host) {
    host = {
      key, hostId, hostname: hostId, status: "ok", lastSeen: null, lastSeenMs: 0, metrics: {},
      counts: { total: 0, running: 0, unhealthy: 0, problems: 0, states: {} },
      serverAlert: null, freshMs: 0, containers: new Map(),
      rings: Object.fromEntries(TILE_METRICS.map((m) => [m, new Ring(SPARK_POINTS)])),
    };
    hosts.set(key, host);
  }
  return host;
}

function containerFrom(raw) {
  return {
    key: raw.key, name: raw.name, image: raw.image || "", state: raw.state || "running",
    health: raw.health ?? null, restartCount: raw.restart_count ?? null, labels: raw.labels || {},
    serverStatus: raw.status || "ok", lastSeen: raw.last_seen || null, metrics: raw.metrics || {},
  };
}

function pushRings(host) {
  const m = host.metrics;
  const values = {
    cpu_percent: m.cpu_percent, memory_percent: m.memory_percent,
    disk_used_percent_max: m.disk_used_percent_max,
    net_bytes_per_s: m.net_rx_bytes_per_s === undefined && m.net_tx_bytes_per_s === undefined
      ? undefined : (m.net_rx_bytes_per_s || 0) + (m.net_tx_bytes_per_s || 0),
  };
  for (const name of TILE_METRICS) if (values[name] !== undefined) host.rings[name].push(values[name]);
}

/**
 * A host summary (SSE `summary`, or a `/api/v1/machines` entry). The newest sample wins: a
 * summary older than the one held is ignored; one of the same sample (a status change such
 * as `silent`) is taken from the stream, not from a REST answer that may predate it.
 */
export function applySummary(ev, fromRest = false) {
  const host = ensureHost(ev.key, ev.host_id || ev.key);
  const at = ev.last_seen ? Date.parse(ev.last_seen) : 0;
  if (at < host.lastSeenMs || (fromRest && at === host.lastSeenMs && host.lastSeenMs)) return;
  const newer = at > host.lastSeenMs;
  host.hostname = ev.hostname || host.hostId;
  host.status = ev.status || "ok";
  host.lastSeen = ev.last_seen || null;
  host.lastSeenMs = at;
  host.metrics = ev.metrics || {};
  if (ev.container_counts) host.counts = ev.container_counts;
  host.serverAlert = ev.alert || null;
  if (newer) {
    pushRings(host);
    host.freshMs = at;
    if (at > newestSampleMs) newestSampleMs = at;
  }
  markHost(host.key);
}

/** Load every host's summary over REST, page by page (first load, and on `resync`). */
export async function loadFleet() {
  const seen = new Set();
  let cursor = null;
  do {
    const query = `limit=${MACHINES_PAGE}${cursor ? `&cursor=${enc(cursor)}` : ""}`;
    const page = await api(`/api/v1/machines?${query}`);
    for (const raw of listOf(page, "hosts")) {
      applySummary(raw, true);
      seen.add(raw.key);
    }
    cursor = page.next_cursor || null;
  } while (cursor);
  for (const key of [...hosts.keys()]) if (!seen.has(key)) hosts.delete(key);
  markAll();
}

/** Load one host's containers over REST (the host page asks for them on demand). */
export async function loadContainers(hostKey) {
  const answer = await api(`/api/v1/machines/${enc(hostKey)}/containers`);
  const host = ensureHost(hostKey);
  host.containers = new Map(listOf(answer, "containers").map((c) => [c.key, containerFrom(c)]));
  markHost(hostKey);
}

/** Forget the containers of hosts that are not looked at (bounded memory at 30,000). */
export function keepContainersOf(hostKey) {
  for (const host of hosts.values()) if (host.key !== hostKey && host.containers.size) host.containers = new Map();
}

export async function loadAlerts() {
  const active = await api("/api/v1/alerts");
  alerts.clear();
  alertsByHost.clear();
  worstByHost.clear();
  for (const raw of listOf(active, "alerts")) indexAlert(normalizeAlert(raw));
  markAll();
}

/** Replace everything with REST snapshots (first load, and on `resync`). */
export async function reloadAll(hostKey = null) {
  await Promise.all([loadFleet(), loadAlerts(), hostKey ? loadContainers(hostKey) : null]);
}

/** An SSE `sample` event (the host page's view): the host or one of its containers. */
export function applySample(ev) {
  const hostKey = ev.host_id || hostOf(ev.key);
  const host = ensureHost(hostKey);
  if (ev.kind === "container") {
    const current = host.containers.get(ev.key) || containerFrom({ key: ev.key, name: ev.name });
    current.metrics = ev.metrics || {};
    current.state = ev.state || current.state;
    current.health = ev.health ?? null;
    current.lastSeen = ev.timestamp;
    if (ev.metrics && ev.metrics.restart_count !== undefined) current.restartCount = ev.metrics.restart_count;
    host.containers.set(ev.key, current);
  } else {
    const at = Date.parse(ev.timestamp) || 0;
    if (at < host.lastSeenMs) return;
    if (ev.hostname) host.hostname = ev.hostname;
    if (at > host.lastSeenMs) {
      host.metrics = ev.metrics || {};
      host.lastSeen = ev.timestamp;
      host.lastSeenMs = at;
      host.freshMs = at;
      if (at > newestSampleMs) newestSampleMs = at;
      pushRings(host);
    }
  }
  markHost(hostKey);
}

/** An SSE `machine` event: a machine appeared, went silent or came back. */
export function applyMachine(ev) {
  const hostKey = hostOf(ev.key);
  const host = ensureHost(hostKey);
  if (ev.key === hostKey) {
    host.status = ev.status === "silent" ? "silent" : (host.status === "silent" ? "ok" : host.status);
  } else if (host.containers.has(ev.key)) {
    host.containers.get(ev.key).serverStatus = ev.status;
  }
  markHost(hostKey);
}

/**
 * An SSE `machine_deleted` event (one per machine: a deleted host sends one for itself and
 * one for each container): the machine and its alerts leave the screen.
 */
export function applyDeleted(ev) {
  const hostKey = ev.host_key || hostOf(ev.key);
  for (const alert of [...alerts.values()]) {
    if (alert.machine === ev.key) indexAlert({ ...alert, state: "resolved" });
  }
  if (ev.key === hostKey) hosts.delete(hostKey);
  else hosts.get(hostKey)?.containers.delete(ev.key);
  markAll();
}

/**
 * One shape for an active alert (`/api/v1/alerts`) and an alert event (SSE, history):
 * {fingerprint, kind, machine (key), machineKind, machineName, hostname, display, hostId,
 *  rule, ruleId, metric, level, state, fromState, value, threshold, since, at, silenced}.
 */
export function normalizeAlert(raw) {
  const alert = {
    fingerprint: raw.fingerprint,
    kind: raw.kind ?? null,
    machine: raw.machine ?? raw.machine_key ?? "",
    machineKind: raw.machine_kind ?? "host",
    machineName: raw.machine_name ?? "",
    hostname: raw.hostname ?? "",
    hostId: raw.host_id ?? null,
    rule: raw.rule_name ?? raw.rule_id ?? raw.rule ?? "",
    ruleId: raw.rule_id ?? raw.rule ?? "",
    metric: raw.metric ?? "",
    level: raw.level ?? "warning",
    state: raw.to_state ?? raw.state ?? "",
    fromState: raw.from_state ?? null,
    value: raw.value ?? null,
    threshold: raw.threshold ?? null,
    since: raw.started_at ?? raw.since ?? raw.at ?? null,
    at: raw.at ?? raw.since ?? null,
    silenced: Boolean(raw.silenced),
  };
  alert.display = displayName(alert);
  return alert;
}

const LEVEL_RANK = { warning: 1, critical: 2 };

function isWorse(a, b) {
  if (!b) return true;
  const rank = (LEVEL_RANK[a.level] || 0) - (LEVEL_RANK[b.level] || 0);
  if (rank) return rank > 0;
  return String(a.since || "") < String(b.since || "");
}

/** Put an alert into (or take it out of) the map and its host's index; true when the
 *  host's worst alert changed. */
function indexAlert(alert) {
  const hostKey = alert.hostId || hostOf(alert.machine);
  let own = alertsByHost.get(hostKey);
  const active = alert.state === "firing" || alert.state === "pending";
  if (active) {
    alerts.set(alert.fingerprint, alert);
    if (!own) alertsByHost.set(hostKey, (own = new Map()));
    own.set(alert.fingerprint, alert);
  } else {
    alerts.delete(alert.fingerprint);
    if (own) own.delete(alert.fingerprint);
  }
  let worst = null;
  if (own) {
    for (const a of own.values()) if (a.state === "firing" && !a.silenced && isWorse(a, worst)) worst = a;
    if (!own.size) alertsByHost.delete(hostKey);
  }
  const before = worstByHost.get(hostKey) || null;
  if (worst) worstByHost.set(hostKey, worst);
  else worstByHost.delete(hostKey);
  return { hostKey, changed: before !== worst };
}

/**
 * The name people use for a machine: `vm` for a host, `vm/db` for a container (the host's
 * name from the event, else from the inventory, else the key).
 */
export function displayName({ machine, machineKind, machineName, hostname, hostId }) {
  if (machineKind === "host") return machineName || hosts.get(machine)?.hostname || machine;
  const hostName = hostname || hosts.get(hostId || hostOf(machine))?.hostname;
  if (!hostName || !machineName) return machine;
  return `${hostName}/${machineName}`;
}

/** An SSE `alert` event (an AlertEvent transition). Returns the alert when it asks for a
 * toast: it just fired, or a silence ended while it fires (re-notified). */
export function applyAlert(raw) {
  const alert = normalizeAlert(raw);
  const { hostKey } = indexAlert(alert);
  alertsDirty = true;
  markHost(hostKey);
  if (alert.state !== "firing") return null;
  return alert.fromState !== "firing" || alert.kind === "unsilenced" ? alert : null;
}

/**
 * Take the current values of the active alerts from `/api/v1/alerts` (the engine's, at
 * most a second old). Only alerts already known are touched: which alerts exist is the
 * event stream's business, so an answer older than an event never undoes it.
 */
export async function refreshAlertValues() {
  const answer = await api("/api/v1/alerts");
  let changed = false;
  for (const raw of listOf(answer, "alerts")) {
    const known = alerts.get(raw.fingerprint);
    if (!known || (known.value === raw.value && known.threshold === raw.threshold)) continue;
    known.value = raw.value ?? null;
    known.threshold = raw.threshold ?? null;
    changed = true;
  }
  if (changed) {
    alertsDirty = true;
    schedule();
  }
}

/** The host key of a machine key (`<host_id>` or `<host_id>:<container name>`). */
export function hostOf(machineKey) {
  if (hosts.has(machineKey)) return machineKey;
  const cut = machineKey.lastIndexOf(":");
  return cut > 0 ? machineKey.slice(0, cut) : machineKey;
}

/** The worst firing, not silenced, alert on the host or its containers (or null). */
export function worstAlert(hostKey) {
  return worstByHost.get(hostKey) || null;
}

/** silent (the server says so), else the worst firing level on the host or its containers. */
export function hostStatus(host) {
  if (host.status === "silent") return "silent";
  const worst = worstByHost.get(host.key);
  if (!worst) return "ok";
  return worst.level === "critical" ? "critical" : "warning";
}

export function isSilent(host) {
  return host.status === "silent";
}

/** When the host last reported, for the "silent since" mark. */
export function silentSince(host) {
  return host.lastSeen;
}

export function severityOf(host) {
  return SEVERITY_RANK[hostStatus(host)];
}

// --- freshness ------------------------------------------------------------------------

/** The server's clock offset from hello's `server_time` (data ages are server-clock ages). */
export function setServerTime(iso) {
  const at = Date.parse(iso);
  if (at) serverOffsetMs = at - Date.now();
}

export function serverNow() {
  return Date.now() + serverOffsetMs;
}

/** How old the newest sample shown is, in ms (null before any). */
export function dataAgeMs() {
  return newestSampleMs ? Math.max(0, serverNow() - newestSampleMs) : null;
}

/** Sample time → drawn, for the last LAG_SAMPLES host updates: {count, p50, p95, max} in ms. */
export function freshness() {
  const n = Math.min(lagCount, LAG_SAMPLES);
  const values = Array.from(lags.subarray(0, n)).sort((a, b) => a - b);
  const at = (p) => (n ? values[Math.min(n - 1, Math.round((p / 100) * (n - 1)))] : null);
  return { count: lagCount, p50: at(50), p95: at(95), max: n ? values[n - 1] : null };
}

export function resetFreshness() {
  lagCount = 0;
}
