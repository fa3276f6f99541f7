"""MQTT ingest on a 3-node cluster: a PUBACK from the partition leader's listener means the
record is in the ISR (acks=all), so every replica has it; a node that does not lead the
partition does not acknowledge."""
import subprocess
import time

from confluent_kafka.admin import AdminClient, NewTopic

from conftest import free_port, wait_for_port
from mqtt_support import mosquitto_pub_lines, mqtt_sections, read_topic
from test_cluster_kafka import bootstrap, wait_state


def test_mqtt_publishes_to_the_leader_are_replicated_before_the_puback(bramble_cluster):
    cluster = bramble_cluster(3)
    ports = {}
    for node in cluster.nodes:
        ports[node.node_id] = free_port(node.host)
        node.sections = mqtt_sections(None, [("sensors/#", "sensors", None)]).replace(
            "[mqtt]\n", f'[mqtt]\nlisten = "{node.host}:{ports[node.node_id]}"\n', 1)
        node.write_config()
    cluster.start()
    for node in cluster.nodes:
        wait_for_port(node.host, ports[node.node_id], process=node.process)
    admin = AdminClient({"bootstrap.servers": bootstrap(cluster)})
    deadline = time.monotonic() + 30
    while len(admin.list_topics(timeout=10).brokers) < 3:
        assert time.monotonic() < deadline, "brokers did not register"
        time.sleep(0.2)
    cluster.wait_for_brokers()
    admin.create_topics([NewTopic("sensors", num_partitions=1, replication_factor=3)])["sensors"].result(timeout=20)
    state = wait_state(cluster, "sensors", lambda s: len(s["isr"]) == 3)
    leader = cluster.node(state["leader"])

    result = mosquitto_pub_lines(ports[leader.node_id], "sensors/cluster", [f"m{n}" for n in range(500)],
                                 host=leader.host)
    assert result.returncode == 0, result.stderr
    # acks=all: the PUBACKs came after the ISR had the records, so the high watermark covers them.
    records = read_topic(bootstrap(cluster), "sensors", 500, timeout=60)
    assert [r.value() for r in records] == [f"m{n}".encode() for n in range(500)]

    follower = next(n for n in cluster.nodes if n.node_id != leader.node_id)
    try:
        refused = subprocess.run(
            ["mosquitto_pub", "-h", follower.host, "-p", str(ports[follower.node_id]), "-t", "sensors/cluster",
             "-q", "1", "-m", "to-a-follower"], capture_output=True, text=True, timeout=15)
        assert refused.returncode != 0, "a follower must not acknowledge"
    except subprocess.TimeoutExpired:
        pass  # no acknowledgement either
    time.sleep(1)
    values = [r.value() for r in read_topic(bootstrap(cluster), "sensors", 500, timeout=20)]
    assert b"to-a-follower" not in values
