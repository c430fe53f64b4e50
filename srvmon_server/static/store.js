// In-memory state of the room, fed by REST snapshots and SSE events. Bounded in size:
// one entry per machine, ring buffers for sparklines, a map of active alerts.

import { api, listOf } from "./api.js";
import { Ring, SEVERITY_RANK } from "./util.js";

export const SPARK_POINTS = 120;
export const TILE_METRICS = ["cpu_percent", "memory_percent", "disk_used_percent_max", "net_bytes_per_s"];
const DEFAULT_INTERVAL_MS = 5000;

export const hosts = new Map();
export const alerts = new Map();

const dirtyHosts = new Set();
let alertsDirty = false;
let scheduled = false;
const subscribers = new Set();

/** `fn({hosts: Set<key>, alerts: bool, all: bool})` is called once per animation frame at most. */
export function subscribe(fn) {
  subscribers.add(fn);
  return () => subscribers.delete(fn);
}

function schedule() {
  if (scheduled) return;
  scheduled = true;
  requestAnimationFrame(flush);
}

let everything = false;

function flush() {
  scheduled = false;
  const change = { hosts: new Set(dirtyHosts), alerts: alertsDirty, all: everything };
  dirtyHosts.clear();
  alertsDirty = false;
  everything = false;
  for (const fn of subscribers) fn(change);
}

function markHost(key) {
  dirtyHosts.add(key);
  schedule();
}

function ensureHost(hostId) {
  let host = hosts.get(hostId);
  if (!host) {
    host = {
      key: hostId, hostId, hostname: hostId, serverStatus: "ok", lastSeen: null,
      metrics: {}, rings: Object.fromEntries(TILE_METRICS.map((m) => [m, new Ring(SPARK_POINTS)])),
      lastSampleMs: 0, intervalMs: DEFAULT_INTERVAL_MS, containers: new Map(),
    };
    hosts.set(hostId, host);
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

/** Replace everything with a REST snapshot (first load, and on `resync`). */
export async function reloadAll() {
  const [machines, active] = await Promise.all([api("/api/v1/machines"), api("/api/v1/alerts")]);
  hosts.clear();
  for (const raw of listOf(machines, "hosts")) {
    const host = ensureHost(raw.host_id || raw.key);
    host.key = raw.key || host.hostId;
    host.hostname = raw.hostname || host.hostId;
    host.serverStatus = raw.status || "ok";
    host.lastSeen = raw.last_seen || null;
    host.metrics = raw.metrics || {};
    host.lastSampleMs = host.lastSeen ? Date.parse(host.lastSeen) : 0;
    pushRings(host);
    for (const c of raw.containers || []) host.containers.set(c.key, containerFrom(c));
  }
  alerts.clear();
  for (const raw of listOf(active, "alerts")) {
    const alert = normalizeAlert(raw);
    alerts.set(alert.fingerprint, alert);
  }
  everything = true;
  alertsDirty = true;
  schedule();
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

/** An SSE `sample` event. */
export function applySample(ev) {
  const host = ensureHost(ev.host_id || ev.key);
  const at = Date.parse(ev.timestamp) || Date.now();
  if (ev.kind === "container") {
    const current = host.containers.get(ev.key) || containerFrom({ key: ev.key, name: ev.name });
    current.metrics = ev.metrics || {};
    current.state = ev.state || current.state;
    current.health = ev.health ?? null;
    current.lastSeen = ev.timestamp;
    if (ev.metrics && ev.metrics.restart_count !== undefined) current.restartCount = ev.metrics.restart_count;
    host.containers.set(ev.key, current);
  } else {
    if (ev.hostname) host.hostname = ev.hostname;
    if (host.lastSampleMs && at > host.lastSampleMs) {
      host.intervalMs = Math.max(1000, Math.min(600000, at - host.lastSampleMs));
    }
    host.lastSampleMs = Math.max(host.lastSampleMs, at);
    host.lastSeen = ev.timestamp;
    host.metrics = ev.metrics || {};
    if (host.serverStatus === "silent") host.serverStatus = "ok";
    pushRings(host);
  }
  markHost(host.hostId);
}

/** An SSE `machine` event: appeared, went silent or came back. */
export function applyMachine(ev) {
  const hostKey = hostOf(ev.key);
  const host = ensureHost(hostKey);
  if (ev.key === hostKey) {
    host.serverStatus = ev.status || host.serverStatus;
    if (ev.last_seen) host.lastSeen = ev.last_seen;
  } else if (host.containers.has(ev.key)) {
    host.containers.get(ev.key).serverStatus = ev.status;
  }
  markHost(hostKey);
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
  if (alert.state === "firing" || alert.state === "pending") alerts.set(alert.fingerprint, alert);
  else alerts.delete(alert.fingerprint);
  alertsDirty = true;
  markHost(alert.hostId || hostOf(alert.machine));
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

/** ok / warning / critical from firing alerts on the host or its containers; silent wins. */
export function hostStatus(host, nowMs = Date.now()) {
  if (isSilent(host, nowMs)) return "silent";
  let status = "ok";
  for (const alert of alerts.values()) {
    if (alert.state !== "firing" || alert.silenced) continue;
    if ((alert.hostId || hostOf(alert.machine)) !== host.hostId) continue;
    const level = alert.level === "critical" ? "critical" : "warning";
    if (SEVERITY_RANK[level] > SEVERITY_RANK[status]) status = level;
  }
  return status;
}

export function isSilent(host, nowMs = Date.now()) {
  if (host.serverStatus === "silent") return true;
  return host.lastSampleMs > 0 && nowMs - host.lastSampleMs > 3 * host.intervalMs;
}

/** When the host last reported, for the "silent since" mark. */
export function silentSince(host) {
  return host.lastSeen || (host.lastSampleMs ? new Date(host.lastSampleMs).toISOString() : null);
}
