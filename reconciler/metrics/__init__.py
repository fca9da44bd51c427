"""herd-node's Prometheus metrics (issue #16): what it publishes and where.

- `families`: the event counters and histograms bumped elsewhere (migrations, fences,
  ZooKeeper session), process-wide in prometheus-client's default registry;
- `collector`: the figures read at scrape time (every VM from one bulk stats call, the
  node's published status, libvirt errors, ZooKeeper connection);
- `exporter`: `MetricsExporter`, the aiohttp `GET /metrics` on `metrics_address`, made by
  `reconciler.daemon`.

`METRIC_NAMES` is the contract with the alert rules and the dashboard (`monitoring/`):
every family herd-node publishes, as exposed (counters with `_total`, histograms without
`_bucket`/`_sum`/`_count`); tests/integration/test_node_metrics.py checks a real scrape
publishes exactly these.
"""

from reconciler.metrics.exporter import MetricsExporter

METRIC_NAMES: frozenset[str] = frozenset({
    # per VM
    "herd_vm_cpu_seconds_total", "herd_vm_memory_actual_bytes",
    "herd_vm_memory_balloon_maximum_bytes", "herd_vm_memory_rss_bytes",
    "herd_vm_block_read_bytes_total", "herd_vm_block_write_bytes_total",
    "herd_vm_block_read_requests_total", "herd_vm_block_write_requests_total",
    "herd_vm_network_receive_bytes_total", "herd_vm_network_transmit_bytes_total",
    "herd_vm_network_receive_packets_total", "herd_vm_network_transmit_packets_total",
    # per node
    "herd_node_vms", "herd_node_memory_total_bytes", "herd_node_memory_free_bytes",
    "herd_node_memory_provisioned_bytes", "herd_node_vcpus_allocated", "herd_node_load1",
    "herd_node_pool_capacity_bytes", "herd_node_pool_available_bytes",
    "herd_libvirt_errors_total", "herd_zookeeper_errors_total", "herd_zookeeper_connected",
    "herd_zookeeper_session_losses_total", "herd_migrations_total",
    "herd_migration_duration_seconds", "herd_migration_downtime_seconds",
    "herd_fences_total", "herd_node_stats_calls_total",
    # the controller runner's (reconciler.runtime.controller)
    "herd_reconcile_duration_seconds", "herd_reconcile_total", "herd_reconcile_retries_total",
    "herd_workqueue_depth",
})

__all__ = ["METRIC_NAMES", "MetricsExporter"]
