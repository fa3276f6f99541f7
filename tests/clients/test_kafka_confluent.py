"""confluent-kafka (librdkafka) against a real bramble: admin create/list/delete topics,
a producer with acks=all, a consumer reading everything back in order."""
import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic


def admin(bramble):
    return AdminClient({"bootstrap.servers": bramble.kafka})


def wait(futures):
    return {key: future.result(timeout=30) for key, future in futures.items()}


def test_admin_creates_lists_describes_and_deletes_topics(bramble):
    client = admin(bramble)
    wait(client.create_topics([NewTopic("orders", num_partitions=3, replication_factor=1,
                                        config={"retention.ms": "3600000"})]))
    metadata = client.list_topics(timeout=10)
    assert "orders" in metadata.topics
    assert sorted(metadata.topics["orders"].partitions) == [0, 1, 2]
    for partition in metadata.topics["orders"].partitions.values():
        assert partition.leader == 1 and partition.replicas == [1] and partition.isrs == [1]

    configs = wait(client.describe_configs([ConfigResource("topic", "orders")]))
    entries = list(configs.values())[0]
    assert entries["retention.ms"].value == "3600000"
    assert entries["cleanup.policy"].value == "delete"

    with pytest.raises(KafkaException) as exists:
        wait(client.create_topics([NewTopic("orders", num_partitions=1, replication_factor=1)]))
    assert exists.value.args[0].name() == "TOPIC_ALREADY_EXISTS"

    wait(client.create_partitions([NewPartitions("orders", 5)]))
    assert len(client.list_topics(timeout=10).topics["orders"].partitions) == 5

    wait(client.delete_topics(["orders"]))
    deadline = time.monotonic() + 10
    while "orders" in client.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "orders" not in client.list_topics(timeout=10).topics
    deadline = time.monotonic() + 10
    while list(bramble.log_dir.glob("orders-*")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not list(bramble.log_dir.glob("orders-*")), "partition directories must be removed"


def test_invalid_requests_get_kafka_errors(bramble):
    client = admin(bramble)
    with pytest.raises(KafkaException) as bad_name:
        wait(client.create_topics([NewTopic("bad/name", num_partitions=1, replication_factor=1)]))
    assert bad_name.value.args[0].code() == 17  # INVALID_TOPIC_EXCEPTION (librdkafka: TOPIC_EXCEPTION)
    with pytest.raises(KafkaException) as bad_rf:
        wait(client.create_topics([NewTopic("rf3", num_partitions=1, replication_factor=3)]))
    assert bad_rf.value.args[0].name() == "INVALID_REPLICATION_FACTOR"
    with pytest.raises(KafkaException) as bad_config:
        wait(client.create_topics([NewTopic("cfg", num_partitions=1, replication_factor=1,
                                            config={"retention.ms": "soon"})]))
    assert bad_config.value.args[0].name() == "INVALID_CONFIG"


def test_acks_all_producer_and_consumer_round_trip(bramble):
    client = admin(bramble)
    wait(client.create_topics([NewTopic("events", num_partitions=3, replication_factor=1)]))
    producer = Producer({"bootstrap.servers": bramble.kafka, "acks": "all", "linger.ms": 5})
    delivered = []
    errors = []

    def on_delivery(err, msg):
        (errors if err else delivered).append(err or (msg.partition(), msg.offset(), msg.key()))

    count = 3000
    for i in range(count):
        producer.produce("events", key=f"k{i % 17}".encode(), value=f"v{i}".encode(), on_delivery=on_delivery)
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors
    assert len(delivered) == count

    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "unused",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition("events", p, 0) for p in range(3)])
    seen = {}
    deadline = time.monotonic() + 30
    while sum(len(v) for v in seen.values()) < count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        assert msg.error() is None, msg.error()
        seen.setdefault(msg.partition(), []).append((msg.offset(), msg.key(), msg.value()))
    consumer.close()
    assert sum(len(v) for v in seen.values()) == count
    for partition, records in seen.items():
        offsets = [offset for offset, _, _ in records]
        assert offsets == list(range(len(offsets))), f"partition {partition} out of order"
    # Same key, same partition: every key was routed to exactly one partition.
    key_partitions = {}
    for partition, records in seen.items():
        for _, key, _ in records:
            key_partitions.setdefault(key, set()).add(partition)
    assert all(len(p) == 1 for p in key_partitions.values())


def test_list_offsets_by_time_and_watermarks(bramble):
    producer = Producer({"bootstrap.servers": bramble.kafka, "acks": "all"})
    base = int(time.time() * 1000) - 100_000
    for i in range(10):
        producer.produce("timed", value=f"{i}".encode(), timestamp=base + i * 1000)
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bramble.kafka, "group.id": "unused"})
    low, high = consumer.get_watermark_offsets(TopicPartition("timed", 0), timeout=10)
    assert (low, high) == (0, 10)
    found = consumer.offsets_for_times([TopicPartition("timed", 0, base + 4500)], timeout=10)
    assert found[0].offset == 5
    consumer.close()
