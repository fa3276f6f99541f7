"""Leadership going back where it belongs, with real processes and confluent-kafka: after a
partition leader is killed and comes back, ElectLeaders (AdminClient.elect_leaders, what
kafka-leader-election.sh sends) makes the preferred replica lead again, and the controller
does it by itself when `auto_leader_rebalance_enable` is on; no acknowledged record is lost
on the way. An unclean election is refused while a leader lives."""
import time

from confluent_kafka import Consumer, ElectionType, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import wait_for_port, eventually as wait_for


def start(bramble_cluster, broker_config):
    cluster = bramble_cluster(3)
    for n in cluster.nodes:
        n.broker_config = broker_config
        n.write_config()
    cluster.start()
    for n in cluster.nodes:
        wait_for_port(n.host, n.kafka_port, process=n.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    wait_for("3 brokers", lambda: len(admin.list_topics(timeout=10).brokers) == 3)
    cluster.wait_for_brokers()
    return cluster, admin


def bootstrap(cluster):
    return ",".join(n.kafka for n in cluster.nodes if n.alive())


def partition(admin, topic, p=0):
    return admin.list_topics(topic, timeout=10).topics[topic].partitions[p]


def produce(cluster, topic, values):
    producer = Producer({"bootstrap.servers": bootstrap(cluster), "acks": "all", "message.timeout.ms": 20_000})
    failed = []
    for v in values:
        producer.produce(topic, v.encode(), partition=0, callback=lambda err, _m: err and failed.append(err))
    assert producer.flush(30) == 0 and not failed, failed


def consume_all(cluster, topic, count):
    consumer = Consumer({"bootstrap.servers": bootstrap(cluster), "group.id": f"check-{time.monotonic_ns()}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    out = []
    deadline = time.monotonic() + 30
    while len(out) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            out.append(msg.value().decode())
    consumer.close()
    return out


def kill_and_bring_back_the_leader(cluster, admin, topic):
    """Kills partition 0's (preferred) leader under writes, restarts it, waits until it is in
    sync again as a follower; returns its id."""
    first = wait_for("in sync", lambda: (p := partition(admin, topic)) and len(p.isrs) == 3 and p)
    assert first.leader == first.replicas[0]
    produce(cluster, topic, [f"before-{i}" for i in range(50)])
    cluster.node(first.leader).kill()
    wait_for("a new leader", lambda: partition(admin, topic).leader not in (-1, first.leader))
    produce(cluster, topic, [f"during-{i}" for i in range(50)])
    cluster.node(first.leader).start()
    wait_for("the old leader back in sync", lambda: len(partition(admin, topic).isrs) == 3, timeout=60)
    return first.leader


def test_elect_leaders_brings_back_the_preferred_replica(bramble_cluster):
    cluster, admin = start(bramble_cluster, "auto_leader_rebalance_enable = false")
    admin.create_topics([NewTopic("pref", num_partitions=1, replication_factor=3)])["pref"].result(timeout=20)
    preferred = kill_and_bring_back_the_leader(cluster, admin, "pref")
    assert partition(admin, "pref").leader != preferred, "nothing moved it back without the call"

    tp = TopicPartition("pref", 0)
    # An unclean election is not needed while a leader lives.
    unclean = admin.elect_leaders(ElectionType.UNCLEAN, [tp]).result(timeout=20)
    assert unclean[tp] is not None and unclean[tp].code() == KafkaError.ELECTION_NOT_NEEDED, unclean

    results = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=20)
    assert results[tp] is None, results
    wait_for("the preferred replica leads", lambda: partition(admin, "pref").leader == preferred)
    # Asked again: nothing to do.
    again = admin.elect_leaders(ElectionType.PREFERRED, [tp]).result(timeout=20)
    assert again[tp] is not None and again[tp].code() == KafkaError.ELECTION_NOT_NEEDED, again

    produce(cluster, "pref", [f"after-{i}" for i in range(50)])
    wanted = [f"before-{i}" for i in range(50)] + [f"during-{i}" for i in range(50)] + [f"after-{i}" for i in range(50)]
    assert consume_all(cluster, "pref", len(wanted)) == wanted


def test_the_controller_rebalances_leaders_by_itself(bramble_cluster):
    cluster, admin = start(bramble_cluster, "leader_imbalance_check_interval_seconds = 1")
    admin.create_topics([NewTopic("auto", num_partitions=1, replication_factor=3)])["auto"].result(timeout=20)
    preferred = kill_and_bring_back_the_leader(cluster, admin, "auto")
    wait_for("the preferred replica leads again", lambda: partition(admin, "auto").leader == preferred, timeout=20)
    wanted = [f"before-{i}" for i in range(50)] + [f"during-{i}" for i in range(50)]
    assert consume_all(cluster, "auto", len(wanted)) == wanted
