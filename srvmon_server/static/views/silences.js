// Silences: create (matchers, start/end, comment), list, expire.

import { api, enc, listOf } from "../api.js";
import { el, fmtLocal, toDate } from "../util.js";

function toLocalInput(date) {
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
  return shifted.toISOString().slice(0, 16);
}

export function mountSilences(root) {
  const now = new Date();
  const form = el("form", { class: "filters", id: "silence-form" },
    el("label", {}, "Machine glob ", el("input", { name: "machine", placeholder: "web-*" })),
    el("label", {}, "Rule glob ", el("input", { name: "rule", placeholder: "*" })),
    el("label", {}, "Host glob ", el("input", { name: "host", placeholder: "*" })),
    el("label", {}, "Starts ", el("input", { type: "datetime-local", name: "starts_at", value: toLocalInput(now) })),
    el("label", {}, "Ends ", el("input", { type: "datetime-local", name: "ends_at", value: toLocalInput(new Date(now.getTime() + 3600000)) })),
    el("label", {}, "Comment ", el("input", { name: "comment", required: true })),
    el("button", { type: "submit" }, "Create silence"));
  const message = el("p", { class: "muted", id: "silence-message" });
  const rows = el("tbody", { id: "silence-rows" });
  root.append(el("h1", {}, "Silences"), form, message, el("div", { class: "scroll-x" }, el("table", { class: "grid" },
    el("thead", {}, el("tr", {}, ...["Matchers", "Starts", "Ends", "Comment", ""].map((h) => el("th", {}, h)))), rows)));

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
    for (const name of ["machine", "rule", "host"]) if (data.get(name)) matchers[name] = data.get(name);
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
  load();
  return { update() {}, unmount() {} };
}
