"""VM-level store operations: the znodes of a new VM, and its atomic rename.

A VM is three persistent znodes created together (DESIGN.md section 2): the object
(`/vms/<name>`, written by the API), its `placement` (API and the primary's controllers)
and its `status` (the responsible node). Creating all three in one transaction means every
later writer can do a version-checked `set` and never races a create. Called by the API
server (define, apply, rename), the benchmarks and tests.
"""

from __future__ import annotations

from schemas.domainxml import rename_domain_xml
from store import attachments, macs, txn
from store.client import Store
from store.codec import Doc
from store.paths import Paths


def initial_placement(vm: Doc) -> Doc:
    """Placement of a newly defined VM: its requested node, or none (the scheduler places it)."""
    node = vm.get("spec", {}).get("node")
    return {"node": node, "lastNode": None, "reason": "defined" if node else "",
            "autorestartPending": False, "home": None}


def initial_status() -> Doc:
    return {"state": "stopped", "node": None, "reason": "defined", "since": 0.0,
            "observedGeneration": 0, "observedRestart": 0, "shutdownDeadline": None,
            "conditions": []}


def define_ops(paths: Paths, vm: Doc) -> list[txn.Op]:
    """The creates of a new VM: object, placement, status, its NICs' MACs (`store.macs`)
    and its volumes' attachments (`store.attachments`), for one transaction."""
    name = vm["metadata"]["name"]
    return [txn.Create(paths.vm(name), vm),
            txn.Create(paths.vm_placement(name), initial_placement(vm)),
            txn.Create(paths.vm_status(name), initial_status()),
            *macs.claim_ops(paths, name, vm.get("spec", {}).get("xml")),
            *attachments.claim_ops(paths, name, vm.get("spec", {}).get("xml"))]


def _renamer(old: str, new: str) -> txn.Rewrite:
    def rewrite(rel: str, doc: Doc) -> Doc:
        if rel != "":
            return doc
        spec = dict(doc.get("spec", {}))
        if "xml" in spec:
            spec["xml"] = rename_domain_xml(spec["xml"], old, new)
        return {**doc, "metadata": {**doc.get("metadata", {}), "name": new}, "spec": spec}
    return rewrite


def rename_vm(store: Store, old: str, new: str) -> txn.CommitResult:
    """Rename a stopped VM: its whole subtree, name and domain XML, and its MACs' entries,
    in one transaction."""
    xml = store.get(store.paths.vm(old)).doc.get("spec", {}).get("xml")
    return txn.rename_vm(store, old, new, rewrite=_renamer(old, new),
                         extra=[*macs.move_ops(store, old, new, xml),
                                *attachments.move_ops(store, old, new, xml)])
