"""Realistic VM documents for the benchmarks (a spec with domain XML), defined as the API does."""

from __future__ import annotations

from store import txn, vms
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


def vm_doc(name: str, node: str = "hv1") -> Doc:
    return {"apiVersion": "herd/v1", "kind": "VM",
            "metadata": {"name": name, "labels": {"tier": "web"}, "generation": 1},
            "spec": {"state": "running", "stopMode": "graceful", "restartRequest": 0,
                     "node": node, "shutdownTimeout": None,
                     "meta": {"limits": [], "selector": "none", "autorestart": False,
                              "migrationMethod": "any"},
                     "xml": XML.format(name=name)}}


def create_ops(paths: Paths, name: str, node: str = "hv1") -> list[txn.Op]:
    """The define transaction of one VM, as the API server builds it."""
    return vms.define_ops(paths, vm_doc(name, node))
