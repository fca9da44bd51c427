"""The fault suite (issue #8): a real cluster under a seeded schedule of faults, a client
stream of changes, an independent history of where VMs ran, and a checker of Herd's
reliability promises.

- `model`: the records every part shares (client operations, faults, the final ZooKeeper
  snapshot, the evidence handed to the checker). Pure.
- `cluster`: the processes — a 3-member ZooKeeper ensemble, `herd-node` on test-driver
  node files, one or two `herd-api` — with kill, pause, restart, and a record of every
  process exit.
- `workload`: VMs defined through the API and a stream of changes, each with its result.
- `faults`: the seeded schedule and the injector that carries it out.
- `recorder`: sources of "runs" (when a VM ran on which node) that do not trust Herd; the
  test-driver one reads the nodes' own libvirt event logs, the real-QEMU one the history
  hostwatch takes from every host's libvirtd (`RunSource`).
- `qemu`: the real-QEMU variant's nodes (`herd-node` on `ctl.dev.qemu` hosts, the fence
  that powers a host off) and its hostwatch process (`ChaosConfig(hypervisor="qemu")`).
- `checker`: the promises, checked from the evidence only. Pure.
- `report`: the one-screen report per seed.
- `run`: one seed from start to report (`run_seed`), used by tests/e2e/test_chaos.py,
  tests/e2e/test_chaos_qemu.py and `bench.chaos`.
"""
