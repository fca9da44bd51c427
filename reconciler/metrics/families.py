"""herd-node's event metrics: the counters and histograms that code elsewhere bumps.

Process-wide, in prometheus-client's default registry next to the controller runner's
`herd_reconcile_*` and `herd_workqueue_depth` (`reconciler.runtime.controller`), every one
labelled by node. Bumped by the outgoing live migrations and their arrival
(`reconciler.vm.migration`), the primary's fence (`reconciler.cluster.controllers`) and the
ZooKeeper session listener of `reconciler.metrics.exporter`; served by herd-node's
/metrics (`reconciler.metrics.exporter`). Imports nothing of the project.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, Counter, Histogram

MIGRATION_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
DOWNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

MIGRATIONS = Counter("herd_migrations", "Outgoing live migrations by the VM's migration "
                     "method and result (done, failed)", ("node", "method", "result"),
                     registry=REGISTRY)
MIGRATION_DURATION = Histogram("herd_migration_duration_seconds", "Live migrations that "
                               "arrived here: start to owner handover", ("node",),
                               buckets=MIGRATION_BUCKETS, registry=REGISTRY)
MIGRATION_DOWNTIME = Histogram("herd_migration_downtime_seconds", "Live migrations that "
                               "arrived here: the guest's final pause (libvirt's downtime)",
                               ("node",), buckets=DOWNTIME_BUCKETS, registry=REGISTRY)
FENCES = Counter("herd_fences", "Fences run by the primary on this node, by target and "
                 "result (done, failed)", ("node", "target", "result"), registry=REGISTRY)
ZK_ERRORS = Counter("herd_zookeeper_errors", "ZooKeeper connection interruptions "
                    "(session suspended)", ("node",), registry=REGISTRY)
ZK_SESSION_LOSSES = Counter("herd_zookeeper_session_losses", "ZooKeeper sessions lost "
                            "(expired; a new one followed)", ("node",), registry=REGISTRY)
