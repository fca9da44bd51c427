"""The VM controller of herd-node: one VM's reconcile on this node (`reconcile`)."""
