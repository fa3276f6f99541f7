"""kafka-python (its own protocol code) against a real bramble: the idempotent producer, a
consumer group, the group admin calls, topic config changes and compaction."""
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient, NewTopic
from kafka.structs import OffsetAndMetadata


def test_idempotent_producer_and_the_default_producer(bramble):
    # kafka-python 2.2 defaults to enable_idempotence=False (unlike the Java client since
    # 3.0): both the default and the idempotent producer must work.
    for idempotent in (False, True):
        topic = f"py-idem-{idempotent}".lower()
        producer = KafkaProducer(bootstrap_servers=bramble.kafka, enable_idempotence=idempotent, linger_ms=5)
        futures = [producer.send(topic, key=b"k", value=f"{i}".encode()) for i in range(300)]
        producer.flush(30)
        offsets = [f.get(timeout=30).offset for f in futures]
        producer.close()
        assert offsets == list(range(300)), "one copy of each record, in order"
        consumer = KafkaConsumer(topic, bootstrap_servers=bramble.kafka, auto_offset_reset="earliest",
                                 consumer_timeout_ms=5000)
        assert [int(m.value) for m in consumer] == list(range(300))
        consumer.close()


def test_transactional_producer_gets_a_clear_error(bramble):
    producer = KafkaProducer(bootstrap_servers=bramble.kafka, transactional_id="txn", max_block_ms=5000)
    with pytest.raises(Exception):
        producer.init_transactions()
    producer.close(timeout=1)


def test_group_consumption_commits_and_admin_calls(bramble):
    admin = KafkaAdminClient(bootstrap_servers=bramble.kafka)
    admin.create_topics([NewTopic("py-group", num_partitions=2, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=bramble.kafka)
    for i in range(100):
        producer.send("py-group", value=f"{i}".encode(), partition=i % 2)
    producer.flush(30)
    producer.close()

    consumer = KafkaConsumer("py-group", group_id="py-readers", bootstrap_servers=bramble.kafka,
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    values = sorted(int(m.value) for m in consumer)
    assert values == list(range(100))
    consumer.commit()

    groups = dict(admin.list_consumer_groups())
    assert groups.get("py-readers") == "consumer"
    described = admin.describe_consumer_groups(["py-readers"])[0]
    assert described.state == "Stable"
    assert len(described.members) == 1
    offsets = admin.list_consumer_group_offsets("py-readers")
    assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 50, 1: 50}

    # A live group cannot be deleted; once empty it can.
    results = dict(admin.delete_consumer_groups(["py-readers"]))
    assert results["py-readers"].errno == 68, results  # NON_EMPTY_GROUP
    consumer.close()
    results = dict(admin.delete_consumer_groups(["py-readers"]))
    assert results["py-readers"].errno == 0, results
    assert "py-readers" not in dict(admin.list_consumer_groups())
    admin.close()


def test_standalone_commit_without_a_group_membership(bramble):
    consumer = KafkaConsumer(bootstrap_servers=bramble.kafka, group_id="manual", enable_auto_commit=False)
    tp = TopicPartition("manual-topic", 0)
    producer = KafkaProducer(bootstrap_servers=bramble.kafka)
    producer.send("manual-topic", b"x").get(30)
    producer.close()
    consumer.assign([tp])
    consumer.commit({tp: OffsetAndMetadata(1, "note", -1)})
    assert consumer.committed(tp) == 1
    consumer.close()


def test_alter_configs_and_compaction(bramble_factory):
    node = bramble_factory("log_cleaner_backoff_ms = 200\nlog_retention_check_interval_ms = 200\n").start()
    admin = KafkaAdminClient(bootstrap_servers=node.kafka)
    admin.create_topics([NewTopic("table", num_partitions=1, replication_factor=1)])
    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "table", configs={
        "cleanup.policy": "compact", "segment.bytes": "16384", "segment.ms": "100",
        "delete.retention.ms": "100"})])
    described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "table")])
    entries = {c[0]: c[1] for c in described[0].resources[0][4]}
    assert entries["cleanup.policy"] == "compact"
    assert entries["segment.bytes"] == "16384"

    producer = KafkaProducer(bootstrap_servers=node.kafka, linger_ms=0)
    for i in range(400):
        producer.send("table", key=f"k{i % 5}".encode(), value=f"{i}".encode()).get(30)
    producer.send("table", key=b"gone", value=b"soon").get(30)
    producer.send("table", key=b"gone", value=None).get(30)
    producer.close()
    time.sleep(0.3)  # let segment.ms roll the active segment
    producer = KafkaProducer(bootstrap_servers=node.kafka)
    producer.send("table", key=b"k0", value=b"last").get(30)
    producer.close()

    def table():
        consumer = KafkaConsumer(bootstrap_servers=node.kafka, auto_offset_reset="earliest", consumer_timeout_ms=3000)
        consumer.assign([TopicPartition("table", 0)])
        records = [(m.offset, m.key, m.value) for m in consumer]
        consumer.close()
        return records

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        records = table()
        keys = [k for _, k, _ in records]
        if len(records) <= 7 and keys.count(b"k1") == 1 and b"gone" not in keys:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"never compacted: {len(records)} records")
    latest = {k: v for _, k, v in records}
    assert latest[b"k0"] == b"last"
    for i in range(1, 5):
        assert latest[f"k{i}".encode()] == f"{395 + i}".encode()
    offsets = [o for o, _, _ in records]
    assert offsets == sorted(offsets) and offsets[-1] == 402, "offsets keep their places"
    admin.close()
