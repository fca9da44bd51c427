// Small DOM helpers: h(tag, attributes, ...children), clear(element), the API's errors as
// the API gave them, the page's confirmation dialog.
import { ApiError } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false || v === null || v === undefined) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

export function clear(el) { while (el.firstChild) el.firstChild.remove(); }

export function ago(seconds) {
  if (!seconds) return "-";
  const d = Date.now() / 1000 - seconds;
  if (d < 60) return `${Math.max(0, Math.round(d))} s ago`;
  if (d < 3600) return `${Math.round(d / 60)} min ago`;
  return `${Math.round(d / 3600)} h ago`;
}

export function state(text) { return h("span", { class: `state ${text}` }, text || "-"); }

// A confirmation in the page's <dialog>; resolves to the form's values, or null if cancelled.
export function ask(title, body, { ok = "OK", fields = [] } = {}) {
  const dialog = document.getElementById("dialog");
  const form = document.getElementById("dialog-form");
  clear(form);
  form.append(h("h3", {}, title), body || "", ...fields,
    h("div", { class: "buttons" },
      h("button", { value: "cancel", id: "dialog-cancel" }, "Cancel"),
      h("button", { value: "ok", class: "primary", id: "dialog-ok" }, ok)));
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (dialog.returnValue !== "ok") return resolve(null);
      resolve(Object.fromEntries(new FormData(form).entries()));
    }, { once: true });
  });
}

// An API error as the API gave it: the message, and each field's messages.
export function errorBox(err) {
  const box = h("div", { class: "error", role: "alert" });
  box.append(err.message || String(err));
  if (err instanceof ApiError && err.details && Object.keys(err.details).length) {
    const list = h("ul");
    for (const [field, messages] of flatten(err.details)) {
      list.append(h("li", { "data-field": field }, `${field}: ${messages}`));
    }
    box.append(list);
  }
  return box;
}

function* flatten(details, prefix = "") {
  for (const [key, value] of Object.entries(details)) {
    const path = prefix ? `${prefix}.${key}` : key;
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) yield [path, value.join(" ")];
    else if (value && typeof value === "object" && !Array.isArray(value)) yield* flatten(value, path);
    else yield [path, JSON.stringify(value)];
  }
}

