// One VM (#/vm/NAME): metadata, placement, status (with the countdown of a graceful
// shutdown), its events and console log, current figures; the actions its role allows
// (start, shutdown, stop, restart, migrate, move, unmigrate, metadata), each confirmed,
// progress shown live from the watch stream; the serial console and VNC (consoles.js).
import { get, may, post, text } from "./api.js";
import { nodes, vms } from "./model.js";
import { ago, ask, clear, errorBox, h, state } from "./dom.js";
import { openConsole, openVnc } from "./consoles.js";

export function vmView(view, name) {
  const facts = h("div");
  const actions = h("div", { class: "actions" });
  const problem = h("div", { id: "problem" });
  const extra = h("div");
  const tabs = h("div", { class: "tabs" });
  const pane = h("div");
  view.append(h("h1", {}, `VM ${name}`), facts, actions, problem, tabs, pane, extra);
  let closePane = null;
  const show = (which) => {
    if (closePane) closePane();
    closePane = null;
    clear(pane);
    for (const b of tabs.children) b.classList.toggle("on", b.dataset.tab === which);
    if (which === "console") closePane = openConsole(pane, name);
    if (which === "vnc") closePane = openVnc(pane, name);
    if (which === "log") showLog(pane, name);
    if (which === "events") showEvents(pane, name);
  };
  for (const [key, label, role] of [["events", "Events", "viewer"], ["log", "Console log", "viewer"],
    ["console", "Serial console", "operator"], ["vnc", "Graphical console", "operator"]]) {
    if (may(role)) tabs.append(h("button", { "data-tab": key, id: `tab-${key}`,
                                             onclick: () => show(key) }, label));
  }
  addActions(actions, name, problem);
  let timer = 0;
  const draw = () => {
    const vm = vms.items.get(name);
    clear(facts);
    if (!vm) { facts.append(h("p", {}, "No such VM (or not loaded yet).")); return; }
    facts.append(details(vm));
    clearInterval(timer);
    if ((vm.status || {}).shutdownDeadline) timer = setInterval(() => countdown(vm), 500);
    countdown(vm);
  };
  const off = vms.subscribe((_c, change) => {
    if (change.reshaped || change.names.has(name)) draw();
  });
  vms.load().then(draw, (err) => problem.append(errorBox(err)));
  nodes.load().catch(() => {});
  showFigures(extra, name);
  show("events");
  return () => { off(); clearInterval(timer); if (closePane) closePane(); };
}

function details(vm) {
  const meta = vm.spec.meta || {};
  const s = vm.status || {};
  const p = vm.placement || {};
  const row = (k, v, id) => [h("dt", {}, k), h("dd", id ? { id } : {}, v)];
  return h("dl", { class: "kv" },
    row("State", [state(s.state), ` desired ${vm.spec.state}`,
                  h("span", { id: "countdown", class: "small" })], "vm-state"),
    row("Reason", `${s.reason || "-"} (since ${ago(s.since)})`),
    row("Node", s.node || "-", "vm-node"),
    row("Placement", `${p.node || "-"}${p.lastNode ? `, last node ${p.lastNode}` : ""}`
      + `${p.reason ? ` — ${p.reason}` : ""}`, "vm-placement"),
    row("Limits", (meta.limits || []).join(", ") || "any node", "vm-limits"),
    row("Selector", meta.selector || "-"),
    row("Autorestart", String(!!meta.autorestart)),
    row("Migration", meta.migrationMethod || "-"),
    row("Shutdown timeout", `${vm.spec.shutdownTimeout ?? "-"} s`),
    row("Labels", Object.entries(vm.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "-"));
}

function countdown(vm) {
  const el = document.getElementById("countdown");
  const deadline = (vm.status || {}).shutdownDeadline;
  if (!el) return;
  el.textContent = deadline && vm.status.state === "shutting-down"
    ? ` — forced off in ${Math.max(0, Math.ceil(deadline - Date.now() / 1000))} s unless it `
      + "stops first; Start aborts the shutdown" : "";
}

const VERBS = [["start", "Start"], ["shutdown", "Shutdown"], ["stop", "Stop (force)"],
               ["restart", "Restart"]];

function addActions(actions, name, problem) {
  const allowed = may("operator");
  const run = (what, fn) => async () => {
    clear(problem);
    try { await fn(); } catch (err) { problem.append(errorBox(err)); }
  };
  for (const [verb, label] of VERBS) {
    actions.append(h("button", { id: `do-${verb}`, disabled: !allowed, class: verb === "stop" ? "danger" : "",
      onclick: run(verb, async () => {
        if (await ask(`${label} ${name}?`, verbText(verb), { ok: label })) {
          await post(`/vm/${name}/state`, { state: verb });
        }
      }) }, label));
  }
  for (const action of ["migrate", "move"]) {
    actions.append(h("button", { id: `do-${action}`, disabled: !allowed,
      onclick: run(action, () => placeDialog(name, action)) },
      action === "migrate" ? "Migrate…" : "Move…"));
  }
  actions.append(h("button", { id: "do-unmigrate", disabled: !allowed, onclick: run("unmigrate",
    async () => {
      if (await ask(`Unmigrate ${name}?`, "It returns to its last node.", { ok: "Unmigrate" })) {
        await post(`/vm/${name}/node`, { action: "unmigrate" });
      }
    }) }, "Unmigrate"));
  actions.append(h("button", { id: "do-meta", disabled: !allowed,
                               onclick: run("meta", () => metaDialog(name)) }, "Edit metadata…"));
  actions.append(h("button", { id: "do-yaml", disabled: !allowed,
                               onclick: run("yaml", () => editYaml(name)) }, "Edit YAML…"));
}

function verbText(verb) {
  return { start: "It starts (and a shutdown in progress is aborted).",
           shutdown: "ACPI shutdown; forced off after its shutdown timeout.",
           stop: "Powered off at once.", restart: "Shut down, then started again." }[verb];
}

// The nodes a VM may go to: alive, ready, inside its limits, not where it is, and not
// against a strict affinity rule.
export async function targets(vm) {
  const limits = (vm.spec.meta || {}).limits || [];
  const here = (vm.status || {}).node || (vm.placement || {}).node;
  const rules = (await get("/rule")).items.filter((r) => r.spec.strict && r.spec.vms.includes(vm.metadata.name));
  const where = (other) => { const o = vms.items.get(other); return o && ((o.status || {}).node || (o.placement || {}).node); };
  return [...nodes.items.values()].filter((n) => {
    const s = n.status || {};
    const name = n.metadata.name;
    if (!n.alive || s.daemonState !== "run" || s.domainState !== "ready" || name === here) return false;
    if (limits.length && !limits.includes(name)) return false;
    return rules.every((r) => {
      const others = r.spec.vms.filter((v) => v !== vm.metadata.name).map(where).filter(Boolean);
      return r.spec.kind === "apart" ? !others.includes(name) : others.every((o) => o === name);
    });
  }).map((n) => n.metadata.name).sort();
}

async function placeDialog(name, action) {
  const vm = vms.items.get(name);
  const choices = await targets(vm);
  const select = h("select", { name: "node", id: "target" },
    ...choices.map((n) => h("option", { value: n }, n)));
  const what = action === "migrate" ? "Migrate (it returns with Unmigrate)" : "Move (for good)";
  const answer = await ask(`${what}: ${name}`, choices.length ? "" : "No node can take it now.",
                           { ok: action === "migrate" ? "Migrate" : "Move", fields: [h("label", {}, "to ", select)] });
  if (answer && answer.node) await post(`/vm/${name}/node`, { action, node: answer.node });
}

async function metaDialog(name) {
  const meta = vms.items.get(name).spec.meta || {};
  const fields = [
    h("label", {}, "Limits (comma-separated nodes) ", h("input", { name: "limits", id: "meta-limits", value: (meta.limits || []).join(",") })),
    h("br"),
    h("label", {}, "Selector ", h("select", { name: "selector", id: "meta-selector" },
      ...["none", "mem", "memprov", "load", "vcpus", "vms"].map((s) => h("option", { value: s, selected: s === meta.selector }, s)))),
    h("br"),
    h("label", {}, "Autorestart ", h("select", { name: "autorestart" },
      ...["false", "true"].map((v) => h("option", { value: v, selected: String(!!meta.autorestart) === v }, v)))),
    h("br"),
    h("label", {}, "Migration method ", h("select", { name: "migration_method" },
      ...["any", "live", "shutdown"].map((v) => h("option", { value: v, selected: meta.migrationMethod === v }, v)))),
  ];
  const answer = await ask(`Metadata of ${name}`, "", { ok: "Save", fields });
  if (!answer) return;
  await post(`/vm/${name}/meta`, {
    limits: answer.limits.split(",").map((s) => s.trim()).filter(Boolean),
    selector: answer.selector, autorestart: answer.autorestart === "true",
    migration_method: answer.migration_method,
  });
}

async function showEvents(pane, name) {
  const list = h("div", { class: "events", id: "vm-events" });
  pane.append(list);
  try {
    const found = await get("/event", { vm: name, limit: 30 });
    for (const e of found.items.reverse()) {
      const how = e.kind === "migrated" ? ` (${e.duration}s, downtime ${e.downtimeMs} ms)` : "";
      list.append(h("div", {}, h("span", { class: "small" }, ago(e.time)), " ", h("b", {}, e.kind),
                    " ", e.message, how));
    }
    if (!found.items.length) list.append("No events yet.");
  } catch (err) { pane.append(errorBox(err)); }
}

async function showLog(pane, name) {
  const log = h("pre", { class: "log", id: "vm-log" });
  pane.append(log);
  try { log.textContent = await text(`/vm/${name}/log`, { lines: 200 }) || "(empty)"; }
  catch (err) { pane.append(errorBox(err)); }
}

async function showFigures(box, name) {
  try {
    const found = await get(`/vm/${name}/figures`);
    const f = found.figures || {};
    box.append(h("h2", {}, "Now"), h("div", { class: "small", id: "vm-figures" },
      `CPU ${(f.cpuPercent ?? 0).toFixed(1)} %, memory ${((f.memoryBytes || 0) / 2 ** 20).toFixed(0)} MiB, `
      + `disk ${((f.diskReadBytesPerSecond || 0) / 1024).toFixed(0)} / ${((f.diskWriteBytesPerSecond || 0) / 1024).toFixed(0)} KiB/s, `
      + `network ${((f.networkReceiveBytesPerSecond || 0) / 1024).toFixed(0)} / ${((f.networkTransmitBytesPerSecond || 0) / 1024).toFixed(0)} KiB/s`));
  } catch { /* not running, or its node has no endpoint: nothing to show */ }
}

// The VM's own document (as `herdctl get vm NAME -o yaml`, with its resourceVersion: an
// apply fails if it changed meanwhile) opened in Apply, where the API shows the diff.
async function editYaml(name) {
  const vm = await get(`/vm/${name}`);
  const { dump } = await import("/ui/vendor/js-yaml/dist/js-yaml.mjs");
  const doc = { apiVersion: vm.apiVersion, kind: "VM", metadata: vm.metadata, spec: vm.spec };
  sessionStorage.setItem("herd.apply", dump(doc, { lineWidth: 100 }));
  location.hash = "#/apply";
}
