// Silences: create (matchers, start/end, comment) with a preview of the machines the
// machine matcher picks, list, expire.

import { api, enc, listOf } from "../api.js";
import { el, fmtLocal, setText, toDate } from "../util.js";
import { resolutionText } from "./alerts.js";

function toLocalInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

/** Show what a machine pattern picks, under its input, as the operator types. */
export function machinePreview(input, output) {
  let timer = null;
  let asked = "";
  async function show() {
    const pattern = input.value.trim();
    asked = pattern;
    if (!pattern) {
      setText(output, "");
      return;
    }
    try {
      const answer = await api(`/api/v1/resolve?machine=${enc(pattern)}`);
      if (asked === pattern) setText(output, resolutionText(answer));
    } catch (error) {
      if (asked === pattern) setText(output, `error: ${error.message}`);
    }
  }
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(show, 250);
  });
  return show;
}

export function mountSilences(root) {
  const now = new Date();
  const machine = el("input", { name: "machine", placeholder: "vm, vm/db, web-*", list: "silence-machine-names" });
  const form = el("form", { class: "filters", id: "silence-form" },
    el("label", { title: "a hostname (vm), host/container (vm/db), a key, or a glob (web-*, vm/*, */db)" },
      "Machine ", machine),
    el("datalist", { id: "silence-machine-names" }),
    el("label", { title: "a glob of the rule id or name" }, "Rule glob ", el("input", { name: "rule", placeholder: "*" })),
    el("label", { title: "a glob of the host id or hostname" }, "Host glob ", el("input", { name: "host", placeholder: "*" })),
    el("label", {}, "Starts ", el("input", { type: "datetime-local", name: "starts_at", value: toLocalInput(now) })),
    el("label", {}, "Ends ", el("input", { type: "datetime-local", name: "ends_at", value: toLocalInput(new Date(now.getTime() + 3600000)) })),
    el("label", {}, "Comment ", el("input", { name: "comment", required: true })),
    el("button", { type: "submit" }, "Create silence"));
  const picks = el("p", { class: "muted", id: "silence-picks" });
  const message = el("p", { class: "muted", id: "silence-message" });
  const rows = el("tbody", { id: "silence-rows" });
  root.append(el("h1", {}, "Silences"), form, picks, message, el("div", { class: "scroll-x" }, el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ...["Matchers", "Starts", "Ends", "Comment", ""].map((h) => el("th", {}, h)))), rows)));
  const preview = machinePreview(machine, picks);

  async function load() {
    try {
      const list = listOf(await api("/api/v1/silences"), "silences");
      rows.replaceChildren(...list.map((s) => el("tr", { "data-silence-id": s.id },
        el("td", {}, Object.entries(s.matchers || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
        el("td", {}, fmtLocal(s.starts_at)), el("td", {}, fmtLocal(s.ends_at)), el("td", {}, s.comment || ""),
        el("td", {}, el("button", { type: "button", onclick: () => expire(s.id) }, "Expire")))));
    } catch (error) {
      message.textContent = `error: ${error.message}`;
    }
  }

  async function expire(id) {
    try {
      await api(`/api/v1/silences/${enc(id)}`, { method: "DELETE" });
      message.textContent = `silence ${id} expired`;
    } catch (error) {
      message.textContent = `error: ${error.message}`;
    }
    load();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const matchers = {};
    for (const name of ["machine", "rule", "host"]) if (data.get(name)) matchers[name] = data.get(name).trim();
    try {
      await api("/api/v1/silences", {
        method: "POST",
        body: {
          matchers,
          starts_at: toDate(data.get("starts_at")).toISOString(),
          ends_at: toDate(data.get("ends_at")).toISOString(),
          comment: data.get("comment"),
        },
      });
      message.textContent = "silence created";
      form.elements.comment.value = "";
    } catch (error) {
      message.textContent = `error: ${error.field ? `${error.field}: ` : ""}${error.message}`;
    }
    load();
  });
  api("/api/v1/resolve?machine=*").then((answer) => {
    const names = [...new Set(answer.machines.map((m) => m.display))];
    form.querySelector("#silence-machine-names").replaceChildren(...names.map((n) => el("option", { value: n })));
  }).catch(() => {});
  load();
  preview();
  return { update() {}, unmount() {} };
}
