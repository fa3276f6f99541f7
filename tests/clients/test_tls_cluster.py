"""Mutual TLS on the peer port (`[cluster] tls = true`): three nodes with certificates from one
CA form a quorum and replicate partitions; a node whose certificate another CA signed cannot
join the quorum nor fetch replicas."""
import os
import subprocess
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from kazoo.client import KazooClient

from conftest import BINARY, wait_for_port
from test_cluster_kafka import bootstrap, consume_all, create_topic, wait_state
from tls_support import Pki


def tls_cluster(bramble_cluster, tmp_path, stranger=None):
    """A 3-node cluster with `[cluster] tls = true`, each node with its own certificate (for
    its loopback address) from one CA; node `stranger`'s certificate comes from another CA."""
    cluster = bramble_cluster(3, extra_config="tls = true")
    ours = Pki(tmp_path / "pki", "cluster-ca")
    theirs = Pki(tmp_path / "pki", "stranger-ca")
    for n in cluster.nodes:
        pki = theirs if n.node_id == stranger else ours
        n.sections = pki.tls_section(pki.node(n.node_id, ips=(n.host,), hosts=()))
        n.write_config()
    return cluster


def test_three_nodes_with_mutual_tls_form_a_quorum_and_replicate(bramble_cluster, tmp_path):
    cluster = tls_cluster(bramble_cluster, tmp_path).start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(admin.list_topics(timeout=10).brokers) < 3:
        time.sleep(0.2)
    cluster.wait_for_brokers()
    create_topic(cluster, "mtls", rf=3)
    wait_state(cluster, "mtls", lambda s: len(s["isr"]) == 3)
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(50):
        producer.produce("mtls", f"m{i}".encode(), partition=0)
    assert producer.flush(30) == 0
    assert consume_all(cluster, "mtls", 50) == [f"m{i}".encode() for i in range(50)]
    time.sleep(1.5)
    for n in cluster.nodes:
        segments = list((n.log_dir / "mtls-0").glob("*.log"))
        assert segments and sum(s.stat().st_size for s in segments) > 50 * 10, f"node {n.node_id} has no data"
    for n in cluster.nodes:
        assert "peer TLS handshake failed" not in n.log_tail(500), n.log_tail(60)


def test_a_node_certified_by_another_ca_cannot_join(bramble_cluster, tmp_path):
    cluster = tls_cluster(bramble_cluster, tmp_path, stranger=3)
    # Start all three (the fixture's start waits for all to agree); only 1 and 2 can talk.
    for n in cluster.nodes:
        n.stderr = open(n.stderr_path, "ab")
        env = dict(os.environ, BRAMBLE_LOG="info", NO_COLOR="1")
        n.process = subprocess.Popen([str(BINARY), "serve", "--config", str(n.config_path)],
                                     stdout=n.stderr, stderr=subprocess.STDOUT, cwd=n.workdir, env=env)
    for n in cluster.nodes:
        wait_for_port(n.host, n.zk_port, process=n.process)
    members = cluster.nodes[:2]
    stranger = cluster.node(3)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        modes = sorted(str(n.mode()) for n in members)
        if modes == ["follower", "leader"]:
            break
        time.sleep(0.1)
    assert modes == ["follower", "leader"], "\n".join(n.log_tail() for n in cluster.nodes)
    # Data written through the quorum never reaches the stranger.
    zk = KazooClient(hosts=",".join(n.zk for n in members), timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/only-members", b"secret")
    finally:
        zk.stop()
        zk.close()
    time.sleep(3)
    assert stranger.alive()
    assert stranger.mode() not in ("leader", "follower"), stranger.log_tail()
    for n in members:
        assert n.mode() in ("leader", "follower")
    # The members dial the stranger (it is in their membership) and refuse its certificate;
    # it logs their UnknownCA alerts.
    assert "UnknownCA" in stranger.log_tail(400), stranger.log_tail()
    assert zxid(stranger) < min(zxid(n) for n in members)


def zxid(node):
    for line in node.four_letter("srvr").splitlines():
        if line.startswith("Zxid: "):
            return int(line.split(": ", 1)[1], 16)
    raise AssertionError(f"no Zxid in srvr of node {node.node_id}")
