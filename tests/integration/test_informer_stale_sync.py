"""Regression (a fresh-clone CI run of issue #12, tests/integration/test_api_faults.py): while
a 3-member ensemble was killed member by member, the API's client reconnected to a member
still up, its caches began to resync, and the resync's last reply landed after the next
member's death had suspended the session: the cache said "in sync" with no ZooKeeper,
and `GET /vm` answered 200 instead of 503. A sync started before a session change no
longer marks the cache synced; the resync after the reconnect does."""

from __future__ import annotations

from store.client import Store
from store.informer import Informer


class SuspendedMidSync(Informer):
    """An informer whose session is suspended after its listing, before the sync ends."""

    suspend_next = False

    def _list(self) -> None:
        super()._list()
        if self.suspend_next:
            self.suspend_next = False
            self._on_session("suspended")  # as kazoo's thread would, on a dropped connection


def test_a_sync_overtaken_by_a_suspension_does_not_say_synced(store: Store) -> None:
    store.create(store.paths.vm("web1"), {"spec": {}}, makepath=True)
    informer = SuspendedMidSync(store, store.paths.vms)
    try:
        informer.start()
        assert informer.wait_synced(0)
        informer.suspend_next = True
        informer._sync()  # a resync, as after a reconnect; the connection drops meanwhile
        assert not informer.wait_synced(0)
        informer._on_session("reconnected")  # the next session: watch and list again
        assert informer.wait_synced(30)
    finally:
        informer.stop()
