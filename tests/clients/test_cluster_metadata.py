"""Cluster metadata with real processes: `/controller` and `/controller_epoch` as Kafka wrote
them, one cluster id and one topic id per topic on every node, DeleteTopics and CreatePartitions applied by
every node, ListOffsets answered by the partition leader only, and `min_insync_replicas`
defaulting to 2 for topics with 3 replicas, as DescribeConfigs says, and topic configs
changed on one node applied on every node through `/config/topics/<t>` (5-node cluster, two replicas killed)."""
import json
import subprocess
import time

from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import (
    AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewPartitions, NewTopic,
)
from kafka.client_async import KafkaClient
from kafka.protocol.list_offsets import ListOffsetsRequest_v1
from kazoo.client import KazooClient

from conftest import BINARY, wait_for_port, eventually as wait_for

NOT_LEADER_OR_FOLLOWER = 6


def bootstrap(cluster):
    return ",".join(n.kafka for n in cluster.nodes if n.alive())


def zk_client(cluster):
    zk = KazooClient(hosts=",".join(n.zk for n in cluster.nodes if n.alive()), timeout=10)
    zk.start(timeout=15)
    return zk


def read(cluster, path):
    zk = zk_client(cluster)
    try:
        zk.sync(path)
        if zk.exists(path) is None:
            return None, None
        return zk.get(path)
    finally:
        zk.stop()


def start(bramble_cluster, size=3):
    cluster = bramble_cluster(size).start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    wait_for(f"{size} brokers registered", lambda: len(admin.list_topics(timeout=10).brokers) == size)
    cluster.wait_for_brokers()
    return cluster, admin


def state(cluster, topic, partition):
    data, _ = read(cluster, f"/brokers/topics/{topic}/partitions/{partition}/state")
    return json.loads(data) if data else None


def controller(cluster):
    data, stat = read(cluster, "/controller")
    if data is None:
        return None
    return json.loads(data), stat


def test_controller_znode_and_epoch_follow_the_quorum_leader(bramble_cluster):
    cluster, _ = start(bramble_cluster)
    leader = cluster.wait_for_leader()
    (body, stat) = wait_for("/controller names the quorum leader",
                            lambda: (c := controller(cluster)) and c[0]["brokerid"] == leader.node_id and c)
    assert body["version"] == 1
    assert body["timestamp"].isdigit()
    assert stat.ephemeralOwner != 0, "/controller must be ephemeral"
    epoch_before = int(read(cluster, "/controller_epoch")[0])
    assert epoch_before >= 1
    leader.kill()
    successor = cluster.wait_for_leader()
    assert successor.node_id != leader.node_id
    wait_for("/controller names the new quorum leader",
             lambda: (c := controller(cluster)) and c[0]["brokerid"] == successor.node_id)
    assert int(read(cluster, "/controller_epoch")[0]) > epoch_before


def local_topic_ids(cluster, topic, partition):
    ids = {}
    for n in cluster.nodes:
        text = (n.log_dir / f"{topic}-{partition}" / "partition.metadata").read_text()
        ids[n.node_id] = dict(line.split(": ", 1) for line in text.splitlines())["topic_id"]
    return ids


def test_topic_id_growth_and_deletion_are_the_same_on_every_node(bramble_cluster):
    cluster, admin = start(bramble_cluster)
    admin.create_topics([NewTopic("grow", num_partitions=1, replication_factor=3)])["grow"].result(timeout=20)
    wait_for("grow-0 in sync", lambda: len(state(cluster, "grow", 0)["isr"]) == 3)
    assignment = json.loads(read(cluster, "/brokers/topics/grow")[0])
    ids = wait_for("every node's copy", lambda: local_topic_ids(cluster, "grow", 0))
    assert set(ids.values()) == {assignment["topic_id"]}, (ids, assignment)

    admin.create_partitions([NewPartitions("grow", 3)])["grow"].result(timeout=20)
    for p in (1, 2):
        wait_for(f"grow-{p} in sync", lambda p=p: (s := state(cluster, "grow", p)) and len(s["isr"]) == 3)
        wait_for(f"grow-{p} on every node", lambda p=p: all((n.log_dir / f"grow-{p}").is_dir() for n in cluster.nodes))
    cluster_ids = set()
    for n in cluster.nodes:
        only = AdminClient({"bootstrap.servers": n.kafka})
        metadata = only.list_topics("grow", timeout=10)
        assert len(metadata.topics["grow"].partitions) == 3
        cluster_ids.add(metadata.cluster_id)
    # One cluster id, from /cluster/id, whichever node answers.
    stored = json.loads(read(cluster, "/cluster/id")[0])
    assert cluster_ids == {stored["id"]}
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(20):
        producer.produce("grow", f"g{i}".encode(), partition=2)
    assert producer.flush(20) == 0

    admin.delete_topics(["grow"])["grow"].result(timeout=20)
    assert read(cluster, "/brokers/topics/grow")[0] is None
    wait_for("every node dropped its logs",
             lambda: not any(d.name.startswith("grow-") for n in cluster.nodes for d in n.log_dir.iterdir()))
    for n in cluster.nodes:
        only = AdminClient({"bootstrap.servers": n.kafka})
        wait_for(f"node {n.node_id} forgot the topic", lambda only=only: "grow" not in only.list_topics(timeout=10).topics)


def list_offsets(cluster, node, topic, partition):
    client = KafkaClient(bootstrap_servers=bootstrap(cluster), api_version=(2, 5))
    try:
        deadline = time.monotonic() + 20
        while not client.ready(node.node_id):
            client.poll(timeout_ms=100)
            assert time.monotonic() < deadline, f"no connection to node {node.node_id}"
        future = client.send(node.node_id, ListOffsetsRequest_v1(replica_id=-1, topics=[(topic, [(partition, -1)])]))
        client.poll(future=future, timeout_ms=10_000)
        assert future.succeeded(), future.exception
        _, partitions = future.value.topics[0]
        _, error_code, _, offset = partitions[0]
        return error_code, offset
    finally:
        client.close()


def test_list_offsets_is_answered_by_the_partition_leader_only(bramble_cluster):
    cluster, admin = start(bramble_cluster)
    admin.create_topics([NewTopic("lo", num_partitions=1, replication_factor=3)])["lo"].result(timeout=20)
    leader_id = wait_for("lo-0 in sync", lambda: (s := state(cluster, "lo", 0)) and len(s["isr"]) == 3 and s["leader"])
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(7):
        producer.produce("lo", f"l{i}".encode(), partition=0)
    assert producer.flush(20) == 0
    for n in cluster.nodes:
        code, offset = list_offsets(cluster, n, "lo", 0)
        if n.node_id == leader_id:
            assert (code, offset) == (0, 7)
        else:
            assert code == NOT_LEADER_OR_FOLLOWER, f"follower {n.node_id} answered {code}, {offset}"


def deliver(cluster, topic, acks, size=1):
    results = []
    producer = Producer({
        "bootstrap.servers": bootstrap(cluster),
        "acks": acks,
        "retries": 0,
        "message.timeout.ms": 10_000,
    })
    producer.produce(topic, b"x" * size, partition=0, callback=lambda err, _msg: results.append(err))
    producer.flush(15)
    assert len(results) == 1
    return results[0]


def min_insync(admin, topic):
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(timeout=10)
    return configs["min.insync.replicas"].value


def config_on(node, topic):
    only = AdminClient({"bootstrap.servers": node.kafka})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = only.describe_configs([resource])[resource].result(timeout=10)
    return {k: configs[k].value for k in ("retention.ms", "max.message.bytes")}


def test_topic_config_changed_on_one_node_applies_on_every_node(bramble_cluster):
    cluster, admin = start(bramble_cluster)
    topic = NewTopic("cfg", num_partitions=1, replication_factor=3, config={"retention.ms": "3600000"})
    admin.create_topics([topic])["cfg"].result(timeout=20)
    leader = wait_for("cfg-0 in sync", lambda: (s := state(cluster, "cfg", 0)) and len(s["isr"]) == 3 and s["leader"])
    stored = json.loads(read(cluster, "/config/topics/cfg")[0])
    assert stored == {"version": 1, "config": {"retention.ms": "3600000"}}
    assert deliver(cluster, "cfg", "all", size=5000) is None

    # Changed through a node that does not lead the partition, incrementally.
    other = next(n for n in cluster.nodes if n.node_id != leader)
    only = AdminClient({"bootstrap.servers": other.kafka})
    resource = ConfigResource(ConfigResource.Type.TOPIC, "cfg", incremental_configs=[
        ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET)])
    only.incremental_alter_configs([resource])[resource].result(timeout=20)
    wanted = {"retention.ms": "3600000", "max.message.bytes": "2000"}
    assert json.loads(read(cluster, "/config/topics/cfg")[0])["config"] == wanted
    for n in cluster.nodes:
        wait_for(f"node {n.node_id} has the new config", lambda n=n: config_on(n, "cfg") == wanted)
    # The leader enforces it.
    error = deliver(cluster, "cfg", "all", size=5000)
    assert error is not None and error.code() == KafkaError.MSG_SIZE_TOO_LARGE, error
    assert deliver(cluster, "cfg", "all", size=1000) is None

    # Deleting the topic takes its config znode with it.
    admin.delete_topics(["cfg"])["cfg"].result(timeout=20)
    assert read(cluster, "/config/topics/cfg")[0] is None


def test_acks_all_needs_two_in_sync_replicas_of_three_by_default(bramble_cluster):
    cluster, admin = start(bramble_cluster, size=5)
    # Round robin from the lowest id: partition 0 of each topic lives on nodes 1.. (RF).
    for name, rf in (("triple", 3), ("pair", 2)):
        admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=rf)])[name].result(timeout=20)
        wait_for(f"{name} in sync", lambda name=name, rf=rf: (s := state(cluster, name, 0)) and len(s["isr"]) == rf)
    triple = state(cluster, "triple", 0)
    pair = state(cluster, "pair", 0)
    # DescribeConfigs tells the client the same rule the broker enforces.
    assert min_insync(admin, "triple") == "2"
    assert min_insync(admin, "pair") == "1"
    assert deliver(cluster, "triple", "all") is None
    # Kill two replicas of "triple" that do not lead it; one of them is also in "pair".
    victims = [r for r in [1, 2, 3] if r != triple["leader"]][:2]
    for v in victims:
        cluster.node(v).kill()
    wait_for("triple's ISR shrinks to its leader", lambda: state(cluster, "triple", 0)["isr"] == [triple["leader"]])
    error = deliver(cluster, "triple", "all")
    assert error is not None and error.code() == KafkaError.NOT_ENOUGH_REPLICAS, error
    assert deliver(cluster, "triple", "1") is None
    # A topic with two replicas keeps taking acks=all with one in sync.
    survivors = [r for r in [1, 2] if r not in victims]
    wait_for("pair's ISR shrinks", lambda: (s := state(cluster, "pair", 0))["isr"] == survivors and s["leader"] in survivors)
    assert pair["isr"] != survivors
    assert deliver(cluster, "pair", "all") is None


def test_the_peer_port_serves_replica_fetches_and_nothing_else(bramble_cluster):
    """A `BRKF` connection on the peer port is the cluster's own replication channel, trusted
    past ACLs, so it answers ApiVersions (and replica fetches) but closes on anything else:
    a DeleteTopics sent there deletes nothing."""
    import socket
    import struct

    cluster, admin = start(bramble_cluster)
    admin.create_topics([NewTopic("kept", num_partitions=1, replication_factor=3)])["kept"].result(30)

    def send(s, api_key, version, correlation_id, body):
        frame = struct.pack(">hhih", api_key, version, correlation_id, 4) + b"test" + body
        s.sendall(struct.pack(">i", len(frame)) + frame)

    def receive(s):
        head = b""
        while len(head) < 4:
            chunk = s.recv(4 - len(head))
            if not chunk:
                return None
            head += chunk
        (length,) = struct.unpack(">i", head)
        body = b""
        while len(body) < length:
            chunk = s.recv(length - len(body))
            if not chunk:
                return None
            body += chunk
        return body

    node = cluster.nodes[0]
    with socket.create_connection((node.host, node.peer_port), timeout=10) as s:
        s.sendall(b"BRKF")
        send(s, 18, 0, 7, b"")  # ApiVersions v0
        answer = receive(s)
        assert answer is not None and struct.unpack(">i", answer[:4])[0] == 7
        name = b"kept"
        send(s, 20, 1, 8, struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
             + struct.pack(">i", 5000))  # DeleteTopics v1
        assert receive(s) is None, "the peer port answered a DeleteTopics"
    time.sleep(1)
    assert "kept" in admin.list_topics(timeout=10).topics


def test_metadata_chroot_puts_the_kafka_tree_under_it(bramble_cluster):
    """`[cluster] metadata_chroot = "/kafka-broker"`: /brokers, /controller and the rest appear
    under it (as Kafka with a chroot in zookeeper.connect), nothing at the root, and Kafka
    works as before."""
    cluster = bramble_cluster(3, extra_config='metadata_chroot = "/kafka-broker"').start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    wait_for("3 brokers registered", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    cluster.wait_for_brokers(chroot="/kafka-broker")
    admin.create_topics([NewTopic("rooted", num_partitions=1, replication_factor=3)])["rooted"].result(20)
    p = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    p.produce("rooted", b"under the chroot")
    assert p.flush(30) == 0
    zk = zk_client(cluster)
    try:
        zk.sync("/")
        state = wait_for("partition state under the chroot", lambda: zk.exists(
            "/kafka-broker/brokers/topics/rooted/partitions/0/state") and json.loads(
            zk.get("/kafka-broker/brokers/topics/rooted/partitions/0/state")[0]))
        assert sorted(state["isr"]) == [1, 2, 3]
        assert sorted(zk.get_children("/kafka-broker/brokers/ids")) == ["1", "2", "3"]
        assert json.loads(zk.get("/kafka-broker/controller")[0])["brokerid"] == cluster.leader().node_id
        assert zk.exists("/kafka-broker/cluster/id") is not None
        assert zk.exists("/kafka-broker/controller_epoch") is not None
        for path in ("/brokers", "/controller", "/controller_epoch", "/cluster"):
            assert zk.exists(path) is None, f"{path} exists at the root despite the chroot"
    finally:
        zk.stop()


def test_a_relative_metadata_chroot_is_refused(bramble_cluster):
    cluster = bramble_cluster(3, extra_config='metadata_chroot = "kafka"')
    node = cluster.node(1)
    out = subprocess.run([str(BINARY), "serve", "--config", str(node.config_path)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode != 0
    assert "cluster.metadata_chroot" in out.stdout + out.stderr
