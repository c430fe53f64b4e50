// Entry point: hash router, the live event stream, the connection indicator and toasts.

import { LiveStream } from "./sse.js";
import {
  alerts, applyAlert, applyMachine, applySample, hosts, reloadAll, subscribe,
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
    await reloadAll();
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
  route();
  await reload();
  let serverLastId = null;
  const stream = new LiveStream("/api/v1/events?topics=metrics,alerts", {
    hello(data) {
      const restarted = serverLastId !== null && Number(data.last_id) < Number(serverLastId);
      serverLastId = data.last_id;
      if (restarted) {
        stream.forgetPosition();
        reload();
      }
    },
    sample: applySample,
    machine: applyMachine,
    alert(data) {
      const fired = applyAlert(data);
      if (fired && !fired.silenced) toast(fired);
    },
    resync: reload,
  }, setConnection);
  stream.open();
  // Silence is the absence of events: re-check every host's status once a second.
  setInterval(() => current && current.update({ hosts: new Set(), alerts: false, all: false, tick: true }), 1000);
  window.srvmon = { stream, hosts, alerts };
}

start();
