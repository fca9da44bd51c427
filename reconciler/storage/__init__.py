"""herd-node's side of storage (issue #15): the cluster's storage pools as libvirt storage
pools on this node (`nodepools`) and the volumes it holds (`nodevolumes`), reconciled
like VMs and networks. The decisions are
pure, in `statemachine.poolplan`; the libvirt calls in `reconciler.libvirt.pools`.
"""
