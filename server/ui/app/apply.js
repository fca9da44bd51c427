// Apply (#/apply): YAML documents (as `herdctl apply -f`; a VM's page opens its own here),
// checked by the API first (`dry_run`: each object's changes, the XML's as a line diff),
// applied on confirmation; the API's field errors shown as it gives them.
import { may, post } from "./api.js";
import { clear, errorBox, h } from "./dom.js";

export function applyView(view) {
  const area = h("textarea", { class: "yaml", id: "yaml", spellcheck: "false",
    placeholder: "apiVersion: herd/v1\nkind: VM\nmetadata: {name: web1}\nspec: ..." });
  const out = h("div", { id: "apply-result" });
  const check = h("button", { id: "apply-check", class: "primary", disabled: !may("operator") },
                  "Show changes");
  const apply = h("button", { id: "apply-do", disabled: true }, "Apply");
  view.append(h("h1", {}, "Apply"), area, h("div", { class: "actions" }, check, apply), out);
  const draft = sessionStorage.getItem("herd.apply");  // a VM's page sent its document
  if (draft) { area.value = draft; sessionStorage.removeItem("herd.apply"); }
  let planned = null;
  area.addEventListener("input", () => { apply.disabled = true; planned = null; });
  check.addEventListener("click", async () => {
    clear(out);
    apply.disabled = true;
    try {
      const objects = await parse(area.value);
      const plan = await post("/apply", { objects, dry_run: true });
      out.append(await changes(plan.results || []));
      planned = objects;
      apply.disabled = false;
    } catch (err) { out.append(errorBox(err)); }
  });
  apply.addEventListener("click", async () => {
    clear(out);
    try {
      const done = await post("/apply", { objects: planned });
      out.append(h("div", { id: "applied" }, (done.results || []).map((r) =>
        h("div", {}, `${r.kind} ${r.name}: ${r.action}`))));
      apply.disabled = true;
    } catch (err) { out.append(errorBox(err)); }
  });
}

async function parse(textValue) {
  const { loadAll } = await import("/ui/vendor/js-yaml/dist/js-yaml.mjs");
  let docs;
  try { docs = loadAll(textValue).filter((d) => d !== null && d !== undefined); }
  catch (err) { throw new Error(`not YAML: ${err.message}`); }
  if (!docs.length) throw new Error("no document given");
  return docs;
}

async function changes(results) {
  const { diffLines } = await import("/ui/vendor/diff/libesm/index.js");
  const box = h("div", { class: "diff", id: "apply-diff" });
  for (const r of results) {
    box.append(h("div", {}, h("b", {}, `${r.kind} ${r.name}: ${r.action}`)));
    for (const c of r.changes || []) {
      if (typeof c.old === "string" && typeof c.new === "string" && (c.old + c.new).includes("\n")) {
        box.append(h("div", {}, `  ${c.path}:`));
        for (const part of diffLines(c.old, c.new)) {
          const mark = part.added ? "+ " : part.removed ? "- " : "  ";
          for (const line of part.value.replace(/\n$/, "").split("\n")) {
            box.append(h("div", { class: part.added ? "add" : part.removed ? "del" : "" }, `    ${mark}${line}`));
          }
        }
      } else {
        box.append(h("div", {}, `  ${c.path}: `, h("span", { class: "del" }, JSON.stringify(c.old)),
                     " → ", h("span", { class: "add" }, JSON.stringify(c.new))));
      }
    }
  }
  return box;
}
