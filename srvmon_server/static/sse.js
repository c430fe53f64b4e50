// One EventSource per tab, subscribed to the view on screen, with our own reconnect when the
// browser gives up.

import { getToken } from "./api.js";

const MAX_BACKOFF_MS = 15000;
const OFFLINE_AFTER_FAILURES = 6;

/**
 * `handlers`: {sample, machine, summary, alert, resync, hello} callbacks; `onState(state)` receives
 * "live" | "reconnecting" | "offline".
 */
export class LiveStream {
  constructor(url, handlers, onState) {
    this.url = url;
    this.handlers = handlers;
    this.onState = onState;
    this.lastId = null;
    this.source = null;
    this.failures = 0;
    this.timer = null;
    window.addEventListener("offline", () => this.onState("offline"));
    window.addEventListener("online", () => this.reopen());
  }

  open() {
    const params = new URLSearchParams();
    const token = getToken();
    if (token) params.set("token", token);
    if (this.lastId !== null) params.set("last_event_id", this.lastId);
    const sep = this.url.includes("?") ? "&" : "?";
    const query = params.toString();
    const source = new EventSource(query ? `${this.url}${sep}${query}` : this.url);
    this.source = source;
    source.onopen = () => {
      this.failures = 0;
      this.onState("live");
    };
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED) {
        this.scheduleReopen();
      } else {
        this.failures += 1;
        this.onState(this.failures >= OFFLINE_AFTER_FAILURES ? "offline" : "reconnecting");
      }
    };
    for (const name of ["hello", "sample", "machine", "summary", "alert", "machine_deleted", "resync"]) {
      source.addEventListener(name, (event) => this.dispatch(name, event));
    }
  }

  dispatch(name, event) {
    if (event.lastEventId) this.lastId = event.lastEventId;
    let data = null;
    try {
      data = JSON.parse(event.data);
    } catch {
      return;
    }
    const handler = this.handlers[name];
    if (handler) handler(data, event.lastEventId);
  }

  /** The browser closed the stream for good (non-200 answer): retry with backoff. */
  scheduleReopen() {
    this.failures += 1;
    this.source.close();
    this.onState(this.failures >= OFFLINE_AFTER_FAILURES || !navigator.onLine ? "offline" : "reconnecting");
    const delay = Math.min(MAX_BACKOFF_MS, 500 * 2 ** Math.min(this.failures, 5));
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.open(), delay * (0.75 + Math.random() * 0.5));
  }

  reopen() {
    clearTimeout(this.timer);
    if (this.source) this.source.close();
    this.open();
  }

  /** Subscribe to another view: reconnect at once, resuming after the last id seen (the
   *  alerts missed meanwhile are replayed; the new view's state comes as a snapshot). */
  setUrl(url) {
    if (url === this.url && this.source) return;
    this.url = url;
    if (this.source) this.reopen();
  }

  /** The server restarted with a fresh id space: forget the old position. */
  forgetPosition() {
    this.lastId = null;
  }
}
