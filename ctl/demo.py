"""`make demo`: bring up a local cluster and show it working.

The local cluster (`herdctl dev up`, issue #6) needs the API (#5) and the CLI (#6), which
are not built yet. Until they are, the demo only sets up (done by `make setup` before this
runs) and says plainly what is not built; it never pretends. Called by `make demo`.
"""

from __future__ import annotations

import sys

BUILT = [
    "store: ZooKeeper client, version-checked writes, atomic commit and rename, "
    "watched cache with one persistent recursive watch, placement rules, election",
    "schemas: VM, Node, placement, status, config and API request bodies",
    "statemachine: the VM lifecycle table with the abortable shutdown",
    "herd-node: the node daemon (reconcile loop on libvirt, ownership, adoption)",
    "the cluster controllers: election, scheduling, flush/ready, autorestart, fencing",
]
NOT_BUILT = [
    "herd-api, the REST API (issue #5)",
    "herdctl and `herdctl dev up`, the local cluster this demo will start (issue #6)",
]


def main() -> int:
    print("Herd demo: set-up is done (.venv, ZooKeeper, libvirt).")
    print("\nBuilt so far (run `make test` to see it work against a real ZooKeeper):")
    for line in BUILT:
        print(f"  - {line}")
    print("\nNot built yet, so there is no local cluster to show:")
    for line in NOT_BUILT:
        print(f"  - {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
