// The page's live copy of the cluster: VMs and Nodes listed once, then kept current by the
// watch stream (no polling); views subscribe and are told once per animation frame at
// most, however many events arrived.
import { get, watch } from "./api.js";

class Collection {
  constructor(kind, path) {
    this.kind = kind;
    this.path = path;
    this.items = new Map();
    this.subscribers = new Set();
    this.loaded = null;
    this.stop = null;
    this.frame = 0;
    this.touched = new Set();  // names changed since subscribers were last told
    this.reshaped = true;  // objects came or went (or a relist): a view rebuilds
  }

  load() {
    if (!this.loaded) this.loaded = this.relist();
    return this.loaded;
  }

  async relist() {
    const answer = await get(this.path, this.kind === "VM" ? { xml: "false" } : undefined);
    this.items = new Map(answer.items.map((o) => [o.metadata.name, o]));
    this.changed(null, true);
    if (this.stop) this.stop();
    this.stop = watch({
      kind: this.kind, resourceVersion: answer.resourceVersion,
      onEvent: (ev) => this.apply(ev),
      onGone: () => { this.relist(); },
    });
  }

  apply(ev) {
    const known = this.items.has(ev.name);
    if (ev.type === "DELETED") this.items.delete(ev.name);
    else if (ev.object) this.items.set(ev.name, ev.object);
    this.changed(ev.name, known !== this.items.has(ev.name));
  }

  subscribe(fn) {
    this.subscribers.add(fn);
    return () => this.subscribers.delete(fn);
  }

  // Subscribers get (collection, {names, reshaped}) once per animation frame at most:
  // the names changed meanwhile, and whether objects came or went.
  changed(name, reshaped) {
    if (name) this.touched.add(name);
    this.reshaped = this.reshaped || reshaped;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      const change = { names: this.touched, reshaped: this.reshaped };
      this.touched = new Set();
      this.reshaped = false;
      for (const fn of this.subscribers) fn(this, change);
    });
  }

  close() {
    if (this.stop) this.stop();
    this.stop = null;
    this.loaded = null;
  }
}

export const vms = new Collection("VM", "/vm");
export const nodes = new Collection("Node", "/node");

export function closeAll() { vms.close(); nodes.close(); }

// A VM's columns as the table and filters see them.
export function vmRow(vm) {
  const status = vm.status || {};
  const placement = vm.placement || {};
  return {
    name: vm.metadata.name,
    state: status.state || "unknown",
    want: vm.spec.state,
    node: status.node || placement.node || "",
    placed: placement.node || "",
    labels: Object.entries(vm.metadata.labels || {}).map(([k, v]) => `${k}=${v}`).join(" "),
    reason: status.reason || placement.reason || "",
  };
}
