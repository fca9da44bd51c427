// The VM table (#/vms): live from the watch stream, filtered (name, node, state, labels;
// `key:value` narrows to one column) and sorted by any column. Rows are virtualised: only
// those in view exist in the page, so 10,000 VMs scroll and update without freezing.
import { vms, vmRow } from "./model.js";
import { errorBox, h, state } from "./dom.js";

const COLUMNS = [["name", "Name"], ["state", "State"], ["want", "Desired"], ["node", "Node"],
                 ["placed", "Placed"], ["labels", "Labels"]];
const ROW = 30;  // px, as --row in style.css
const collator = new Intl.Collator(undefined, { numeric: true });
const EXTRA = 10;  // rows drawn above and below the view

export function matches(row, words) {
  return words.every((w) => {
    const [key, value] = w.includes(":") ? w.split(":", 2) : [null, w];
    if (key && key in row) return String(row[key]).toLowerCase().includes(value);
    return [row.name, row.node, row.state, row.labels].some((v) => v.toLowerCase().includes(w));
  });
}

export function vmsView(view) {
  let sortKey = "name";
  let descending = false;
  let rows = [];
  let marked = false;
  const filter = h("input", { id: "filter", type: "search", placeholder:
    "filter: name, node, state, label (state:running, node:hv1)", size: 50 });
  const count = h("span", { class: "small", id: "count" });
  const head = h("div", { class: "head" }, ...COLUMNS.map(([key, label]) =>
    h("div", { "data-sort": key, onclick: () => {
      descending = sortKey === key ? !descending : false;
      sortKey = key;
      rebuild();
    } }, label)));
  const spacer = h("div", { style: "height:0" });
  const body = h("div", { class: "body", id: "vm-rows" }, spacer);
  view.append(h("h1", {}, "VMs"), h("div", { class: "toolbar" }, filter, count),
              h("div", { class: "table" }, head, body));

  let at = new Map();  // name -> its index in rows
  const words = () => filter.value.toLowerCase().split(/\s+/).filter(Boolean);
  const order = (a, b) => collator.compare(String(a[sortKey]), String(b[sortKey]))
    || collator.compare(a.name, b.name);
  const rebuild = () => {
    const wanted = words();
    rows = [...vms.items.values()].map(vmRow).filter((r) => matches(r, wanted));
    rows.sort(order);
    if (descending) rows.reverse();
    at = new Map(rows.map((r, i) => [r.name, i]));
    count.textContent = `${rows.length} of ${vms.items.size} VMs`;
    if (!marked && vms.items.size) {  // for bench/ui_bench.py: route -> first full render
      marked = true;
      performance.mark("herd:vm-table");
    }
    spacer.style.height = `${rows.length * ROW}px`;
    paint();
  };
  const paint = () => {
    const first = Math.max(0, Math.floor(body.scrollTop / ROW) - EXTRA);
    const last = Math.min(rows.length, Math.ceil((body.scrollTop + body.clientHeight) / ROW) + EXTRA);
    for (const el of [...body.querySelectorAll(".row")]) el.remove();
    for (let i = first; i < last; i++) body.append(rowOf(rows[i], i));
  };
  // A change that keeps every changed row where it is (same sort key, still matching the
  // filter) only replaces those rows: no sort of 10,000 rows per frame of the watch stream.
  const update = (_collection, change) => {
    if (change.reshaped) return rebuild();
    const wanted = words();
    for (const name of change.names) {
      const vm = vms.items.get(name);
      const row = vm && vmRow(vm);
      const index = at.get(name);
      const matching = row && matches(row, wanted);
      if (index === undefined) { if (matching) return rebuild(); continue; }
      if (!matching || String(row[sortKey]) !== String(rows[index][sortKey])) return rebuild();
      rows[index] = row;
    }
    paint();
  };
  filter.addEventListener("input", rebuild);
  body.addEventListener("scroll", () => requestAnimationFrame(paint), { passive: true });
  const off = vms.subscribe(update);
  vms.load().then(rebuild, (err) => view.append(errorBox(err)));
  filter.focus();
  return off;
}

function rowOf(row, index) {
  return h("div", { class: "row", style: `top:${index * ROW}px`, "data-vm": row.name },
    h("div", {}, h("a", { href: `#/vm/${encodeURIComponent(row.name)}` }, row.name)),
    h("div", {}, state(row.state)), h("div", {}, row.want), h("div", {}, row.node || "-"),
    h("div", {}, row.placed || "-"), h("div", { class: "small" }, row.labels));
}
