"""kafka-python (a pure-Python client with its own protocol code) against a real bramble."""
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def test_producer_and_consumer(bramble):
    admin = KafkaAdminClient(bootstrap_servers=bramble.kafka)
    admin.create_topics([NewTopic("py", num_partitions=2, replication_factor=1)])
    assert "py" in admin.list_topics()
    admin.close()

    producer = KafkaProducer(bootstrap_servers=bramble.kafka, acks="all", linger_ms=5)
    futures = [producer.send("py", key=f"k{i}".encode(), value=f"v{i}".encode()) for i in range(500)]
    producer.flush(30)
    metadata = [f.get(timeout=30) for f in futures]
    assert {m.topic for m in metadata} == {"py"}
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=bramble.kafka, auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    consumer.assign([TopicPartition("py", 0), TopicPartition("py", 1)])
    consumer.seek_to_beginning()
    values = sorted(int(msg.value[1:]) for msg in consumer)
    consumer.close()
    assert values == list(range(500))


def test_compressed_producer(bramble):
    producer = KafkaProducer(bootstrap_servers=bramble.kafka, acks=1, compression_type="gzip")
    for i in range(100):
        producer.send("py-gzip", value=f"{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer("py-gzip", bootstrap_servers=bramble.kafka, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=5000)
    values = [int(msg.value) for msg in consumer]
    consumer.close()
    assert values == list(range(100))
