// The cluster at a glance (#/): the primary, maintenance, every node's states and its
// resources as bars, recent events; and one node's page (#/node/NAME) with flush and
// ready, showing each of its VMs as it moves.
import { get, may, post } from "./api.js";
import { nodes, vms, vmRow } from "./model.js";
import { ago, ask, clear, errorBox, h, state } from "./dom.js";

const MIB = 1024;

function bar(used, total, extra) {
  const pct = (v) => `${Math.min(100, total ? (100 * v) / total : 0).toFixed(1)}%`;
  return h("div", { class: "bar" },
    extra !== undefined ? h("span", { class: "prov", style: `width:${pct(extra)}` }) : null,
    h("span", { style: `width:${pct(used)}` }));
}

function gib(mib) { return `${((mib || 0) / MIB).toFixed(1)} GiB`; }

export function nodeCard(node) {
  const s = node.status || {};
  const r = s.resources || {};
  const name = node.metadata.name;
  return h("div", { class: "card", "data-node": name },
    h("h3", {}, h("a", { href: `#/node/${name}` }, name),
      h("span", {}, node.primary ? h("span", { class: "state run" }, "primary") : "", " ",
        state(node.alive ? s.daemonState : "dead"), " ", state(s.domainState))),
    h("div", { class: "small" }, `memory ${gib(r.memUsed)} used, ${gib(r.memProv)} provisioned, `
      + `${gib(r.memFree)} free of ${gib(r.memTotal)}`),
    bar(r.memUsed, r.memTotal, r.memProv),
    h("div", { class: "small" }, `vCPUs ${r.vcpuAlloc ?? "-"} of ${r.vcpuTotal ?? "-"}, `
      + `load ${r.load ?? "-"}, ${r.vms ?? 0} VMs`),
    bar(r.vcpuAlloc, r.vcpuTotal),
    h("div", { class: "small" }, `fence ${node.spec.fence}, heartbeat ${ago(s.heartbeat)}`));
}

export function clusterView(view) {
  const head = h("div");
  const cards = h("div", { class: "cards", id: "nodes" });
  const events = h("div", { class: "events", id: "events" });
  view.append(h("h1", {}, "Cluster"), head, h("h2", {}, "Nodes"), cards,
              h("h2", {}, "Recent events"), events);
  const refresh = async () => {
    try {
      const [status, recent] = await Promise.all([get("/status"), get("/event", { limit: 60 })]);
      recent.items = recent.items.filter((e) => e.kind !== "audit").slice(-15);  // Herd's own
      clear(head);
      head.append(h("div", { class: "kv" },
        h("dt", {}, "Primary"), h("dd", { id: "primary" }, status.primary || "none"),
        h("dt", {}, "VMs"), h("dd", {}, `${status.vms.total} (${Object.entries(status.vms.state)
          .map(([k, v]) => `${v} ${k}`).join(", ")})`),
        h("dt", {}, "Maintenance"), h("dd", { id: "maintenance" },
          status.config.maintenance ? "ON: fencing and recovery paused" : "off")));
      clear(events);
      for (const e of recent.items.reverse()) {
        events.append(h("div", {}, h("span", { class: "small" }, ago(e.time)), " ",
                        h("b", {}, e.kind), " ", e.message));
      }
    } catch (err) { clear(head); head.append(errorBox(err)); }
  };
  const draw = () => {
    clear(cards);
    for (const node of [...nodes.items.values()].sort((a, b) =>
      a.metadata.name.localeCompare(b.metadata.name))) cards.append(nodeCard(node));
  };
  const unsubscribe = nodes.subscribe(() => { draw(); refresh(); });
  nodes.load().then(draw, (err) => cards.append(errorBox(err)));
  refresh();
  return unsubscribe;
}

export function nodeView(view, name) {
  const card = h("div");
  const actions = h("div", { class: "actions" });
  const problem = h("div");
  const list = h("div", { class: "events", id: "node-vms" });
  view.append(h("h1", {}, `Node ${name}`), card, actions, problem,
              h("h2", {}, "VMs placed or running here"), list);
  for (const verb of ["flush", "ready"]) {
    actions.append(h("button", { id: `node-${verb}`, disabled: !may("operator"),
      onclick: () => domainState(name, verb, problem) }, verb === "flush" ? "Flush" : "Ready"));
  }
  const draw = () => {
    const node = nodes.items.get(name);
    clear(card);
    if (node) card.append(nodeCard(node));
    clear(list);
    for (const row of [...vms.items.values()].map(vmRow)
      .filter((r) => r.node === name || r.placed === name).sort((a, b) => a.name.localeCompare(b.name))) {
      list.append(h("div", { "data-vm": row.name, "data-state": row.state }, h("a", { href: `#/vm/${row.name}` }, row.name),
        " ", state(row.state), row.node !== row.placed ? ` moving ${row.node} → ${row.placed}` : "",
        " ", h("span", { class: "small" }, row.reason)));
    }
  };
  const offs = [nodes.subscribe(draw), vms.subscribe(draw)];
  Promise.all([nodes.load(), vms.load()]).then(draw, (err) => problem.append(errorBox(err)));
  return () => offs.forEach((off) => off());
}

async function domainState(name, verb, problem) {
  clear(problem);
  const sure = await ask(`${verb === "flush" ? "Flush" : "Ready"} ${name}?`,
    verb === "flush" ? "Its VMs move to other nodes (live where they can)."
      : "VMs whose last node it is come back.", { ok: verb === "flush" ? "Flush" : "Ready" });
  if (!sure) return;
  try { await post(`/node/${name}/domain-state`, { state: verb }); }
  catch (err) { problem.append(errorBox(err)); }
}
