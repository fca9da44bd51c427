// The web console's shell: sign-in, the header (who, the connection's state), and the
// router (#/ cluster, #/vms, #/vm/NAME, #/node/NAME, #/apply) that shows one view.
import { get, onConnection, session } from "./api.js";
import { closeAll } from "./model.js";
import { clear, errorBox, h } from "./dom.js";
import { clusterView, nodeView } from "./cluster.js";
import { vmsView } from "./vmtable.js";
import { vmView } from "./vmpage.js";
import { applyView } from "./apply.js";

const view = document.getElementById("view");
let leave = null;  // the current view's clean-up

function route() {
  performance.mark("herd:route");
  if (leave) { leave(); leave = null; }
  clear(view);
  if (!session.token || !session.who) return signIn();
  const [, page, name] = (location.hash || "#/").split("/");
  const show = { "": clusterView, vms: vmsView, vm: vmView, node: nodeView, apply: applyView }[page];
  leave = (show || clusterView)(view, decodeURIComponent(name || "")) || null;
}

function signIn() {
  document.getElementById("nav").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", { type: "password", id: "token", placeholder: "API token",
                             autocomplete: "off", required: true });
  const problem = h("div");
  const form = h("form", { class: "login", id: "login" },
    h("h1", {}, "Sign in"),
    h("label", { for: "token" }, "An API token (herdctl token create, or the dev cluster's)"),
    input, problem, h("button", { class: "primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    session.set(input.value.trim());
    try {
      session.remember(await get("/whoami"));
      location.hash = location.hash && location.hash !== "#/login" ? location.hash : "#/";
      started();
      route();
    } catch (err) {
      session.clear();
      clear(problem);
      problem.append(errorBox(err));
    }
  });
  view.append(form);
  input.focus();
}

function started() {
  const who = session.who;
  document.getElementById("nav").hidden = false;
  const out = h("button", { id: "sign-out" }, "Sign out");
  out.addEventListener("click", () => { session.clear(); closeAll(); route(); });
  const whoEl = document.getElementById("who");
  clear(whoEl);
  whoEl.append(`${who.name} (${who.role}) `, out);
}

onConnection((state) => {
  const el = document.getElementById("connection");
  el.hidden = false;
  el.className = `conn ${state}`;
  el.textContent = state === "live" ? "live" : "connection lost, retrying";
});
window.addEventListener("herd-signed-out", () => { session.clear(); closeAll(); route(); });
window.addEventListener("hashchange", route);
if (session.who) started();
route();
