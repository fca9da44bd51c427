// The web console's way to herd-api: the token (session storage only, never a cookie),
// JSON calls whose errors keep the API's shape (code, message, details by field), the
// watch stream (newline-delimited JSON, resumed from the last resourceVersion after a
// lost connection), and WebSocket addresses with the token as a subprotocol.

const BASE = "/api/v1";
const KEY = "herd.token";

export const session = {
  get token() { return sessionStorage.getItem(KEY); },
  set(token) { sessionStorage.setItem(KEY, token); },
  clear() { sessionStorage.removeItem(KEY); sessionStorage.removeItem("herd.who"); },
  get who() { return JSON.parse(sessionStorage.getItem("herd.who") || "null"); },
  remember(who) { sessionStorage.setItem("herd.who", JSON.stringify(who)); },
};

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || "error";
    this.details = error.details || {};
  }
}

const listeners = new Set();  // the connection's state: "live" or "lost"
export function onConnection(fn) { listeners.add(fn); }
function connection(state) { for (const fn of listeners) fn(state); }

function url(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) q.set(k, v);
  const s = q.toString();
  return BASE + path + (s ? "?" + s : "");
}

function headers(json) {
  const h = { Accept: "application/json" };
  if (session.token) h.Authorization = `Bearer ${session.token}`;
  if (json) h["Content-Type"] = "application/json";
  return h;
}

export async function call(method, path, { body, query } = {}) {
  let resp;
  try {
    resp = await fetch(url(path, query), {
      method, headers: headers(body !== undefined),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    connection("lost");
    throw new ApiError(0, { code: "unreachable", message: `cannot reach the API: ${e.message}` });
  }
  const text = await resp.text();
  const doc = text ? safeJson(text) : {};
  if (!resp.ok) {
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("herd-signed-out"));
    throw new ApiError(resp.status, (doc && doc.error) || { message: text || resp.statusText });
  }
  connection("live");
  return doc;
}

function safeJson(text) {
  try { return JSON.parse(text); } catch { return { error: { message: text } }; }
}

export const get = (path, query) => call("GET", path, { query });
export const post = (path, body, query) => call("POST", path, { body, query });

// Follows GET /watch from `resourceVersion`; `onEvent` gets each event, `onGone` is called
// when the API no longer keeps the events since then (410: list again). Returns stop().
export function watch({ kind, resourceVersion, onEvent, onGone }) {
  const abort = new AbortController();
  let rv = resourceVersion;
  let delay = 500;
  (async () => {
    while (!abort.signal.aborted) {
      try {
        const resp = await fetch(url("/watch", { kind, resourceVersion: rv }),
                                 { headers: headers(false), signal: abort.signal });
        if (resp.status === 410) { onGone(); return; }
        if (!resp.ok) throw new Error(`HTTP ${resp.status}`);
        connection("live");
        delay = 500;
        rv = await readLines(resp.body, (ev) => { onEvent(ev); }, rv);
      } catch (e) {
        if (abort.signal.aborted) return;
      }
      connection("lost");
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  })();
  return () => abort.abort();
}

async function readLines(stream, onEvent, rv) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return rv;
    buffered += decoder.decode(value, { stream: true });
    let at;
    while ((at = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, at);
      buffered = buffered.slice(at + 1);
      if (!line.trim()) continue;
      const ev = JSON.parse(line);
      if (ev.resourceVersion) rv = ev.resourceVersion;
      onEvent(ev);
    }
  }
}

export function wsUrl(path, query) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.host}${url(path, query)}`;
}

// A browser WebSocket cannot send Authorization: the token goes as a subprotocol.
export function wsProtocols() {
  const b64 = btoa(session.token || "").replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  return ["herd.v1", `base64url.bearer.herd.${b64}`];
}

export const ROLES = ["viewer", "operator", "admin"];
export function may(role) {
  const who = session.who;
  return who && ROLES.indexOf(who.role) >= ROLES.indexOf(role);
}

// A non-JSON answer (a console log) as text; errors as `call`'s.
export async function text(path, query) {
  const resp = await fetch(url(path, query), { headers: headers(false) });
  const body = await resp.text();
  if (!resp.ok) throw new ApiError(resp.status, (safeJson(body) || {}).error || { message: body });
  return body;
}
