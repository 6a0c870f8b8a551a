// The gateway's HTTP API, as the page uses it: one fetch wrapper that turns every
// {"error": {"code", "message"}} answer into an ApiError the page can show.

const CLIENT_ID_KEY = "loopline.client-id";
const TOKEN_KEY = "loopline.admin-token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// A stable id per browser keeps this user on the same side of a canary split.
export function clientId() {
  try {
    let id = localStorage.getItem(CLIENT_ID_KEY);
    if (!id) {
      id = randomId();
      localStorage.setItem(CLIENT_ID_KEY, id);
    }
    return id;
  } catch {
    return null; // storage disabled: the gateway then picks per request
  }
}

// The admin token lives in sessionStorage: gone when the tab closes, never in localStorage.
export const adminToken = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
  },
  set(value) {
    try { value ? sessionStorage.setItem(TOKEN_KEY, value) : sessionStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
  },
};

function messageFrom(data, response) {
  const err = data && data.error;
  if (err && err.message) return [err.code || `http_${response.status}`, String(err.message)];
  if (data && typeof data.detail === "string") return [`http_${response.status}`, data.detail];
  return [`http_${response.status}`, response.statusText || `the gateway answered HTTP ${response.status}`];
}

/**
 * Call the gateway. Options: method, json (a body to send as JSON), form (FormData),
 * admin (send the admin token), sticky (send X-Client-Id). Resolves to the parsed JSON;
 * rejects with ApiError (status 0 when the gateway could not be reached).
 */
export async function api(path, { method = "GET", json, form, admin = false, sticky = false, signal } = {}) {
  const headers = new Headers({ Accept: "application/json" });
  let body;
  if (json !== undefined) {
    headers.set("Content-Type", "application/json");
    body = JSON.stringify(json);
  } else if (form) {
    body = form; // the browser sets the multipart boundary
  }
  if (admin && adminToken.get()) headers.set("Authorization", `Bearer ${adminToken.get()}`);
  if (sticky) {
    const id = clientId();
    if (id) headers.set("X-Client-Id", id);
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, credentials: "same-origin" });
  } catch (exc) {
    if (exc.name === "AbortError") throw exc;
    throw new ApiError(0, "network", "Could not reach the gateway. Is it running?");
  }
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!response.ok) {
    const [code, message] = messageFrom(data, response);
    throw new ApiError(response.status, code, message);
  }
  return data;
}
