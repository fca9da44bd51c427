"""Realistic VM documents for the benchmarks (spec with domain XML, placement, status)."""

from __future__ import annotations

from store import txn
from store.codec import Doc
from store.paths import Paths

XML = """<domain type='kvm'>
  <name>{name}</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>2</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'><source file='/var/lib/herd/{name}.qcow2'/>
      <target dev='vda' bus='virtio'/></disk>
    <interface type='bridge'><source bridge='br0'/><model type='virtio'/></interface>
  </devices>
</domain>
"""


def vm_docs(name: str, node: str = "hv1") -> tuple[Doc, Doc, Doc]:
    vm = {"apiVersion": "herd/v1", "kind": "VM",
          "metadata": {"name": name, "labels": {"tier": "web"}, "generation": 1},
          "spec": {"state": "running", "stopMode": "graceful", "restartRequest": 0,
                   "node": node, "shutdownTimeout": None,
                   "meta": {"limits": [], "selector": "none", "autorestart": False,
                            "migrationMethod": "any"},
                   "xml": XML.format(name=name)}}
    placement = {"node": node, "lastNode": None, "reason": "", "autorestartPending": False,
                 "home": None}
    status: Doc = {"state": "stopped", "node": None, "reason": "", "since": 0.0,
              "observedGeneration": 0, "observedRestart": 0, "conditions": []}
    return vm, placement, status


def create_ops(paths: Paths, name: str, node: str = "hv1") -> list[txn.Op]:
    vm, placement, status = vm_docs(name, node)
    return [txn.Create(paths.vm(name), vm), txn.Create(paths.vm_placement(name), placement),
            txn.Create(paths.vm_status(name), status)]
