"""The node daemon `herd-node`: libvirt adapter, work queue, per-VM reconcile, node
registration and, on the elected primary, the cluster controllers.
"""
