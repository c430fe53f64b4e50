// Entry point: hash router, the live event stream (subscribed to the view on screen), the
// connection indicator with the age of the newest data, and toasts.

import { LiveStream } from "./sse.js";
import {
  alerts, applyAlert, applyDeleted, applyMachine, applySample, applySummary, dataAgeMs,
  freshness, hosts,
  keepContainersOf, loadContainers, reloadAll, resetFreshness, setServerTime, subscribe,
} from "./store.js";
import { el, fmtByMetric, setText } from "./util.js";
import { mountAlerts } from "./views/alerts.js";
import { mountHost } from "./views/host.js";
import { mountOverview } from "./views/overview.js";
import { mountRules } from "./views/rules.js";
import { mountSilences } from "./views/silences.js";

const MAX_TOASTS = 5;
const TOAST_MS = 8000;
const view = document.getElementById("view");
let current = null;
let stream = null;
let watchedHost = null;
let liveData = false;

/** What the screen shows decides what the stream carries (docs/api.md, SSE views). */
function streamUrl(name, hostKey) {
  if (name === "overview") return "/api/v1/events?view=fleet";
  if (name === "host") return `/api/v1/events?view=host&host=${encodeURIComponent(hostKey)}`;
  return "/api/v1/events?view=alerts";
}

function route() {
  if (current) current.unmount();
  view.replaceChildren();
  const path = location.hash.replace(/^#/, "").split("?")[0] || "/";
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  let name = "overview";
  if (parts[0] === "host" && parts[1]) {
    name = "host";
    current = mountHost(view, parts[1], parts[2] === "container" ? parts[3] : undefined);
  } else if (parts[0] === "alerts") {
    name = "alerts";
    current = mountAlerts(view);
  } else if (parts[0] === "rules") {
    name = "rules";
    current = mountRules(view);
  } else if (parts[0] === "silences") {
    name = "silences";
    current = mountSilences(view);
  } else {
    current = mountOverview(view);
  }
  document.body.dataset.view = name;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.route === name);
  watchedHost = name === "host" ? parts[1] : null;
  liveData = name === "overview" || name === "host";
  keepContainersOf(watchedHost);
  if (watchedHost) {
    loadContainers(watchedHost).catch((error) => console.error("containers failed", error));
  }
  if (stream) stream.setUrl(streamUrl(name, watchedHost));
  showAge();
  return streamUrl(name, watchedHost);
}

function fmtAge(ms) {
  if (ms < 1000) return "<1 s";
  if (ms < 120000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min`;
  return `${Math.round(ms / 3600000)} h`;
}

/** Next to the connection state: how old the newest data on screen is (server clock). */
function showAge() {
  const node = document.getElementById("data-age");
  if (!node) return;
  const age = dataAgeMs();
  node.hidden = !liveData || age === null;
  if (node.hidden) return;
  setText(node, fmtAge(age));
  node.dataset.ageMs = String(Math.round(age));
  node.title = `the newest data shown is ${fmtAge(age)} old`;
  node.classList.toggle("stale", age > 5000);
}

function setConnection(state) {
  const node = document.getElementById("conn");
  node.dataset.state = state;
  node.className = `conn conn-${state}`;
  setText(node, state);
}

function toast(alert) {
  const box = document.getElementById("toasts");
  const again = alert.kind === "unsilenced" ? " (silence ended)" : "";
  const node = el("div", { class: `toast toast-${alert.level || "warning"}`, role: "status", title: alert.machine },
    el("strong", {}, `${alert.level || "alert"}: ${alert.display}`),
    ` ${alert.rule} ${fmtByMetric(alert.metric || "", alert.value)} (threshold ${fmtByMetric(alert.metric || "", alert.threshold)})${again}`);
  node.addEventListener("click", () => node.remove());
  box.append(node);
  while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
  setTimeout(() => node.remove(), TOAST_MS);
}

function updateAlertBadge() {
  const badge = document.getElementById("alert-count");
  // Silenced alerts are listed on the alerts screen but need no one's attention: not counted.
  const firing = [...alerts.values()].filter((a) => a.state === "firing" && !a.silenced).length;
  badge.hidden = firing === 0;
  setText(badge, String(firing));
}

async function reload() {
  try {
    await reloadAll(watchedHost);
  } catch (error) {
    setConnection("offline");
    console.error("reload failed", error);
  }
}

async function start() {
  subscribe((change) => {
    if (change.alerts || change.all) updateAlertBadge();
    if (current) current.update(change);
  });
  window.addEventListener("hashchange", route);
  const url = route();
  const loaded = reload(); // the stream opens meanwhile: its snapshot and REST race, newest wins
  let serverLastId = null;
  stream = new LiveStream(url, {
    hello(data) {
      setServerTime(data.server_time);
      const restarted = serverLastId !== null && Number(data.last_id) < Number(serverLastId);
      serverLastId = data.last_id;
      if (restarted) {
        stream.forgetPosition();
        reload();
      }
    },
    sample: applySample,
    machine: applyMachine,
    machine_deleted: applyDeleted,
    summary: (data) => applySummary(data),
    alert(data) {
      const fired = applyAlert(data);
      if (fired && !fired.silenced) toast(fired);
    },
    resync: reload,
  }, setConnection);
  stream.open();
  await loaded;
  showAge();
  // "silent" comes from the server (summaries, machine events); once a second only the
  // data age is refreshed, and views get a tick (e.g. to re-sort by a moving metric).
  setInterval(() => {
    showAge();
    if (current) current.update({ hosts: new Set(), alerts: false, all: false, tick: true });
  }, 1000);
  window.srvmon = { stream, hosts, alerts, freshness, resetFreshness, dataAgeMs };
}

start();
