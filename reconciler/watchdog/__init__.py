"""herd-watchdog: self-fencing for nodes without an out-of-band fence agent (`fence: self`).

A small process per host, apart from herd-node (after Proxmox's watchdog-mux), that
herd-node pets while it holds its ZooKeeper session (`reconciler.node.selffence`). When
the pets stop for longer than the timeout the last one named (a hung or killed daemon, a
lost session), it kills the petting daemon and powers every guest off; with a hardware
or softdog device configured it also stops feeding it, so the host resets. The primary
recovers the VMs of such a node only once its session expired and that timeout passed
(`reconciler.cluster.controllers`). `deadlines` is the pure bookkeeping, `mux` the server,
`main` the command line.
"""
