"""herd-node's side of client networks (issue #14): the links, FDB flood lists and libvirt
networks of ONE node, reconciled like VMs (observe -> plan one step -> act).

- `links`: `Links`, the node's links through `ip` / `bridge` (optionally in a network
  namespace): `observe()` and `apply(step)`;
- `libvirtnet`: `LibvirtNetworks`, libvirt's bridge-mode networks on the node's connection;
- `netreconcile`: `NetworkReconciler`, one network's `reconcile(spec)` and the garbage
  collection of networks no longer wanted (`collect(specs)`, `remove(network)`).
The decisions are pure, in `statemachine.netplan`. Used by `reconciler.daemon`.
The primary's gateway of a managed network (addresses on the bridge these modules make,
dnsmasq, its lease channel) is `gateway`, `dnsmasq`, `leasechannel` and `leasescript`.
"""
