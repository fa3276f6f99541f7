"""The broker's own metadata znodes (/brokers, /controller, /controller_epoch, /cluster,
/config, /kafka-acl) are read-only to ZooKeeper clients: kazoo and zkCli read them and see a
read-only ACL, but create, setData, delete, setACL and multi under them answer NoAuth and
change nothing, while bramble's own writes (a new topic's znodes) still go through."""
import subprocess

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl

from test_cluster_metadata import wait_for
from zk_support import ZKCLI, require_real_zookeeper


@pytest.fixture
def node(bramble_cluster):
    """A one-member cluster: it registers itself, elects itself controller and names the
    cluster, as every cluster node does."""
    cluster = bramble_cluster(size=1).start()
    return cluster.node(1)


@pytest.fixture
def kazoo(node):
    clients = []

    def make(auth=None):
        client = KazooClient(hosts=node.zk, timeout=10)
        client.start(timeout=15)
        if auth:
            client.add_auth("digest", auth)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()


def test_clients_read_the_metadata_but_cannot_change_it(node, kazoo):
    zk = kazoo()
    wait_for("/controller", lambda: zk.exists("/controller"))
    wait_for("/brokers/ids/1", lambda: zk.exists("/brokers/ids/1"))
    wait_for("/cluster/id", lambda: zk.exists("/cluster/id"))
    before = {path: zk.get(path) for path in
              ("/controller", "/controller_epoch", "/brokers/ids/1", "/cluster/id")}
    assert b'"brokerid"' in before["/controller"][0]

    acl, _ = zk.get_acls("/brokers")
    assert sorted((a.id.scheme, a.id.id, a.perms) for a in acl) == [
        ("super", "bramble", 31), ("world", "anyone", 1)]

    for client in (zk, kazoo(auth="mallory:pw")):
        attempts = [
            lambda: client.create("/brokers/ids/99", b"{}", ephemeral=True),
            lambda: client.create("/brokers/topics/forged", b"{}"),
            lambda: client.set("/brokers/ids/1", b"{}"),
            lambda: client.set("/controller_epoch", b"999"),
            lambda: client.delete("/controller"),
            lambda: client.delete("/cluster/id"),
            lambda: client.delete("/brokers", recursive=True),
            lambda: client.set_acls("/brokers", [make_acl("world", "anyone", all=True)]),
            lambda: client.set_acls("/controller", [make_acl("world", "anyone", all=True)]),
            lambda: client.create("/kafka-acl/Topic/t", b"{}", makepath=True),
            lambda: client.create("/config/topics/t", b"{}", makepath=True),
        ]
        for attempt in attempts:
            with pytest.raises(NoAuthError):
                attempt()
        transaction = client.transaction()
        transaction.create("/harmless", b"")
        transaction.create("/brokers/topics/forged", b"{}")
        results = transaction.commit()
        assert isinstance(results[1], NoAuthError), results
        assert client.exists("/harmless") is None

    for path, (data, stat) in before.items():
        now_data, now_stat = zk.get(path)
        assert (now_data, now_stat.version) == (data, stat.version), path
    assert zk.get_children("/brokers/ids") == ["1"]
    assert "forged" not in zk.get_children("/brokers/topics")
    assert zk.exists("/kafka-acl") is None

    # The node still writes there itself: a new topic gets its znodes.
    admin = AdminClient({"bootstrap.servers": node.kafka})
    for future in admin.create_topics([NewTopic("fresh", num_partitions=2, replication_factor=1)]).values():
        future.result(timeout=30)
    wait_for("/brokers/topics/fresh", lambda: zk.exists("/brokers/topics/fresh"))

    # Elsewhere clients are as free as before.
    zk.create("/app/brokers", b"mine", makepath=True)
    zk.set("/app/brokers", b"still mine")
    zk.delete("/app", recursive=True)


def test_zkcli_is_refused_under_the_metadata(node, kazoo):
    require_real_zookeeper()
    zk = kazoo()
    wait_for("/brokers/ids/1", lambda: zk.exists("/brokers/ids/1"))

    def zkcli(*args):
        out = subprocess.run([ZKCLI, "-server", node.zk, *args], capture_output=True, text=True,
                             timeout=60)
        return out.stdout + out.stderr

    assert "brokerid" in zkcli("get", "/controller")
    acl = zkcli("getAcl", "/brokers")
    assert "'world,'anyone\n: r" in acl and "'super,'bramble\n: cdrwa" in acl, acl
    for args in (("create", "/brokers/ids/7", "{}"), ("set", "/brokers/ids/1", "{}"),
                 ("delete", "/controller"), ("setAcl", "/cluster", "world:anyone:cdrwa"),
                 ("create", "/controller_epoch/x", "")):
        out = zkcli(*args)
        assert "Insufficient permission" in out or "NoAuth" in out, (args, out)
    assert zk.get_children("/brokers/ids") == ["1"]
    assert zk.exists("/controller") is not None
