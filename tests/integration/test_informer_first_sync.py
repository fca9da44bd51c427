"""Regression (found by the issue #20 flake hunt, fault suite seed 8): a herd-node restarted
a second before a ZooKeeper outage lost the connection during its caches' first listing,
and `Informer.start` raised ConnectionLoss: the daemon exited (code 1). The first sync now
meets connection trouble like any later resync: the informer lists again once ZooKeeper
answers, and `start` returns when the cache is in sync."""

from __future__ import annotations

from kazoo.exceptions import ConnectionLoss

from store.client import Store
from store.informer import Informer


class FirstListingLost(Informer):
    """An informer whose first listing meets a dropped connection (as an outage makes it)."""

    lost = 0

    def _list(self) -> None:
        if not self.lost:
            self.lost += 1
            raise ConnectionLoss()
        super()._list()


def test_a_connection_lost_in_the_first_sync_is_synced_again(store: Store) -> None:
    path = store.paths.vm("web1")
    store.create(path, {"spec": {"state": "running"}}, makepath=True)
    informer = FirstListingLost(store, store.paths.vms)
    try:
        informer.start()
        assert informer.lost == 1
        assert informer.wait_synced(0)
        cached = informer.get(path)
        assert cached is not None and cached.doc == {"spec": {"state": "running"}}
    finally:
        informer.stop()
