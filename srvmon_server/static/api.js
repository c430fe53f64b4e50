// REST access: bearer token from sessionStorage, one token prompt at a time, error envelopes.

const TOKEN_KEY = "srvmon.token";

export class ApiError extends Error {
  constructor(status, body) {
    const info = (body && body.error) || {};
    super(info.message || `HTTP ${status}`);
    this.status = status;
    this.code = info.code || "http_error";
    this.field = info.field || null;
  }
}

export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

let pendingPrompt = null;

/** Ask the operator for a token once; concurrent callers share the same prompt. */
export function askForToken(reason) {
  if (pendingPrompt) return pendingPrompt;
  const dialog = document.getElementById("token-dialog");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  document.getElementById("token-reason").textContent = reason;
  dialog.hidden = false;
  input.value = "";
  input.focus();
  pendingPrompt = new Promise((resolve) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      dialog.hidden = true;
      pendingPrompt = null;
      resolve(input.value.trim());
    }, { once: true });
  });
  return pendingPrompt;
}

/**
 * Call the API; `body` is sent as JSON. A 401 on a read, or 401/403 on a write, asks for a
 * token and retries (a few times at most). Other errors throw ApiError with the envelope.
 */
export async function api(path, { method = "GET", body } = {}) {
  const write = method !== "GET";
  for (let attempt = 0; ; attempt += 1) {
    const headers = { Accept: "application/json" };
    const token = getToken();
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const needsToken = response.status === 401 || (write && response.status === 403);
    if (needsToken && attempt < 3) {
      await askForToken(write
        ? "This change needs a write token."
        : "Reading needs an access token.");
      continue;
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { error: { message: text.slice(0, 200) } };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }
}

/** A list out of an answer that is either a bare array or `{<key>: [...]}`. */
export function listOf(data, key) {
  if (Array.isArray(data)) return data;
  return (data && data[key]) || [];
}

export const enc = encodeURIComponent;
