"""Consumer groups on a 3-node cluster with real processes and confluent-kafka:
`__consumer_offsets` is replicated, FindCoordinator names the leader of the group's offsets
partition, and a group keeps its committed offsets when that node is killed with SIGKILL."""
import json
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from kazoo.client import KazooClient

from conftest import wait_for_port, eventually as wait_for

TOPIC = "orders"
PARTITIONS = 3
RECORDS = 300


def bootstrap(cluster):
    return ",".join(n.kafka for n in cluster.nodes if n.alive())


def read_znode(cluster, path):
    zk = KazooClient(hosts=",".join(n.zk for n in cluster.nodes if n.alive()), timeout=10)
    zk.start(timeout=15)
    try:
        zk.sync(path)
        data, _ = zk.get(path)
        return json.loads(data)
    finally:
        zk.stop()


def start_cluster(bramble_cluster):
    cluster = bramble_cluster(3).start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    wait_for("3 brokers registered", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    cluster.wait_for_brokers()
    return cluster, admin


def consumer(cluster, group):
    return Consumer({
        "bootstrap.servers": bootstrap(cluster),
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
    })


def consume(c, count, timeout=60.0):
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        got.append((m.partition(), m.offset(), m.value()))
    return got


def commit_until_done(c, timeout=30.0):
    """A synchronous commit of the consumer's positions, retried while the coordinator moves."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return c.commit(asynchronous=False)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_offsets_topic_is_replicated_and_find_coordinator_names_its_partition_leader(bramble_cluster):
    cluster, admin = start_cluster(bramble_cluster)
    c = consumer(cluster, "replicated-offsets")
    c.subscribe(["absent-topic-is-fine"])
    c.poll(1.0)
    # Joining created __consumer_offsets through the controller: 8 partitions, 3 replicas each.
    assignment = wait_for("the offsets topic", lambda: read_znode(cluster, "/brokers/topics/__consumer_offsets"))
    assert len(assignment["partitions"]) == 8
    assert all(sorted(r) == [1, 2, 3] for r in assignment["partitions"].values())
    group = wait_for("the group's coordinator",
                     lambda: admin.describe_consumer_groups(["replicated-offsets"])["replicated-offsets"].result(timeout=10))
    coordinator = group.coordinator.id
    # The coordinator is the leader of one of the offsets partitions.
    leaders = {read_znode(cluster, f"/brokers/topics/__consumer_offsets/partitions/{p}/state")["leader"]
               for p in range(8)}
    assert coordinator in leaders
    c.close()
    # Every node holds a copy of every offsets partition.
    for n in cluster.nodes:
        for p in range(8):
            assert (n.log_dir / f"__consumer_offsets-{p}").is_dir(), f"node {n.node_id} lacks partition {p}"


def test_group_resumes_from_committed_offsets_after_its_coordinator_is_killed(bramble_cluster):
    cluster, admin = start_cluster(bramble_cluster)
    admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=3)])[TOPIC].result(timeout=20)
    for p in range(PARTITIONS):
        wait_for(f"{TOPIC}-{p} in sync on 3 nodes",
                 lambda p=p: len(read_znode(cluster, f"/brokers/topics/{TOPIC}/partitions/{p}/state")["isr"]) == 3)
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all"})
    for i in range(RECORDS):
        producer.produce(TOPIC, f"o{i:04d}".encode(), partition=i % PARTITIONS)
    assert producer.flush(30) == 0
    everything = {f"o{i:04d}".encode() for i in range(RECORDS)}

    # First consumer: reads part of the topic, commits synchronously, and leaves.
    first = consumer(cluster, "billing")
    first.subscribe([TOPIC])
    before = consume(first, 120)
    assert len(before) == 120, f"only {len(before)} records before the kill"
    commit_until_done(first)
    committed = {tp.partition: tp.offset
                 for tp in first.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)}
    position = {}
    for p, offset, _ in before:
        position[p] = max(position.get(p, 0), offset + 1)
    assert committed == {p: position.get(p, -1001) for p in range(PARTITIONS)}, (committed, position)
    description = admin.describe_consumer_groups(["billing"])["billing"].result(timeout=10)
    coordinator = description.coordinator.id
    first.close()

    # The group coordinator's node dies.
    cluster.node(coordinator).kill()

    # The group resumes on the surviving nodes from exactly the committed offsets.
    second = consumer(cluster, "billing")
    second.subscribe([TOPIC])
    after = consume(second, RECORDS - len(before), timeout=90)
    firsts = {}
    for p, offset, _ in after:
        firsts.setdefault(p, offset)
    for p, offset in committed.items():
        if offset >= 0 and p in firsts:
            assert firsts[p] == offset, f"partition {p} resumed at {firsts[p]}, committed {offset}"
    values = [v for _, _, v in before] + [v for _, _, v in after]
    duplicates = len(values) - len(set(values))
    assert duplicates == 0, f"{duplicates} records delivered twice"
    missing = everything - set(values)
    assert not missing, f"{len(missing)} records never delivered, e.g. {sorted(missing)[:5]}"
    commit_until_done(second)
    moved = admin.describe_consumer_groups(["billing"])["billing"].result(timeout=10).coordinator.id
    assert moved != coordinator
    final = second.committed([TopicPartition(TOPIC, p) for p in range(PARTITIONS)], timeout=10)
    assert sum(tp.offset for tp in final) == RECORDS
    second.close()
