"""Real ZooKeeper servers for tests and benchmarks: the launcher lives in
`ctl.dev.zookeeper` (it also serves `herdctl dev up`); this module re-exports its public
names so that `from tests.support.zkserver import ZooKeeperCluster` keeps working. Used by
`tests/conftest.py`, integration and e2e tests, and `bench/`.
"""

from __future__ import annotations

from ctl.dev.zookeeper import (
    JARS,
    MAIN,
    Member,
    ZooKeeperCluster,
    ZooKeeperUnavailable,
    four_letter,
    free_port,
)

__all__ = [
    "JARS",
    "MAIN",
    "Member",
    "ZooKeeperCluster",
    "ZooKeeperUnavailable",
    "four_letter",
    "free_port",
]
