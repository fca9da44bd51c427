"""ZooKeeper locked down (issue #13): every znode Herd creates carries an ACL that gives
Herd's digest identity all rights and nobody else any. An anonymous client, or one with
another identity, gets NoAuth for every read and write under the Herd root; Herd's own
sessions work; ZooKeeper's super user (the documented break-glass) passes. Herd's sessions
go over TLS to the secure client port. The suite's ZooKeeper fixtures run with both on,
so every other test exercises them too."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.security import Permissions

from store.client import Store
from store.target import ZKTarget
from tests.support.zkserver import ZooKeeperCluster


def client(dsn: str) -> Iterator[KazooClient]:
    raw = KazooClient(**ZKTarget.parse(dsn).kazoo_args())
    raw.start()
    try:
        yield raw
    finally:
        raw.stop()
        raw.close()


@pytest.fixture
def anonymous(zk_cluster: ZooKeeperCluster) -> Iterator[KazooClient]:
    yield from client(zk_cluster.hosts)


@pytest.fixture
def stranger(zk_cluster: ZooKeeperCluster) -> Iterator[KazooClient]:
    yield from client(f"mallory:guess@{zk_cluster.hosts}")


def test_herds_znodes_are_herds_identitys_alone(store: Store) -> None:
    store.create(store.paths.vm("web1"), {"spec": {}}, makepath=True)
    for path in (store.paths.root, store.paths.vms, store.paths.vm("web1")):
        acls, _stat = store.client.get_acls(path)
        assert [(a.id.scheme, a.id.id.split(":")[0], a.perms) for a in acls] == \
            [("digest", "herd", Permissions.ALL)], path


@pytest.mark.parametrize("who", ["anonymous", "stranger"])
def test_nobody_else_reads_or_writes_under_the_root(store: Store, who: str,
                                                    request: pytest.FixtureRequest) -> None:
    raw: KazooClient = request.getfixturevalue(who)
    store.create(store.paths.vm("web1"), {"spec": {"state": "running"}}, makepath=True)
    p = store.paths
    attempts: list[Callable[[], object]] = [
        lambda: raw.get(p.vm("web1")), lambda: raw.get_children(p.vms),
        lambda: raw.set(p.vm("web1"), b"{}"), lambda: raw.create(p.vm("evil"), b"{}"),
        lambda: raw.delete(p.config), lambda: raw.set(p.config, b"{}")]
    for attempt in attempts:
        with pytest.raises(NoAuthError):
            attempt()
    assert store.get(p.vm("web1")).doc == {"spec": {"state": "running"}}


def test_the_super_user_passes_every_acl(store: Store, zk_cluster: ZooKeeperCluster) -> None:
    store.create(store.paths.vm("web1"), {"spec": {}}, makepath=True)
    for admin in client(zk_cluster.admin_dsn):
        data, _stat = admin.get(store.paths.vm("web1"))
        assert b'"spec"' in data


def test_herds_sessions_go_over_tls(store: Store, zk_cluster: ZooKeeperCluster) -> None:
    assert store.target.tls is not None
    assert isinstance(store.client._connection._socket, ssl.SSLSocket)
    assert store.target.hosts != zk_cluster.hosts  # the secure client ports
    # A client that speaks plain TCP to a secure port gets nowhere.
    plain = KazooClient(hosts=store.target.hosts, connection_retry={"max_tries": 1})
    with pytest.raises(KazooTimeoutError):
        plain.start(timeout=3)
    plain.close()
